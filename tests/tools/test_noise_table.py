"""tools/misc/noise_table.py prints one row per noise model whose
figures say what each model claims (run on few draws)."""

import os.path as osp

from conftest import REPO, run_tool

TOOL = osp.join(REPO, 'tools', 'misc', 'noise_table.py')


def _rows(stdout):
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if cells and cells[0].startswith('`'):
            rows[cells[0].strip('`')] = cells
    return rows


def test_noise_table_rows_follow_the_models():
    proc = run_tool([TOOL, '--draws', '200'])
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _rows(proc.stdout)
    assert sorted(rows) == ['300w', 'arc', 'resampled', 'tangent']

    def across_max(model):
        return float(rows[model][2])

    def residual(model):
        along, across = rows[model][3].split('/')
        return float(along), float(across)

    # arc pulls labels into the bends (about 1.8 % of d at the eyes); the
    # others are zero-mean up to sampling error (sigma_n / sqrt(200)).
    assert across_max('arc') > 1.0
    assert across_max('tangent') < 0.3 and across_max('300w') < 0.3
    # resampled shares the along-curve error between key points: its
    # second difference along the curve is far below iid tangent noise.
    assert residual('resampled')[0] < 0.1 * residual('tangent')[0]
    # 300w is calibrated near 1 % of d along and across.
    assert 0.5 < residual('300w')[0] < 2 and 0.5 < residual('300w')[1] < 2
