"""Smoke tests of tools/analysis_tools/benchmark_sampler.py."""

import os.path as osp
import re

import numpy as np
import pytest
from conftest import REPO, load_tool, run_tool

from mmaniso.datasets.layouts import WFLW_TO_300W, WFLW_TO_AFLW

SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_sampler.py')


def test_prints_one_timed_row_per_size():
    proc = run_tool(
        [SCRIPT, '--sizes', '300', '600', '--rounds', '1'], timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = re.findall(
        r'^\s*(\d+)((?:\s+[0-9.]+/[0-9.]+){4})\s+([0-9.]+)\s*$',
        proc.stdout,
        re.M,
    )
    assert [int(r[0]) for r in rows] == [300, 600]
    for _, cells, per_shape in rows:
        times = [float(t) for c in cells.split() for t in c.split('/')]
        assert all(t >= 0 for t in times)
        assert float(per_shape) > 0


@pytest.mark.slow
def test_epoch_lengths_follow_the_formula():
    proc = run_tool([SCRIPT, '--epoch-lengths'], timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = re.findall(
        r'^(\w+): N=(\d+) .*counts \[([\d, ]+)\]; epoch = (\d+) x (\d+) = '
        r'(\d+)',
        proc.stdout,
        re.M,
    )
    assert [line[0] for line in lines] == ['300W', 'WFLW', 'AFLW']
    for _, num, counts, bins, per_bin, epoch in lines:
        counts = [int(c) for c in counts.split(',')]
        nonempty = [c for c in counts if c > 0]
        assert sum(counts) == int(num)
        assert int(bins) == len(nonempty) and int(per_bin) == min(nonempty)
        assert int(epoch) == len(nonempty) * min(nonempty) < int(num)


def test_faces_take_the_300w_and_aflw_points_of_the_layouts():
    tool = load_tool(SCRIPT)
    face = tool.face_with_depth(98)
    np.testing.assert_array_equal(tool.face_with_depth(19), face[WFLW_TO_AFLW])
    np.testing.assert_array_equal(tool.face_with_depth(68), face[WFLW_TO_300W])
