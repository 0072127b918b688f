"""tools/analysis_tools/pose_balance_report.py on generated heavy-tailed
shapes."""

import json
import os.path as osp

import numpy as np
from conftest import REPO, run_tool

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'pose_balance_report.py')


def test_report_shows_clipped_edges_fill_the_bins(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, 2))
    mode = rng.normal(size=(12, 2))
    # A bulk and a few far-out poses: a heavy tail.
    scores = np.concatenate([rng.normal(0, 0.2, 300), [5.0, 5.5, -5.0]])
    kpts = base + 0.1 * scores[:, None, None] * mode
    path = tmp_path / 'shapes.npz'
    np.savez(path, kpts=kpts)
    proc = run_tool([TOOL, path, '--json', '--alphas', '0', '1'])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout[proc.stdout.index('{') :])
    full, clipped = result['full_range'], result['clipped_0.01_0.99']
    assert result['num_samples'] == 303
    assert sum(full['counts']) == sum(clipped['counts']) == 303
    # The tail's few faces set the undersampled draw in the full range.
    assert full['undersampled_draw'] < clipped['undersampled_draw']
    assert min(clipped['counts']) > min(c for c in full['counts'] if c)
    assert clipped['tempered_shares']['0'] == [round(1 / 9, 4)] * 9
    shares_one = np.array(clipped['tempered_shares']['1'])
    np.testing.assert_allclose(
        shares_one, np.array(clipped['counts']) / 303, atol=1e-4
    )
