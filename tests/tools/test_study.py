"""tools/study.py on the fixture: two seeds, mean ± std and a CSV."""

import csv
import os.path as osp

import pytest
from conftest import FIXTURE_CONFIG, REPO, data_root_options, run_tool


@pytest.mark.slow
def test_study_of_two_seeds_prints_mean_std_and_writes_csv(
    wflw_fixture, tmp_path
):
    args = [
        osp.join(REPO, 'tools', 'study.py'),
        FIXTURE_CONFIG,
        '--seeds',
        '0',
        '1',
        '--work-dir',
        tmp_path,
        '--cfg-options',
        'train_cfg.max_epochs=1',
        *data_root_options(wflw_fixture),
    ]
    proc = run_tool(args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'mean ± std over seeds 0, 1' in out
    full_row = next(
        line for line in out.splitlines() if line.startswith('full ')
    )
    # NME, the point groups (curve, along, across, corners), FR and AUC at
    # 0.08 and 0.1.
    assert full_row.count('±') == 9
    with open(tmp_path / 'study.csv') as f:
        rows = {r['key']: r for r in csv.DictReader(f)}
    nme = rows['NME']
    seeds = [float(nme['seed0']), float(nme['seed1'])]
    assert float(nme['mean']) == pytest.approx(sum(seeds) / 2, rel=1e-4)
    assert nme['n'] == '2'
    # A second call finds both runs done and only re-tabulates.
    again = run_tool(args)
    assert again.returncode == 0
    assert again.stdout.count('done before') == 2


def test_study_takes_configs_or_a_table_not_both():
    proc = run_tool(
        [osp.join(REPO, 'tools', 'study.py'), FIXTURE_CONFIG, '--table', 'a']
    )
    assert proc.returncode == 2
    assert 'either CONFIG files or --table' in proc.stderr
    proc = run_tool(
        [osp.join(REPO, 'tools', 'study.py'), '--jobs', '0', '--table', 'a']
    )
    assert proc.returncode == 2
    assert '--jobs must be at least 1' in proc.stderr
