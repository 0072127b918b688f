"""The study's tables: data, reading runs, choices made on validation."""

import json
import os
import os.path as osp

import numpy as np
import pytest
from conftest import load_tool

from mmaniso.study import tables as st
from mmaniso.study.runner import METRICS_FILE


def write_scalars(folder, epochs, iters_per_epoch, interval, val_nme):
    """An MMEngine-like scalars.json: train lines every ``interval`` inner
    iterations, one val line (step = epoch) after each epoch."""
    vis = osp.join(folder, '20260101_000000', 'vis_data')
    os.makedirs(vis, exist_ok=True)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        for epoch in range(1, epochs + 1):
            for inner in range(interval, iters_per_epoch + 1, interval):
                it = (epoch - 1) * iters_per_epoch + inner
                f.write(
                    json.dumps(dict(loss=1.0, epoch=epoch, iter=it, step=it))
                )
                f.write('\n')
            f.write(
                json.dumps(dict(NME=val_nme[epoch - 1], step=epoch)) + '\n'
            )


def write_run(work_dir, row, seed, test_nme, val_nme, groups=None, split=None):
    folder = st.run_dir(work_dir, row, seed)
    write_scalars(folder, 3, 10, 4, [20.0, 15.0, val_nme])
    metrics = {'NME': test_nme, 'FR@0.1': 1.0, 'AUC@0.1': 0.5}
    if groups is not None:
        metrics['NME_curve'], metrics['NME_corners'] = groups
    if split is not None:
        metrics['NME_along'], metrics['NME_across'] = split
    with open(osp.join(folder, METRICS_FILE), 'w') as f:
        json.dump(metrics, f)


def test_val_curve_counts_iterations_per_epoch_not_logged_ones(tmp_path):
    # 10 iterations per epoch logged at inner 4 and 8: the last logged
    # iteration of an epoch is not its end, the epoch length is.
    write_scalars(tmp_path, 3, 10, 4, [12.0, 9.0, 7.0])
    iters, nme = st.val_curve(str(tmp_path))
    assert iters.tolist() == [10, 20, 30]
    assert nme.tolist() == [12.0, 9.0, 7.0]
    assert st.iterations_to(iters, nme, 10.0) == 20
    assert st.iterations_to(iters, nme, 8.0) == 30
    assert st.iterations_to(iters, nme, 5.0) is None


def test_val_curve_without_validation_says_how_to_get_it(tmp_path):
    vis = tmp_path / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(
        json.dumps(dict(loss=1.0, epoch=1, iter=4, step=4)) + '\n'
    )
    with pytest.raises(ValueError, match='val_interval=1'):
        st.val_curve(str(tmp_path))


def test_best_variant_is_chosen_on_validation_not_on_test(tmp_path):
    rows = st.table_rows('a')
    by_stem = {osp.basename(r.config): r for r in rows}
    good_val = by_stem['res18_aniso-normalised-l1_synthface.py']
    good_test = by_stem['res18_aniso_synthface.py']
    l1 = by_stem['res18_l1_synthface.py']
    for seed in (0, 1):
        write_run(tmp_path, good_val, seed, test_nme=6.0, val_nme=5.0)
        write_run(tmp_path, good_test, seed, test_nme=4.0, val_nme=5.5)
        # Isotropic rows are not candidates, however good.
        write_run(tmp_path, l1, seed, test_nme=3.0, val_nme=3.0)
    best = st.choose_best(str(tmp_path), rows, (0, 1))
    assert best == good_val


def test_choice_needs_every_seed(tmp_path):
    rows = st.table_rows('a')
    write_run(tmp_path, rows[-1], 0, 5.0, 5.0)
    with pytest.raises(ValueError, match='--table a first'):
        st.choose_best(str(tmp_path), rows, (0, 1))


def test_markdown_tables_hold_mean_and_sample_std(tmp_path):
    rows = st.table_rows('a')[:2]
    write_run(tmp_path, rows[0], 0, test_nme=5.0, val_nme=6.0)
    write_run(tmp_path, rows[0], 1, test_nme=7.0, val_nme=9.0)
    text = st.markdown_results(str(tmp_path), rows, (0, 1))
    line = next(x for x in text.splitlines() if x.startswith('| L1 |'))
    std = np.std([5.0, 7.0], ddof=1)
    assert f'6.00 ± {std:.2f}' in line  # test NME
    assert f'7.50 ± {np.std([6.0, 9.0], ddof=1):.2f}' in line  # validation
    assert 'not run' in text.splitlines()[-1]  # the second row
    conv = st.markdown_convergence(str(tmp_path), rows, (0, 1))
    # Validation 20, 15, then 6 or 9: both reach 10 after epoch 3 (30
    # iterations), only seed 0 reaches 8.
    l1 = next(x for x in conv.splitlines() if x.startswith('| L1 |'))
    cells = [c.strip() for c in l1.split('|')]
    assert cells[3] == '30 ± 0'
    assert cells[4] == '30 (1/2 seeds reach it)'
    assert 'not run' in conv.splitlines()[-1]


def test_convergence_leaves_out_runs_still_training(tmp_path):
    row = st.table_rows('a')[0]
    write_run(tmp_path, row, 0, test_nme=5.0, val_nme=6.0)
    # Seed 1 is training: a partial curve, no metrics file yet.
    write_scalars(st.run_dir(str(tmp_path), row, 1), 1, 10, 4, [30.0])
    conv = st.markdown_convergence(str(tmp_path), [row], (0, 1))
    cells = [c.strip() for c in conv.splitlines()[-1].split('|')]
    assert cells[2] == '0' and cells[3] == '30'


def test_sweep_table_and_plot_show_curve_points_and_corners_apart(tmp_path):
    rows = [r for r in st.table_rows('b') if r.label == 'L1']
    for i, row in enumerate(rows):
        for seed in (0, 1):
            write_run(
                tmp_path,
                row,
                seed,
                5.0 + i,
                6.0,
                groups=(5.5 + i + seed, 4.0 - seed),
            )
    text = st.markdown_results(str(tmp_path), rows, (0, 1))
    header = [c.strip() for c in text.splitlines()[0].split('|')]
    line = [c.strip() for c in text.splitlines()[2].split('|')]
    cells = dict(zip(header, line))
    assert cells['curve pts'] == f'6.00 ± {np.std([5.5, 6.5], ddof=1):.2f}'
    assert cells['corners'] == f'3.50 ± {np.std([4.0, 3.0], ddof=1):.2f}'
    out = st.plot_sweep(str(tmp_path), rows, (0, 1), str(tmp_path / 'b.png'))
    assert osp.getsize(out) > 10000
    with pytest.raises(ValueError, match='no finished run'):
        st.plot_sweep(
            str(tmp_path / 'none'), rows, (0, 1), str(tmp_path / 'c.png')
        )


def test_along_and_across_columns_and_panels_when_the_metrics_have_them(
    tmp_path,
):
    rows = [r for r in st.table_rows('b') if r.label == 'L1']
    # Older records lack the split: no such column.
    write_run(tmp_path, rows[0], 0, 5.0, 6.0, groups=(5.5, 4.0))
    text = st.markdown_results(str(tmp_path), rows, (0, 1))
    assert 'along' not in text.splitlines()[0]
    # A newer run has it: the columns appear, '–' for the older one.
    write_run(
        tmp_path, rows[1], 0, 5.0, 6.0, groups=(5.5, 4.0), split=(4.0, 3.0)
    )
    write_run(
        tmp_path, rows[1], 1, 5.0, 6.0, groups=(5.5, 4.0), split=(5.0, 2.0)
    )
    lines = st.markdown_results(str(tmp_path), rows, (0, 1)).splitlines()
    header = [c.strip() for c in lines[0].split('|')]
    assert header[6:9] == ['curve pts', 'along', 'across']
    assert lines[1].count('---') == len(header) - 2
    cells = [
        dict(zip(header, [c.strip() for c in x.split('|')])) for x in lines[2:]
    ]
    assert cells[0]['along'] == '–' and cells[0]['corners'] == '4.00'
    std = np.std([4.0, 5.0], ddof=1)
    assert cells[1]['along'] == f'4.50 ± {std:.2f}'
    assert cells[1]['across'] == f'2.50 ± {std:.2f}'
    assert cells[2]['val NME'] == 'not run'
    assert lines[4].count('|') == lines[0].count('|')
    out = st.plot_sweep(str(tmp_path), rows, (0, 1), str(tmp_path / 'b.png'))
    import matplotlib.image

    assert matplotlib.image.imread(out).shape[1] > 14 * 110  # 5 panels


def test_sensitivity_rows_keep_the_paper_ratio_as_the_reused_run():
    best = st.table_rows('a')[-1]
    rows = st.sensitivity_rows(best)
    assert [round(r.ratio, 3) for r in rows] == [1.0, 1.667, 3.0, 6.0]
    paper = rows[1]
    assert paper.name == st.Row('', best.config).name and not paper.options
    assert 'model.head.loss.a=18' in rows[3].options
    assert len({r.name for r in rows}) == 4


def test_sweep_rows_change_only_the_training_annotations():
    rows = st.table_rows('b')
    assert len(rows) == len(st.SWEEP) * len(st.SWEEP_SIGMA_T)
    for row in rows:
        if row.sigma_t == 0.06:
            assert not row.options and not row.tag
        else:
            assert row.options == (
                'train_dataloader.dataset.ann_file='
                f'annotations/face_landmarks_wflw_train_st{row.sigma_t:g}.json',
            )


def test_prepare_data_adds_val_clean_copies_and_sweep_annotations(tmp_path):
    root = str(tmp_path / 'synthface')
    splits = dict(train=6, test=3)
    st.prepare_data(root, splits, workers=1)
    images = sorted(os.listdir(osp.join(root, 'images')))
    sizes = {n: osp.getsize(osp.join(root, 'images', n)) for n in images}
    with open(osp.join(root, st.ANN.format('test'))) as f:
        test_before = json.load(f)

    # Adding the val split and the noise sweep later leaves train and test
    # as they were.
    paths = st.prepare_data(
        root, dict(splits, val=2), sigma_ts=(0.0, 0.06), workers=1
    )
    with open(paths['test']) as f:
        assert json.load(f) == test_before
    assert {
        n: osp.getsize(osp.join(root, 'images', n)) for n in images
    } == sizes
    assert len(os.listdir(osp.join(root, 'images'))) == 6 + 3 + 2
    assert 'train_st0.06' not in paths  # the default noise: table a's file

    with open(paths['val_clean']) as f:
        clean = json.load(f)
    for ann in clean['annotations']:
        assert ann['keypoints'] == ann['keypoints_clean']

    with open(paths['train']) as f:
        train = json.load(f)
    with open(paths['train_st0']) as f:
        swept = json.load(f)
    assert [i['file_name'] for i in swept['images']] == [
        i['file_name'] for i in train['images']
    ]
    from mmaniso.datasets.point_types import get_point_types

    pt = get_point_types('wflw')
    corners = list(pt.corners) + list(pt.isolated)
    for a, b in zip(train['annotations'], swept['annotations']):
        assert a['keypoints_clean'] == b['keypoints_clean']
        ka = np.array(a['keypoints']).reshape(-1, 3)
        kb = np.array(b['keypoints']).reshape(-1, 3)
        # Corners keep their noise; curve points lose the along-curve part.
        np.testing.assert_allclose(ka[corners], kb[corners], atol=1e-3)
        assert np.abs(ka - kb).max() > 0.01
    assert swept['info']['noise']['sigma_t'] == 0.0


def test_prepare_data_refuses_a_split_of_another_size(tmp_path):
    root = str(tmp_path / 'synthface')
    st.prepare_data(root, dict(train=4, test=2), workers=1)
    with pytest.raises(ValueError, match='holds 2 faces, the study needs 3'):
        st.prepare_data(root, dict(train=4, test=3), workers=1)


def test_a_truncated_metrics_file_is_named_with_the_fix(tmp_path):
    from mmaniso.study.runner import RecordError

    row = st.table_rows('a')[0]
    write_run(str(tmp_path), row, 0, 5.0, 5.5)
    path = osp.join(st.run_dir(str(tmp_path), row, 0), METRICS_FILE)
    with open(path, 'w') as f:
        f.write('{"NME": 5.0, "FR@0.')
    with pytest.raises(RecordError, match='not valid JSON') as error:
        st.markdown_results(str(tmp_path), [row], [0])
    assert path in str(error.value) and 'run the command' in str(error.value)


def test_figures_are_written_whole_or_not_at_all(tmp_path):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out = tmp_path / 'study_a.png'
    out.write_bytes(b'the earlier figure')
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    st.save_figure(fig, str(out))
    assert out.read_bytes()[:4] == b'\x89PNG'
    assert sorted(os.listdir(tmp_path)) == ['study_a.png']
    # A disk that fills up half-way leaves the earlier figure, and no
    # half figure under any name.
    whole = out.read_bytes()
    fig, ax = plt.subplots()

    def full_disk(fname, **kwargs):
        with open(fname, 'wb') as f:
            f.write(whole[:100])
        raise OSError(28, 'No space left on device')

    fig.savefig = full_disk
    with pytest.raises(OSError, match='No space'):
        st.save_figure(fig, str(out))
    assert out.read_bytes() == whole
    assert sorted(os.listdir(tmp_path)) == ['study_a.png']


def _clean_source(path, annotations):
    data = dict(images=[dict(id=1), dict(id=2)], annotations=annotations)
    path.write_text(json.dumps(data))


def test_clean_annotations_take_the_clean_landmarks(tmp_path):
    src, dst = tmp_path / 'test.json', tmp_path / 'clean.json'
    _clean_source(
        src, [dict(id=7, keypoints=[1, 2, 2], keypoints_clean=[3, 4, 2])]
    )
    st.write_clean_annotations(str(src), str(dst))
    assert json.loads(dst.read_text())['annotations'][0]['keypoints'] == [
        3,
        4,
        2,
    ]
    assert st.count_images(str(dst)) == 2
    _clean_source(src, [dict(id=9, keypoints=[1, 2, 2])])
    with pytest.raises(ValueError, match='test.json: annotation id=9.*make_'):
        st.write_clean_annotations(str(src), str(tmp_path / 'other.json'))
    assert not (tmp_path / 'other.json').exists()


def test_the_demo_uses_the_study_s_clean_annotations():
    demo = load_tool('tools', 'demo.py')
    assert demo.write_clean_annotations is st.write_clean_annotations
    assert demo.count_images is st.count_images
