"""FaceLandmarkMetric: keys, values, subsets, outputs and errors."""

import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmpose.registry import METRICS

from mmaniso.evaluation import FaceLandmarkMetric
from mmaniso.evaluation.functional import POINT_GROUP_KEYS, summarise

NMES = np.array([0.02, 0.05, 0.09, 0.12])
FLAGS = [
    dict(largepose=1, blur=0),
    dict(largepose=0, blur=1),
    dict(largepose=1, blur=1),
    dict(largepose=0, blur=0),
]


def faces(num_keypoints=3, pair=(0, 1), d=10.0, nmes=NMES):
    """Ground truth with ``pair`` ``d`` apart and predictions off by
    ``nmes * d`` at every point."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 50, (len(nmes), num_keypoints, 2))
    gt[:, pair[1]] = gt[:, pair[0]] + [d, 0.0]
    angle = rng.uniform(0, 2 * np.pi, len(nmes))
    shift = d * nmes[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    return gt + shift[:, None], gt


def samples(pred, gt, ids=None, bboxes=None, raw=None, visible=None):
    out = []
    for i in range(len(gt)):
        gt_instances = dict(
            keypoints=gt[i : i + 1],
            keypoints_visible=np.ones((1, gt.shape[1]))
            if visible is None
            else visible[i : i + 1],
        )
        if bboxes is not None:
            gt_instances['bboxes'] = bboxes[i : i + 1]
        sample = dict(
            id=ids[i] if ids else np.int64(i + 1),
            img_path=f'images/{i}.jpg',
            pred_instances=dict(keypoints=pred[i : i + 1]),
            gt_instances=gt_instances,
        )
        if raw is not None:
            sample['raw_ann_info'] = raw[i]
        out.append(sample)
    return out


def run(metric, data, dataset_name='wflw', batch=3):
    metric.dataset_meta = dict(dataset_name=dataset_name)
    for start in range(0, len(data), batch):
        metric.process([], data[start : start + batch])
    return metric.evaluate(len(data))


def write_ann_file(path, ids, flags):
    anns = [dict(id=i, image_id=i, attributes=f) for i, f in zip(ids, flags)]
    path.write_text(json.dumps(dict(images=[], annotations=anns)))
    return str(path)


def test_registered():
    assert METRICS.get('FaceLandmarkMetric') is FaceLandmarkMetric
    metric = METRICS.build(dict(type='FaceLandmarkMetric', norm='bbox'))
    assert metric.norm == 'bbox'


def test_hand_computed_values_and_outputs(tmp_path):
    pred, gt = faces()
    metric = FaceLandmarkMetric(
        norm_indices=(0, 1), outfile_prefix=str(tmp_path / 'out' / 'run')
    )
    res = run(metric, samples(pred, gt))
    assert list(res) == ['NME', 'FR@0.08', 'AUC@0.08', 'FR@0.1', 'AUC@0.1']
    assert res['NME'] == pytest.approx(7.0)
    assert res['FR@0.1'] == 25.0 and res['FR@0.08'] == 50.0
    assert res['AUC@0.1'] == pytest.approx(0.35, abs=5e-4)
    assert res['AUC@0.08'] == pytest.approx(0.28125, abs=5e-4)

    per_image = json.load(open(tmp_path / 'out' / 'run.nme.json'))
    assert [e['id'] for e in per_image] == [1, 2, 3, 4]
    assert per_image[2]['img_path'] == 'images/2.jpg'
    np.testing.assert_allclose([e['nme'] for e in per_image], NMES)
    png = tmp_path / 'out' / 'run.ced.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # The saved predictions give back each face's NME without the model.
    saved = np.load(tmp_path / 'out' / 'run.pred.npz')
    assert saved['ids'].tolist() == [1, 2, 3, 4]
    assert saved['residual'].dtype == np.float16
    np.testing.assert_allclose(saved['residual'], pred - gt, rtol=1e-3)
    again = np.linalg.norm(
        saved['residual'].astype(np.float64), axis=-1
    ).mean(1) / saved['norm']
    np.testing.assert_allclose(again, NMES, rtol=1e-3)


def test_wflw_lookup_and_subsets_from_ann_file(tmp_path):
    pred, gt = faces(98, (60, 72), d=40.0)
    ann = write_ann_file(tmp_path / 'test.json', [11, 12, 13, 14], FLAGS)
    metric = FaceLandmarkMetric(
        thresholds=(0.1,), ann_file=ann, save_outputs=False
    )
    res = run(metric, samples(pred, gt, ids=[11, 12, 13, 14]))
    assert res['NME'] == pytest.approx(7.0)
    expected = summarise(NMES[[0, 2]], (0.1,))
    for key, value in expected.items():
        assert res[f'largepose/{key}'] == pytest.approx(value)
    assert res['blur/NME'] == pytest.approx((5 + 9) / 2)
    assert res['blur/FR@0.1'] == 0.0
    assert set(res) == {
        f'{s}{k}'
        for s in ('', 'largepose/', 'blur/')
        for k in list(expected) + list(POINT_GROUP_KEYS)
    }


def test_curve_point_and_corner_nme_against_a_per_point_loop():
    from mmaniso.datasets.point_types import get_point_types

    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 100, (5, 98, 2))
    # Errors that differ by point, so the groups' means differ.
    pred = gt + rng.normal(0, 1, gt.shape) * np.linspace(0.5, 3, 98)[:, None]
    res = run(FaceLandmarkMetric(save_outputs=False), samples(pred, gt))
    types = get_point_types('wflw')
    corners = set(types.corners)
    on_curve = {i for c in types.curves for i in c.indices} - corners
    expected = {'NME_curve': [], 'NME_corners': []}
    for n in range(len(gt)):
        iod = np.linalg.norm(gt[n, 60] - gt[n, 72])  # WFLW's outer corners
        for key, group in (('NME_curve', on_curve), ('NME_corners', corners)):
            errors = [np.linalg.norm(pred[n, k] - gt[n, k]) for k in group]
            expected[key].append(np.mean(errors) / iod)
    for key, values in expected.items():
        assert res[key] == pytest.approx(100 * np.mean(values), rel=1e-9)
    assert res['NME_curve'] != pytest.approx(res['NME_corners'], rel=0.01)


# A tiny layout: an open curve 0-1-2-3, a closed curve 4-5-6-7-8 whose
# point 4 is a corner, and isolated points 9, 10 (the normalising pair).
TINY = dict(
    name='tiny',
    num_keypoints=11,
    curves=[
        dict(name='brow', indices=[0, 1, 2, 3], closed=False),
        dict(name='eye', indices=[4, 5, 6, 7, 8], closed=True),
    ],
    corners=[4],
)
TINY_CURVES = (([0, 1, 2, 3], False), ([4, 5, 6, 7, 8], True))
TINY_CORNERS = (4,)


def tiny_faces(num=6, seed=2):
    """Random tiny faces, each point off by its own random error."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 100, (num, 11, 2))
    pred = gt + rng.normal(0, 3, gt.shape)
    return pred, gt


def naive_along_across(pred, gt, visible, norm_pair=(9, 10)):
    """Slow reference: per face, per point, the tangent by a central or
    one-sided difference of the visible curve neighbours, written out by
    hand; the residual projected on it and on its normal; the mean over
    the face's visible non-corner curve points with a tangent, over the
    distance of the normalising pair, in %; then the mean over the faces
    that have such a point. Returns the per-face values (None where there
    is no point) for the two components."""
    per_face = {'along': [], 'across': []}
    for n in range(len(gt)):
        d = np.linalg.norm(gt[n, norm_pair[0]] - gt[n, norm_pair[1]])
        along, across = [], []
        for indices, closed in TINY_CURVES:
            m = len(indices)
            for j, k in enumerate(indices):
                if k in TINY_CORNERS or not visible[n, k]:
                    continue
                if closed:
                    prev, nxt = indices[(j - 1) % m], indices[(j + 1) % m]
                else:
                    prev = indices[j - 1] if j > 0 else None
                    nxt = indices[j + 1] if j < m - 1 else None
                if prev is not None and not visible[n, prev]:
                    prev = None
                if nxt is not None and not visible[n, nxt]:
                    nxt = None
                if prev is not None and nxt is not None:
                    diff = gt[n, nxt] - gt[n, prev]  # central
                elif nxt is not None:
                    diff = gt[n, nxt] - gt[n, k]  # one-sided
                elif prev is not None:
                    diff = gt[n, k] - gt[n, prev]
                else:
                    continue  # no tangent: W = I in the loss
                t = diff / np.hypot(diff[0], diff[1])
                normal = np.array([-t[1], t[0]])
                r = pred[n, k] - gt[n, k]
                along.append(abs(r[0] * t[0] + r[1] * t[1]))
                across.append(abs(r[0] * normal[0] + r[1] * normal[1]))
        for key, values in (('along', along), ('across', across)):
            per_face[key].append(100 * np.mean(values) / d if values else None)
    return per_face


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values))


def test_along_and_across_against_a_per_point_loop():
    pred, gt = tiny_faces()
    visible = np.ones((len(gt), 11))
    visible[0, 1] = 0  # an open curve's inner point: 0 and 2 go one-sided
    visible[1, [5, 7]] = 0  # 6 has no visible neighbour: no tangent
    visible[2, 3] = 0  # an open curve's end
    visible[3, [0, 1, 2, 3]] = 0  # a whole curve
    visible[4, :9] = 0  # no curve point at all: face 4 counts for nothing
    # Errors at invisible points that would dominate if they counted.
    pred = np.where(visible[..., None] > 0, pred, pred + 1e4)
    raw = [dict(attributes=dict(odd=n % 2)) for n in range(len(gt))]
    metric = FaceLandmarkMetric(
        norm_indices=(9, 10), point_types=TINY, save_outputs=False
    )
    res = run(metric, samples(pred, gt, raw=raw, visible=visible), 'my_faces')
    ref = naive_along_across(pred, gt, visible)
    assert ref['along'][4] is None and ref['along'][1] is not None
    for key, name in (('along', 'NME_along'), ('across', 'NME_across')):
        assert res[name] == pytest.approx(_mean(ref[key]), rel=1e-9)
        odd = [v for n, v in enumerate(ref[key]) if n % 2]
        even = [v for n, v in enumerate(ref[key]) if not n % 2]
        assert res[f'odd/{name}'] == pytest.approx(_mean(odd), rel=1e-9)
        assert res['odd/NME'] != pytest.approx(res['odd/' + name], rel=0.01)
        assert res[f'odd/{name}'] != pytest.approx(_mean(even), rel=0.01)
    # The components are not the point errors, nor each other.
    assert res['NME_along'] != pytest.approx(res['NME_across'], rel=0.01)

    # Invisible points excluded: the same faces with every point visible
    # give other figures (the 1e4 errors then count).
    res_all = run(
        FaceLandmarkMetric(
            norm_indices=(9, 10), point_types=TINY, save_outputs=False
        ),
        samples(pred, gt),
        'my_faces',
    )
    ref_all = naive_along_across(pred, gt, np.ones_like(visible))
    assert res_all['NME_along'] == pytest.approx(_mean(ref_all['along']))
    assert res_all['NME_along'] > 100 * res['NME_along']


def test_an_error_along_the_curve_has_no_across_component():
    pred, gt = tiny_faces(num=4, seed=3)
    neighbours = {
        1: (0, 2),  # central differences
        2: (1, 3),
        0: (0, 1),  # one-sided at the open ends
        3: (2, 3),
        5: (4, 6),  # the corner 4 still steers its neighbours
        6: (5, 7),
        7: (6, 8),
        8: (7, 4),  # the closed curve wraps round
    }
    rng = np.random.default_rng(4)
    pred = gt.copy()
    for k, (p, q) in neighbours.items():
        diff = gt[:, q] - gt[:, p]
        t = diff / np.linalg.norm(diff, axis=-1, keepdims=True)
        pred[:, k] += rng.uniform(-5, 5, (len(gt), 1)) * t
    pred[:, [4, 9, 10]] += rng.normal(0, 2, (len(gt), 3, 2))
    metric = FaceLandmarkMetric(
        norm_indices=(9, 10), point_types=TINY, save_outputs=False
    )
    res = run(metric, samples(pred, gt), 'my_faces')
    assert res['NME_across'] == pytest.approx(0.0, abs=1e-9)
    assert res['NME_along'] == pytest.approx(res['NME_curve'], rel=1e-9)
    assert res['NME_along'] > 1.0
    assert res['NME_corners'] > 0  # the corner moved, in no component


def test_point_types_must_fit_the_keypoints():
    with pytest.raises(ValueError, match='point types'):
        FaceLandmarkMetric(point_types=dict(TINY, num_keypoints=3))
    pred, gt = faces(4)
    metric = FaceLandmarkMetric(
        norm_indices=(0, 1), point_types=TINY, save_outputs=False
    )
    with pytest.raises(ValueError, match='have 11 keypoints.*has 4'):
        run(metric, samples(pred, gt))


def test_no_point_groups_for_an_unknown_layout():
    pred, gt = faces(3)
    metric = FaceLandmarkMetric(norm_indices=(0, 1), save_outputs=False)
    res = run(metric, samples(pred, gt), dataset_name='my_faces')
    assert not set(POINT_GROUP_KEYS) & set(res) and 'NME' in res


def test_subsets_from_raw_ann_info_and_files(tmp_path):
    pred, gt = faces()
    raw = [dict(attributes=f) for f in FLAGS]
    common = write_ann_file(tmp_path / 'common.json', [1, 2], [{}, {}])
    metric = FaceLandmarkMetric(
        norm_indices=(0, 1),
        subsets=dict(pose='largepose', common=common),
        save_outputs=False,
    )
    res = run(metric, samples(pred, gt, raw=raw))
    assert res['pose/NME'] == pytest.approx((2 + 9) / 2)
    assert res['common/NME'] == pytest.approx((2 + 5) / 2)
    assert not any(k.startswith('blur/') for k in res)


def test_inter_pupil_300w():
    pred, gt = faces(68, (36, 45), d=30.0)
    error = pred - gt  # 30 * NMES at every point
    # Eye centres 20 px apart: the six points of each eye around a centre.
    ring = np.array([[-2, 0], [-1, -1], [1, -1], [2, 0], [1, 1], [-1, 1]])
    gt[:, 36:42] = gt[:, :1] + ring
    gt[:, 42:48] = gt[:, :1] + ring + [20.0, 0.0]
    pred = gt + error
    metric = FaceLandmarkMetric(norm='inter_pupil', save_outputs=False)
    res = run(metric, samples(pred, gt), dataset_name='300w')
    assert res['NME'] == pytest.approx(7.0 * 30 / 20)


def test_bbox_norm_uses_sqrt_wh():
    pred, gt = faces(19, (0, 1), d=10.0)
    # Boxes of 20 x 5 (sqrt(w h) = 10) given as x1 y1 x2 y2.
    bboxes = np.array([[3.0, 4.0, 23.0, 9.0]] * 4)
    metric = FaceLandmarkMetric(norm='bbox', save_outputs=False)
    res = run(metric, samples(pred, gt, bboxes=bboxes), dataset_name='aflw')
    assert res['NME'] == pytest.approx(7.0)


def test_outputs_default_to_the_run_log_folder(tmp_path):
    log_file = tmp_path / '20250101_000000' / 'run.log'
    log_file.parent.mkdir()
    MMLogger.get_instance('test_face_metric_outputs', log_file=str(log_file))
    pred, gt = faces()
    metric = FaceLandmarkMetric(norm_indices=(0, 1))
    run(metric, samples(pred, gt), dataset_name='cofw')
    folder = log_file.parent
    assert osp.isfile(folder / 'cofw.nme.json')
    assert osp.isfile(folder / 'cofw.ced.png')


def test_config_errors():
    with pytest.raises(ValueError, match="norm must be one of .*'iod'"):
        FaceLandmarkMetric(norm='iod')
    with pytest.raises(ValueError, match='takes no norm_indices'):
        FaceLandmarkMetric(norm='bbox', norm_indices=(0, 1))
    with pytest.raises(ValueError, match='pair of anchors'):
        FaceLandmarkMetric(norm_indices=(0, 1, 2))
    with pytest.raises(ValueError, match='thresholds must be positive'):
        FaceLandmarkMetric(thresholds=(0.1, -1))
    with pytest.raises(ValueError, match=r"write \['blur'\]"):
        FaceLandmarkMetric(subsets='blur')


def test_runtime_errors(tmp_path):
    pred, gt = faces()
    data = samples(pred, gt)
    metric = FaceLandmarkMetric(save_outputs=False)
    with pytest.raises(ValueError, match="'lapa'.*give norm_indices"):
        run(metric, data, dataset_name='lapa')
    with pytest.raises(ValueError, match=r'out of range for 3 keypoints'):
        run(FaceLandmarkMetric(save_outputs=False), data)
    with pytest.raises(ValueError, match="use norm='bbox'"):
        run(FaceLandmarkMetric(save_outputs=False), data, 'aflw')

    gt[2, 1] = gt[2, 0]  # zero inter-ocular distance on id 3
    metric = FaceLandmarkMetric(norm_indices=(0, 1), save_outputs=False)
    with pytest.raises(ValueError, match=r"'id=3 \(images/2.jpg\)'"):
        run(metric, samples(pred, gt))

    pred, gt = faces()
    metric = FaceLandmarkMetric(
        norm_indices=(0, 1), subsets=['largepose'], save_outputs=False
    )
    with pytest.raises(ValueError, match='set ann_file'):
        run(metric, samples(pred, gt))
    ann = write_ann_file(tmp_path / 'a.json', [1, 2, 3], FLAGS[:3])
    metric = FaceLandmarkMetric(
        norm_indices=(0, 1), ann_file=ann, save_outputs=False
    )
    with pytest.raises(ValueError, match='annotation id 4 .* not in'):
        run(metric, samples(pred, gt))
    ann = write_ann_file(tmp_path / 'b.json', [1, 2, 3, 4], [{}] * 4)
    metric = FaceLandmarkMetric(
        norm_indices=(0, 1),
        ann_file=ann,
        subsets=['blur'],
        save_outputs=False,
    )
    with pytest.raises(ValueError, match='annotation id 1 has no attribute'):
        run(metric, samples(pred, gt))
    metric = FaceLandmarkMetric(norm='bbox', save_outputs=False)
    with pytest.raises(ValueError, match='gt_instances.bboxes'):
        run(metric, samples(pred, gt), dataset_name='aflw')


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:Use the existing "bbox_center"')
def test_in_an_mmengine_test_run(tmp_path):
    """MMPose's WFLWDataset and pipeline feed the metric; the subset flags
    are joined from ann_file on the annotation id."""
    from conftest import FIXTURE_CONFIG
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmaniso.testing import write_face_fixture

    root = tmp_path / 'data'
    paths = write_face_fixture(str(root), dict(train=1, test=4))
    coco = json.load(open(paths['test']))
    for i, ann in enumerate(coco['annotations']):
        ann['attributes'] = dict(blur=i % 2)
    json.dump(coco, open(paths['test'], 'w'))

    cfg = Config.fromfile(FIXTURE_CONFIG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.test_dataloader.dataset.data_root = str(root) + '/'
    cfg.test_evaluator = dict(
        type='FaceLandmarkMetric', ann_file=paths['test'], thresholds=[0.5]
    )
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator'):
        cfg[key] = None
    cfg.train_cfg = cfg.val_cfg = cfg.optim_wrapper = None
    cfg.param_scheduler = None
    res = Runner.from_cfg(cfg).test()
    keys = ('NME', 'FR@0.5', 'AUC@0.5') + POINT_GROUP_KEYS
    assert set(res) == {f'{s}{k}' for s in ('', 'blur/') for k in keys}
    assert all(res[k] > 0 for k in POINT_GROUP_KEYS)
    # Mean absolute components: each at most the mean point error, and
    # together at least it (triangle inequality, point by point).
    assert max(res['NME_along'], res['NME_across']) <= res['NME_curve']
    assert res['NME_along'] + res['NME_across'] >= res['NME_curve']
    per_image = glob.glob(str(tmp_path / 'work' / '*' / 'wflw.nme.json'))
    assert len(per_image) == 1
    entries = json.load(open(per_image[0]))
    assert [e['subsets'] for e in entries] == [[], ['blur'], [], ['blur']]


def test_existing_output_files_are_refused_unless_overwrite(tmp_path):
    pred, gt = faces()
    prefix = str(tmp_path / 'out' / 'run')
    json_file, png_file = FaceLandmarkMetric.output_files(prefix)
    assert (json_file, png_file) == (f'{prefix}.nme.json', f'{prefix}.ced.png')
    # Its own files: every evaluation (each validation) replaces them.
    metric = FaceLandmarkMetric(norm_indices=(0, 1), outfile_prefix=prefix)
    run(metric, samples(pred, gt))
    run(metric, samples(pred, gt))
    assert osp.isfile(json_file) and osp.isfile(png_file)
    # Another run's files: refused as soon as the metric is built.
    with pytest.raises(FileExistsError) as err:
        FaceLandmarkMetric(norm_indices=(0, 1), outfile_prefix=prefix)
    message = str(err.value)
    assert f'{json_file} already exists' in message
    assert 'overwrite=True' in message and '--overwrite' in message
    # Only the CED plot left behind is refused too.
    os.remove(json_file)
    with pytest.raises(FileExistsError, match='run.ced.png already exists'):
        FaceLandmarkMetric(norm_indices=(0, 1), outfile_prefix=prefix)
    # overwrite=True replaces them.
    with open(png_file, 'w') as f:
        f.write('old')
    metric = FaceLandmarkMetric(
        norm_indices=(0, 1), outfile_prefix=prefix, overwrite=True
    )
    run(metric, samples(pred, gt))
    assert len(json.load(open(json_file))) == len(gt)
    assert open(png_file, 'rb').read(4) == b'\x89PNG'
    # Nothing is checked when nothing is written.
    FaceLandmarkMetric(outfile_prefix=prefix, save_outputs=False)
    # Nor in a run's own timestamped log folder, which cannot hold another
    # run's files.
    log_file = tmp_path / '20250101_000001' / 'run.log'
    log_file.parent.mkdir()
    (log_file.parent / 'wflw.nme.json').write_text('[]')
    MMLogger.get_instance('test_face_metric_no_check', log_file=str(log_file))
    run(FaceLandmarkMetric(norm_indices=(0, 1)), samples(pred, gt))
    written = json.load(open(log_file.parent / 'wflw.nme.json'))
    assert len(written) == len(gt)


def test_output_file_appearing_after_build_is_refused(tmp_path):
    pred, gt = faces()
    prefix = str(tmp_path / 'run')
    metric = FaceLandmarkMetric(norm_indices=(0, 1), outfile_prefix=prefix)
    with open(f'{prefix}.nme.json', 'w') as f:
        f.write('another run')
    with pytest.raises(FileExistsError, match='run.nme.json already exists'):
        run(metric, samples(pred, gt))
    assert open(f'{prefix}.nme.json').read() == 'another run'
