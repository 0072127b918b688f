"""Smoke test of tools/analysis_tools/benchmark_crop_cache.py."""

import os.path as osp
import re

from conftest import REPO, run_tool

SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_crop_cache.py')


def test_prints_both_rates_and_the_speed_up(tmp_path):
    # A folder not made yet: the figures are written whole, folder and all.
    out = tmp_path / 'results' / 'figures.json'
    proc = run_tool(
        [
            SCRIPT,
            '--images',
            '4',
            '--rounds',
            '2',
            '--long-side',
            '400',
            '--face-px',
            '80',
            '160',
            '--out-json',
            str(out),
        ],
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rates = dict(
        re.findall(
            r'^(full images|crop cache) .* ([0-9.]+) images/s',
            proc.stdout,
            re.M,
        )
    )
    assert set(rates) == {'full images', 'crop cache'}
    speedup = float(
        re.search(r'crop-cache speed-up: ([0-9.]+)x', proc.stdout).group(1)
    )
    ratio = float(rates['crop cache']) / float(rates['full images'])
    # The printed speed-up is the ratio of the printed rates (rounding).
    assert abs(speedup - ratio) < 0.02 * ratio + 0.01
    import json

    figures = json.loads(out.read_text())
    assert len(figures['rates']['crop cache']) == 2
