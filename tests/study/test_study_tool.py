"""tools/misc/study.py on the fixture: two seeds, mean ± std and a CSV."""

import csv
import json
import os
import os.path as osp

import pytest
from conftest import (
    FIXTURE_CONFIG,
    REPO,
    data_root_options,
    load_tool,
    run_tool,
)

STUDY = osp.join(REPO, 'tools', 'misc', 'study.py')


@pytest.mark.slow
def test_study_of_two_seeds_prints_mean_std_and_writes_csv(
    wflw_fixture, tmp_path
):
    args = [
        STUDY,
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
    proc = run_tool([STUDY, FIXTURE_CONFIG, '--table', 'a'])
    assert proc.returncode == 2
    assert 'either CONFIG files or --table' in proc.stderr
    proc = run_tool([STUDY, '--jobs', '0', '--table', 'a'])
    assert proc.returncode == 2
    assert '--jobs must be at least 1' in proc.stderr


# ------------------------------------------------------------------ records
def _study():

    return load_tool(STUDY)


@pytest.fixture
def study(monkeypatch):
    """tools/misc/study.py with a stand-in for the runner that records its
    calls and writes a record as the real one does."""
    module = _study()
    from mmaniso.study.runner import (
        METRICS_FILE,
        RECORD_FILE,
        TrainTestResult,
        run_fingerprint,
    )
    from mmaniso.utils.atomic_files import atomic_write_json

    calls = []

    def fake(config, folder, *, seed, cfg_options, checkpoint,
             record_extra=None, **kwargs):  # fmt: skip
        calls.append((config, folder, seed, list(cfg_options)))
        metrics = {'NME': 3.0 + len(calls)}
        fingerprint = run_fingerprint(
            config, seed=seed, cfg_options=cfg_options,
            checkpoint=checkpoint, extra=record_extra,
        )  # fmt: skip
        atomic_write_json(osp.join(folder, METRICS_FILE), metrics)
        atomic_write_json(
            osp.join(folder, RECORD_FILE), dict(fingerprint=fingerprint)
        )
        return TrainTestResult(metrics, '', '', 1.0, fingerprint)

    monkeypatch.setattr(module, 'train_then_test', fake)
    module.calls = calls
    return module


def test_a_record_made_with_other_options_is_not_reused(
    study, tmp_path, capsys
):
    args = study.parse_args([FIXTURE_CONFIG, '--work-dir', str(tmp_path)])
    folder = str(tmp_path / 'run')
    first = study.run_one(FIXTURE_CONFIG, 0, args, None, folder, ['a=1'])
    assert len(study.calls) == 1
    # The same settings: reused.
    again = study.run_one(FIXTURE_CONFIG, 0, args, None, folder, ['a=1'])
    assert again == first and len(study.calls) == 1
    assert 'done before' in capsys.readouterr().out
    # Another option, another seed: trained again, and said why; the old
    # record is moved aside, not deleted.
    other = study.run_one(FIXTURE_CONFIG, 0, args, None, folder, ['a=2'])
    assert len(study.calls) == 2 and other != first
    out = capsys.readouterr().out
    assert 'not reusing it' in out and "wanted ['a=2']" in out
    aside = [d for d in os.listdir(folder) if d.startswith('previous_')]
    assert len(aside) == 1
    moved = osp.join(folder, aside[0], 'test_metrics.json')
    assert json.load(open(moved)) == first
    study.run_one(FIXTURE_CONFIG, 1, args, None, folder, ['a=2'])
    assert len(study.calls) == 3
    assert 'seed: record has 0, wanted 1' in capsys.readouterr().out


def test_a_cut_off_record_is_trained_again_not_read(study, tmp_path, capsys):
    args = study.parse_args([FIXTURE_CONFIG, '--work-dir', str(tmp_path)])
    folder = tmp_path / 'run'
    folder.mkdir()
    (folder / 'test_metrics.json').write_text('{"NME": 4.')
    metrics = study.run_one(FIXTURE_CONFIG, 0, args, None, str(folder), [])
    assert len(study.calls) == 1 and metrics == {'NME': 4.0}
    out = capsys.readouterr().out
    assert 'not valid JSON' in out and str(folder) in out


def test_records_without_fingerprint_are_legacy(study, tmp_path, capsys):
    from mmaniso.study import tables as st

    row = st.table_rows('a')[0]
    folder = tmp_path / 'legacy'
    folder.mkdir()
    (folder / 'test_metrics.json').write_text('{"NME": 4.0}')
    table = study.parse_args(['--table', 'a', '--work-dir', str(tmp_path)])
    # The study's own options for the row: accepted, and said so.
    assert study.run_one(
        row.config, 0, table, None, str(folder), list(st.PROTOCOL)
    ) == {'NME': 4.0}
    assert not study.calls
    assert 'without fingerprint' in capsys.readouterr().out
    # Other options than the study gave such runs: never reused.
    other = study.parse_args(
        ['--table', 'a', '--work-dir', str(tmp_path), '--cfg-options', 'x=1']
    )
    study.run_one(row.config, 0, other, None, str(folder), ['x=1'])
    assert len(study.calls) == 1
    assert 'no fingerprint' in capsys.readouterr().out


def test_report_refuses_a_truncated_record_and_copies_nothing(tmp_path):
    from mmaniso.study import evidence as ev

    study = _study()
    row, seed = ev.all_jobs()[0]
    work, records = tmp_path / 'work', tmp_path / 'records'
    run = ev.run_dir(str(work), row, seed)
    os.makedirs(run)
    broken = osp.join(run, 'test_metrics.json')
    with open(broken, 'w') as f:
        f.write('{"NME": 4.9, "FR@0.1": 6.')
    argv = [
        '--table',
        'evidence',
        '--report',
        '--work-dir',
        str(work),
        '--records',
        str(records),
        '--plot-dir',
        str(tmp_path),
    ]
    with pytest.raises(SystemExit) as refused:
        study.main(argv)
    message = str(refused.value)
    assert broken in message and 'not valid JSON' in message
    assert 'delete' in message
    assert not osp.exists(ev.run_dir(str(records), row, seed))


def test_report_refuses_a_record_made_with_other_options(tmp_path):
    from mmaniso.study import evidence as ev
    from mmaniso.study.runner import RecordError, run_fingerprint

    study = _study()
    row, seed = ev.all_jobs()[0]
    run = ev.run_dir(str(tmp_path), row, seed)
    os.makedirs(run)
    with open(osp.join(run, 'test_metrics.json'), 'w') as f:
        json.dump({'NME': 4.0}, f)
    args = study.parse_args(
        ['--table', 'evidence', '--report', '--work-dir', str(tmp_path)]
    )
    jobs = [(row, seed)]
    study.check_records(args, jobs, ev.PROTOCOL)  # legacy: reported
    made = run_fingerprint(
        row.config, seed=seed, cfg_options=['train_cfg.max_epochs=1'],
        checkpoint=row.checkpoint,
    )  # fmt: skip
    with open(osp.join(run, 'run_record.json'), 'w') as f:
        json.dump({'fingerprint': made}, f)
    with pytest.raises(RecordError, match='other settings') as refused:
        study.check_records(args, jobs, ev.PROTOCOL)
    assert row.label in str(refused.value)
    assert 'train_cfg.max_epochs=1' in str(refused.value)


def test_the_committed_records_keep_loading():
    """The records in results/ predate fingerprints: all read and are
    reported as legacy records."""
    from mmaniso.study import evidence as ev
    from mmaniso.study import tables as st

    study = _study()
    evidence = osp.join(REPO, 'results', 'synthface_evidence')
    args = study.parse_args(
        ['--table', 'evidence', '--report', '--work-dir', evidence]
    )
    jobs = ev.all_jobs()
    study.check_records(args, jobs, ev.PROTOCOL)
    found = sum(len(ev.load_runs(evidence, row, [seed])) for row, seed in jobs)
    tables = osp.join(REPO, 'results', 'synthface_study')
    args = study.parse_args(['--table', 'a', '--work-dir', tables])
    rows = st.table_rows('a') + st.table_rows('b')
    jobs = [(row, seed) for row in rows for seed in (0, 1, 2)]
    study.check_records(args, jobs, st.PROTOCOL)
    for row in rows:
        found += len(st.load_metrics(tables, row, (0, 1, 2)))
    assert found >= 122
