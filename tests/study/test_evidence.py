"""The second round of evidence: rows, statistics, records, reading."""

import json
import os
import os.path as osp

import numpy as np
import pytest
from conftest import LEARNED_HEAD_CONFIG
from scipy import stats
from test_tables import write_run, write_scalars

from mmaniso.study import evidence as ev


def test_welch_interval_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5.0, 0.1, 8), rng.normal(5.05, 0.3, 5)
    diff, lo, hi = ev.welch_interval(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert diff == pytest.approx(a.mean() - b.mean())
    assert (lo, hi) == pytest.approx((reference.low, reference.high), rel=1e-9)


def test_paired_interval_counts_wins_and_matches_scipy():
    a = np.array([4.70, 4.65, 4.80, 4.72, 4.60])
    b = np.array([4.75, 4.70, 4.78, 4.80, 4.66])
    mean, lo, hi, wins = ev.paired_interval(a, b)
    reference = stats.ttest_rel(a, b).confidence_interval()
    assert mean == pytest.approx(np.mean(a - b))
    assert (lo, hi) == pytest.approx((reference.low, reference.high))
    assert wins == 4


@pytest.mark.parametrize(
    'lo, hi, words',
    [(-0.2, -0.01, 'first lower'), (0.02, 0.3, 'second lower'),
     (-0.05, 0.12, 'within ±0.12')],
)  # fmt: skip
def test_interval_wording_follows_the_interval(lo, hi, words):
    assert words in ev.describe_interval(lo, hi)


def test_every_key_row_has_its_exact_twin():
    # The twin of an anisotropic row is the same config and options with
    # a = b = 3 only.
    for table in ('e', 'f', 'g'):
        rows = ev.table_rows(table)
        for row in rows:
            if row.ratio == 1.0 or 'aniso' not in row.config:
                continue
            twins = [
                r for r in rows
                if r.config == row.config and r.noise == row.noise
                and r.ratio == 1.0
            ]  # fmt: skip
            assert len(twins) == 1, row.label
            twin = twins[0]
            differ = set(twin.options) ^ set(row.options)
            assert differ == {'model.head.loss.a=3', 'model.head.loss.b=3'}


def test_rows_have_distinct_run_folders_and_train_on_their_noise():
    names = set()
    for table in ev.TABLES:
        for row in ev.table_rows(table):
            assert row.name not in names
            names.add(row.name)
            option = row.options[0]
            assert option.startswith('train_dataloader.dataset.ann_file=')
            if table == 'h':
                assert option.endswith('train500.json')
                assert row.checkpoint == 'best'
            else:
                assert option.endswith(ev.train_ann(row.noise).split('/')[-1])


def test_jobs_cover_every_seed_of_every_table_once():
    jobs = ev.all_jobs()
    assert len(set(jobs)) == len(jobs)
    for table, seeds in ev.SEEDS.items():
        for row in ev.table_rows(table):
            assert sorted(s for r, s in jobs if r == row) == list(seeds)
    # Whole seeds at a time: the key table's L1 form (6 rows) to 8 seeds,
    # then its SoftWing form's first 4 seeds, before any other table.
    l1_form = jobs[: 6 * 8]
    assert all('L1' in r.label for r, _ in l1_form)
    assert [s for _, s in l1_form] == sorted(s for _, s in l1_form)
    softwing = jobs[6 * 8 : 6 * 8 + 4 * 4]
    assert all('SoftWing' in r.label and s <= 3 for r, s in softwing)
    assert [s for _, s in softwing] == sorted(s for _, s in softwing)
    # The SoftWing form's seeds 4-7 come last.
    assert all('SoftWing' in r.label and s >= 4 for r, s in jobs[-16:])
    per_table = {
        t: sum(row in ev.table_rows(t) for row, _ in jobs) for t in ev.TABLES
    }
    assert per_table == dict(e=10 * 8, f=6 * 3, g=4 * 3, h=4 * 3)


def test_memorisation_schedule_scales_the_milestones():
    options = dict(o.split('=', 1) for o in ev.MEMORISATION_OPTIONS)
    assert options['train_cfg.max_epochs'] == '60'
    assert options['param_scheduler.1.milestones'] == '[44,56]'


def _fake_run(work_dir, row, seed, nme, along=1.0):
    write_run(work_dir, row, seed, nme, nme + 0.1, split=(along, 2.0))


def _twins():
    """Table e's anisotropic row and its a = b twin, under the arc noise."""
    rows = {(r.label, r.noise): r for r in ev.table_rows('e')}
    return (
        rows[('aniso L1 + head (a/b 5/3)', 'arc')],
        rows[('point L1 + head (a = b)', 'arc')],
    )


def test_report_compares_twins_paired_by_seed(tmp_path):
    first, second = _twins()
    for seed in range(4):
        _fake_run(tmp_path, first, seed, 4.60 + 0.02 * seed)
        _fake_run(tmp_path, second, seed, 4.70 + 0.02 * seed)
    text = ev.markdown_comparisons(str(tmp_path), 'e')
    line = next(
        s for s in text.splitlines()
        if s.startswith('| aniso L1 + head (a/b 5/3) − point L1')
        and '| arc |' in s
    )  # fmt: skip
    assert '| 4 |' in line and '4 of 4' in line
    assert '-0.100' in line and 'resolved: first lower' in line
    table = ev.markdown_table(str(tmp_path), [first, second], range(8))
    assert '4.63 ± 0.03' in table and '| 4 |' in table


def test_copy_record_keeps_the_learned_scales_of_the_tested_checkpoint(
    tmp_path,
):
    import torch

    from mmaniso.models.losses import AnisotropicLoss

    row = ev.table_rows('e')[0]
    work = str(tmp_path / 'work')
    run = ev.run_dir(work, row, 0)
    write_run(work, row, 0, 4.7, 4.8)
    with open(osp.join(run, '20260101_000000', 'vis_data', 'config.py'),
              'w') as f:  # fmt: skip
        f.write(LEARNED_HEAD_CONFIG.format(scales='learned'))
    loss = AnisotropicLoss(
        'wflw', scales='learned', weighting='normalised', input_size=(64, 64)
    )
    params = loss.scale_params.detach().clone()
    params[:, 1] -= 1.0  # across shrinks: 0.3 + 2.7 / e
    for epoch, shift in ((14, 5.0), (15, 0.0)):
        torch.save(
            dict(
                state_dict={
                    'head.loss_module.scale_params': params + shift,
                    'head.mean_shape': torch.full((98, 2), 0.5),
                }
            ),
            osp.join(run, f'epoch_{epoch}.pth'),
        )
    # The tested (last) checkpoint is epoch 15, not the other one.
    with open(osp.join(run, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(run, 'epoch_15.pth'))
    dst = ev.copy_record(run, str(tmp_path / 'records'), row, 0)
    with open(osp.join(dst, ev.LEARNED_SCALES_FILE)) as f:
        kept = json.load(f)
    assert kept['checkpoint'] == 'epoch_15.pth'
    assert kept['across'][96] == pytest.approx(0.3 + 2.7 / np.e, rel=1e-6)
    assert kept['along'][16] == pytest.approx(5.0, rel=1e-6)
    assert kept['has_tangent'][16] and not kept['has_tangent'][96]
    # A records folder (no checkpoint) keeps its file when copied again.
    again = ev.copy_record(dst, str(tmp_path / 'again'), row, 0)
    assert osp.isfile(osp.join(again, ev.LEARNED_SCALES_FILE))


def test_face_differences_read_a_work_dir_as_its_records(tmp_path):
    """A work dir keeps the test's predictions in its last time stamp (the
    validation's in the training's): the bootstrap reads the same per-face
    differences from there as from the records copied from it."""
    first, second = _twins()
    work, records = str(tmp_path / 'work'), str(tmp_path / 'records')
    rng = np.random.default_rng(0)
    residuals = {}
    for row in (first, second):
        for seed in (0, 1):
            run = ev.run_dir(work, row, seed)
            write_run(work, row, seed, 4.7, 4.8)
            residual = rng.normal(0, 1, (5, 98, 2)).astype(np.float32)
            residuals[row.label, seed] = residual
            np.savez(osp.join(run, '20260101_000000', 'wflw.pred.npz'),
                     ids=np.arange(3), residual=residual[:3],
                     norm=np.ones(3))  # fmt: skip
            test = osp.join(run, '20260101_000900')
            os.makedirs(test)
            np.savez(osp.join(test, 'wflw.pred.npz'), ids=np.arange(5),
                     residual=residual, norm=np.full(5, 2.0))  # fmt: skip
            ev.copy_record(run, records, row, seed)
    from_work = ev.face_differences(work, first, second, [0, 1])
    from_records = ev.face_differences(records, first, second, [0, 1])
    np.testing.assert_array_equal(from_work, from_records)
    # The slow way: per face, the mean error length over 2 (its norm).
    for i, seed in enumerate((0, 1)):
        for face in range(5):
            a, b = (residuals[r.label, seed][face] for r in (first, second))
            want = (np.mean([np.hypot(*p) for p in a])
                    - np.mean([np.hypot(*p) for p in b])) / 2.0 * 100
            assert from_work[i, face] == pytest.approx(want, rel=1e-5)


def test_best_checkpoint_rows_read_the_best_validation_nme(tmp_path):
    row = ev.table_rows('h')[0]
    folder = ev.run_dir(str(tmp_path), row, 0)
    write_scalars(folder, 3, 10, 4, [9.0, 7.0, 8.0])
    with open(osp.join(folder, 'test_metrics.json'), 'w') as f:
        f.write('{"NME": 7.5}')
    assert ev.load_runs(str(tmp_path), row, [0])[0]['val/NME'] == 7.0


def test_copy_record_keeps_the_training_config_and_test_predictions(
    tmp_path,
):
    row = ev.table_rows('e')[0]
    run = ev.run_dir(str(tmp_path / 'work'), row, 3)
    write_run(str(tmp_path / 'work'), row, 3, 4.7, 4.8)
    train = osp.join(run, '20260101_000000')
    with open(osp.join(train, 'vis_data', 'config.py'), 'w') as f:
        f.write('randomness = dict(seed=3)\n')
    # The validation during training writes predictions too: not those.
    np.savez_compressed(osp.join(train, 'wflw.pred.npz'), ids=np.arange(3))
    test = osp.join(run, '20260101_000900')
    os.makedirs(osp.join(test, 'vis_data'))
    np.savez_compressed(osp.join(test, 'wflw.pred.npz'), ids=np.arange(5))
    with open(osp.join(run, 'epoch_15.pth'), 'wb') as f:
        f.write(b'weights')
    dst = ev.copy_record(run, str(tmp_path / 'records'), row, 3)
    found = sorted(
        osp.relpath(osp.join(d, n), dst)
        for d, _, names in os.walk(dst) for n in names
    )  # fmt: skip
    assert found == [
        '20260101_000000/vis_data/scalars.json',
        'test.pred.npz',
        'test_metrics.json',
        'train_config.py.txt',
    ]
    assert len(np.load(osp.join(dst, 'test.pred.npz'))['ids']) == 5
    assert 'seed=3' in open(osp.join(dst, 'train_config.py.txt')).read()
    # The record reads back like the run.
    runs = ev.load_runs(str(tmp_path / 'records'), row, [3])
    assert runs[3]['NME'] == 4.7 and runs[3]['val/NME'] == 4.8


def test_forest_plot_of_paired_differences(tmp_path):
    first, second = _twins()
    assert ev.plot_comparisons(str(tmp_path), str(tmp_path / 'p.png')) is None
    for seed in range(3):
        # Along the curve the anisotropic row is worse, overall better.
        _fake_run(tmp_path, first, seed, 4.60 + 0.02 * seed, along=3.5)
        _fake_run(tmp_path, second, seed, 4.70 + 0.03 * seed, along=3.2)
    found = ev.comparison_intervals(str(tmp_path), 'NME')
    assert len(found) == 1
    label, mean, lo, hi, n = found[0]
    assert label.endswith('[arc]') and n == 3
    assert mean == pytest.approx(-0.11) and lo < mean < hi
    along = ev.comparison_intervals(str(tmp_path), 'NME_along')
    assert along[0][1] == pytest.approx(0.3)
    out = ev.plot_comparisons(str(tmp_path), str(tmp_path / 'p.png'))
    assert open(out, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


def _memorisation_run(work_dir, row, seed, curve):
    folder = ev.run_dir(work_dir, row, seed)
    write_scalars(folder, len(curve), 10, 5, curve)
    with open(osp.join(folder, 'test_metrics.json'), 'w') as f:
        f.write('{"NME": 5.0}')


def test_memorisation_table_reads_best_and_last_epoch(tmp_path):
    work = str(tmp_path)
    rows = ev.table_rows('h')
    # Seed 0 bottoms out at epoch 2 and rises (memorises); seed 1 at 3.
    _memorisation_run(work, rows[0], 0, [8.0, 5.0, 6.0, 7.0])
    _memorisation_run(work, rows[0], 1, [8.0, 6.0, 5.5, 6.5])
    text = ev.memorisation_table(work)
    line = next(
        x for x in text.splitlines() if x.startswith(f'| {rows[0].label} |')
    )
    cells = [c.strip() for c in line.strip('|').split('|')]
    assert cells[1] == '2'
    assert cells[2] == f'2.5 ± {np.std([2, 3], ddof=1):.1f}'
    assert cells[3] == f'5.25 ± {np.std([5.0, 5.5], ddof=1):.2f}'
    assert cells[4] == f'6.75 ± {np.std([7.0, 6.5], ddof=1):.2f}'
    assert cells[5] == f'1.50 ± {np.std([2.0, 1.0], ddof=1):.2f}'
    # Rows without finished runs say so rather than vanish.
    other = next(
        x for x in text.splitlines() if x.startswith(f'| {rows[1].label} |')
    )
    assert '| 0 | –' in other
    assert 'Validation curves' in ev.report(work, ('h',))


def test_memorisation_plot_only_with_finished_runs(tmp_path):
    work = str(tmp_path)
    assert ev.plot_memorisation(work, str(tmp_path / 'm.png')) is None
    _memorisation_run(work, ev.table_rows('h')[2], 0, [8.0, 5.0, 6.0])
    out = ev.plot_memorisation(work, str(tmp_path / 'm.png'))
    assert out and osp.getsize(out) > 1000


def test_labels_of_an_older_noise_model_are_written_again(tmp_path):
    from mmaniso.synthface.noise import describe_noise

    path = tmp_path / 'train_resampled.json'
    assert not ev._written_by_this_model(str(path), 'resampled')
    record = dict(info=dict(noise=describe_noise('resampled')))
    path.write_text(json.dumps(record))
    assert ev._written_by_this_model(str(path), 'resampled')
    # The same name with another description: an earlier version.
    record['info']['noise']['model'] = 'key points ... interpolated in x/y'
    path.write_text(json.dumps(record))
    assert not ev._written_by_this_model(str(path), 'resampled')


def test_copy_record_refuses_a_truncated_metrics_file_copying_nothing(
    tmp_path,
):
    from mmaniso.study.runner import RecordError

    row = ev.table_rows('e')[0]
    work, records = str(tmp_path / 'work'), str(tmp_path / 'records')
    write_run(records, row, 0, 4.7, 4.8)  # the committed record
    committed = osp.join(ev.run_dir(records, row, 0), 'test_metrics.json')
    before = open(committed).read()
    write_run(work, row, 0, 4.9, 5.0)
    run = ev.run_dir(work, row, 0)
    broken = osp.join(run, 'test_metrics.json')
    with open(broken, 'w') as f:  # cut off while it was written
        f.write('{"NME": 4.9, "FR@0.1"')
    with pytest.raises(RecordError, match='not valid JSON') as error:
        ev.copy_record(run, records, row, 0)
    assert broken in str(error.value) and 'delete' in str(error.value)
    assert open(committed).read() == before
    # Reading the work dir names the file too, not a bare JSONDecodeError.
    with pytest.raises(RecordError, match='test_metrics.json'):
        ev.load_runs(work, row, [0])


def test_copy_record_carries_the_fingerprint_and_drops_a_stale_one(
    tmp_path,
):
    from mmaniso.study.runner import (
        RECORD_FILE,
        read_fingerprint,
    )

    row = ev.table_rows('e')[0]
    work, records = str(tmp_path / 'work'), str(tmp_path / 'records')
    write_run(work, row, 0, 4.9, 5.0)
    run = ev.run_dir(work, row, 0)
    dst = ev.run_dir(records, row, 0)
    os.makedirs(dst)
    with open(osp.join(dst, RECORD_FILE), 'w') as f:
        json.dump({'fingerprint': {'seed': 7}}, f)
    # A run without fingerprint leaves none behind from an earlier copy.
    ev.copy_record(run, records, row, 0)
    assert read_fingerprint(dst) is None
    with open(osp.join(run, RECORD_FILE), 'w') as f:
        json.dump({'fingerprint': {'seed': 0}}, f)
    ev.copy_record(run, records, row, 0)
    assert read_fingerprint(dst) == {'seed': 0}
    leftovers = [n for _, _, names in os.walk(dst) for n in names]
    assert not [n for n in leftovers if n.endswith('.tmp')], leftovers


def test_family_is_corrected_and_three_seed_results_are_leads(tmp_path):
    rng = np.random.default_rng(0)
    e = {(r.label, r.noise): r for r in ev.table_rows('e')}
    f = {(r.label, r.noise): r for r in ev.table_rows('f')}
    # Table e: a small, noisy difference over 8 seeds (nominal at most);
    # table f: a clear one over 3 seeds (a lead, however small its p).
    for seed in range(8):
        base = 5.0 + 0.05 * seed
        _fake_run(tmp_path, e[('aniso L1 + head (a/b 5/3)', 'arc')], seed,
                  base - 0.03 + rng.normal(0, 0.03))  # fmt: skip
        _fake_run(tmp_path, e[('point L1 + head (a = b)', 'arc')], seed, base)
    for seed in range(3):
        base = 5.0 + 0.05 * seed
        _fake_run(tmp_path, f[('aniso L1 + head (a/b 5/3)', 'tangent')],
                  seed, base - 0.2 + 0.001 * seed)  # fmt: skip
        _fake_run(tmp_path, f[('point L1 + head (a = b)', 'tangent')], seed,
                  base)  # fmt: skip
    found = ev.family(str(tmp_path), 'NME')
    assert len(found) == 2
    for c in found:
        assert c.p_holm >= c.p  # never below the nominal p
    lead = next(c for c in found if c.table == 'f')
    assert ev.family_reading(lead).startswith('lead (3 seeds)')
    text = ev.markdown_comparisons(str(tmp_path), 'f', 'NME', found)
    assert 'lead (3 seeds)' in text and 'p (Holm)' in text


def test_family_and_forest_plot_take_the_same_comparisons(tmp_path):
    first, second = _twins()
    for seed in range(3):
        _fake_run(tmp_path, first, seed, 4.60 + 0.02 * seed)
        _fake_run(tmp_path, second, seed, 4.70 + 0.03 * seed)
    # A seed of the first row alone is not paired.
    _fake_run(tmp_path, first, 5, 9.0)
    intervals = ev.comparison_intervals(str(tmp_path), 'NME')
    family = ev.family(str(tmp_path), 'NME')
    assert (
        [(i[0], i[4]) for i in intervals]
        == [(f'{c.first} − {c.second} [{c.noise}]', c.n) for c in family]
        == [(f'{first.label} − {second.label} [arc]', 3)]
    )
    assert intervals[0][1] == pytest.approx(family[0].mean)
    assert ev.family(str(tmp_path), 'no_such_metric') == []
