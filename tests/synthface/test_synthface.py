"""SynthFace: deterministic rendering, the along-curve noise model, MMPose
loading."""

import json
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import load_tool

from mmaniso.datasets.checks import DataCheckError, check_keypoint_counts
from mmaniso.datasets.layouts import WFLW_TO_300W
from mmaniso.datasets.point_types import get_point_types
from mmaniso.synthface import (
    ATTRIBUTES,
    SIGMA_C,
    SIGMA_N,
    SIGMA_T,
    annotation_noise,
    point_at_arc_length,
    sample_pose,
    synth_sample,
    write_synthface,
)
from mmaniso.synthface import face_template_3d as t3d

SPLITS = dict(train=8, test=4)
SIZE = 64


def _write(root, seed=0, workers=1, layout='wflw', splits=SPLITS):
    return write_synthface(
        str(root),
        dict(splits),
        size=SIZE,
        layout=layout,
        seed=seed,
        workers=workers,
        progress=False,
    )


@pytest.fixture(scope='module')
def synth_wflw(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthface_wflw')
    return root, _write(root)


def _images(root):
    folder = osp.join(str(root), 'images')
    ann_file = osp.join(
        str(root), 'annotations', 'face_landmarks_wflw_train.json'
    )
    with open(ann_file) as f:
        names = [img['file_name'] for img in json.load(f)['images']]
    return [cv2.imread(osp.join(folder, n)) for n in names]


def _clean_face() -> np.ndarray:
    """A frontal WFLW face of inter-ocular distance about 47 px."""
    return t3d.wflw_mean_face_3d()[:, :2] * 40 + 64


def _naive_projection(points, polyline):
    """Arc length and signed distance of each point's nearest point on an
    open polyline, by a per-segment loop (a reference, deliberately
    simple)."""
    arcs, dists = [], []
    for p in points:
        best = (np.inf, 0.0, 0.0)
        start = 0.0
        for a, b in zip(polyline[:-1], polyline[1:]):
            seg = b - a
            length = np.linalg.norm(seg)
            t = np.clip(np.dot(p - a, seg) / length**2, 0, 1)
            q = a + t * seg
            dist = np.linalg.norm(p - q)
            if dist < best[0]:
                normal = np.array([-seg[1], seg[0]]) / length
                best = (dist, start + t * length, np.dot(p - q, normal))
            start += length
        arcs.append(best[1])
        dists.append(best[2])
    return np.array(arcs), np.array(dists)


# ------------------------------------------------------------ determinism
def test_same_seed_gives_identical_files_with_any_worker_count(
    tmp_path, synth_wflw
):
    root, paths = synth_wflw
    again = _write(tmp_path / 'again', workers=2)
    for split in SPLITS:
        with open(paths[split], 'rb') as f1, open(again[split], 'rb') as f2:
            assert f1.read() == f2.read()
    for a, b in zip(_images(root), _images(tmp_path / 'again')):
        assert a is not None and a.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(a, b)


def test_other_seed_gives_other_faces(tmp_path, synth_wflw):
    root, paths = synth_wflw
    other = _write(tmp_path / 'other', seed=1)
    with open(paths['train'], 'rb') as f1, open(other['train'], 'rb') as f2:
        assert f1.read() != f2.read()
    for a, b in zip(_images(root), _images(tmp_path / 'other')):
        assert not np.array_equal(a, b)


def test_sample_depends_on_split_and_index_only():
    image, ann = synth_sample(3, 'train', 5, size=SIZE)
    image2, ann2 = synth_sample(3, 'train', 5, size=SIZE)
    np.testing.assert_array_equal(image, image2)
    assert ann == ann2
    other, _ = synth_sample(3, 'test', 5, size=SIZE)
    assert not np.array_equal(image, other)


# ------------------------------------------------------------ noise model
def test_curve_points_slide_along_the_curve_and_barely_leave_it():
    clean = _clean_face()
    d = float(np.linalg.norm(clean[60] - clean[72]))
    rng = np.random.default_rng(0)
    noisy = np.stack(
        [annotation_noise(clean, 'wflw', rng) for _ in range(800)]
    )  # (N, 98, 2)
    jaw = clean[:33]
    arc0 = np.concatenate(
        [[0.0], np.cumsum(np.linalg.norm(np.diff(jaw, axis=0), axis=1))]
    )
    along, across = [], []
    for i in range(6, 27, 4):  # inner jaw points, far from the ends
        arc, dist = _naive_projection(noisy[:, i], jaw)
        along.append(arc - arc0[i])
        across.append(dist)
    along, across = np.concatenate(along), np.concatenate(across)
    assert abs(along.std() / d - SIGMA_T) < 0.1 * SIGMA_T
    assert abs(across.std() / d - SIGMA_N) < 0.1 * SIGMA_N
    assert abs(along.mean()) < 0.1 * SIGMA_T * d
    # Anisotropic: six times more spread along than across.
    assert along.std() > 4 * across.std()


def test_annotated_points_stay_near_the_clean_polylines():
    clean = _clean_face()
    d = float(np.linalg.norm(clean[60] - clean[72]))
    pt = get_point_types('wflw')
    rng = np.random.default_rng(1)
    noisy = np.stack([annotation_noise(clean, pt, rng) for _ in range(100)])
    dists = []
    for curve in pt.curves:
        idx = list(curve.indices)
        poly = clean[idx + idx[:1]] if curve.closed else clean[idx]
        inner = idx if curve.closed else idx[1:-1]
        for i in inner:
            if i in pt.corners:
                continue
            _, dist = _naive_projection(noisy[:, i], poly)
            dists.append(np.abs(dist))
    dists = np.concatenate(dists) / d
    assert np.quantile(dists, 0.99) < 3.5 * SIGMA_N
    # ... while the points themselves moved by about sigma_t.
    moved = np.linalg.norm(noisy - clean, axis=-1) / d
    assert np.median(moved[:, 1:32]) > 0.5 * SIGMA_T


def test_corners_and_isolated_points_move_isotropically():
    clean = _clean_face()
    d = float(np.linalg.norm(clean[60] - clean[72]))
    pt = get_point_types('wflw')
    still = list(pt.corners) + list(pt.isolated)
    assert sorted(still) == [60, 64, 68, 72, 76, 82, 88, 92, 96, 97]
    rng = np.random.default_rng(2)
    noisy = np.stack([annotation_noise(clean, pt, rng) for _ in range(1500)])
    delta = (noisy[:, still] - clean[still]) / d  # (N, 10, 2)
    sx, sy = delta[..., 0].std(), delta[..., 1].std()
    assert abs(sx - SIGMA_C) < 0.08 * SIGMA_C
    assert abs(sy - SIGMA_C) < 0.08 * SIGMA_C
    corr = np.corrcoef(delta[..., 0].ravel(), delta[..., 1].ravel())[0, 1]
    assert abs(corr) < 0.05


def test_noise_scales_are_arguments():
    clean = _clean_face()
    rng = np.random.default_rng(3)
    same = annotation_noise(
        clean, 'wflw', rng, sigma_t=0, sigma_n=0, sigma_c=0
    )
    np.testing.assert_allclose(same, clean, atol=1e-9)
    bigger = annotation_noise(clean, 'wflw', rng, interocular=470.0)
    smaller = annotation_noise(clean, 'wflw', rng, interocular=4.7)
    assert np.abs(bigger - clean).mean() > 20 * np.abs(smaller - clean).mean()


def test_point_at_arc_length_wraps_closed_and_extends_open_curves():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    pts, normals = point_at_arc_length(square, True, np.array([1.5, 4.25]))
    np.testing.assert_allclose(pts, [[1.0, 0.5], [0.25, 0.0]])
    np.testing.assert_allclose(normals, [[-1.0, 0.0], [0.0, 1.0]])
    pts, _ = point_at_arc_length(square, False, np.array([-0.5, 3.5]))
    np.testing.assert_allclose(pts, [[-0.5, 0.0], [-0.5, 1.0]])


def test_noise_refuses_a_wrong_shape():
    with pytest.raises(ValueError, match=r'shape \(68, 2\)'):
        annotation_noise(_clean_face(), '300w', np.random.default_rng(0))


# ------------------------------------------------------------ poses, JSON
def test_pose_distribution_is_skewed_towards_frontal():
    rng = np.random.default_rng(0)
    yaw = np.abs([sample_pose(rng)[0] for _ in range(4000)])
    assert (yaw < 20).mean() > 0.5
    assert 0.05 < (yaw > 40).mean() < 0.2
    assert yaw.max() <= 75


def test_annotations_carry_clean_points_pose_box_and_flags(synth_wflw):
    _, paths = synth_wflw
    with open(paths['train']) as f:
        coco = json.load(f)
    noise = coco['info']['noise']
    assert (noise['sigma_t'], noise['sigma_n'], noise['sigma_c']) == (
        SIGMA_T,
        SIGMA_N,
        SIGMA_C,
    )
    assert len(coco['annotations']) == SPLITS['train']
    for ann in coco['annotations']:
        kpts = np.array(ann['keypoints']).reshape(-1, 3)
        clean = np.array(ann['keypoints_clean']).reshape(-1, 3)
        assert kpts.shape == clean.shape == (98, 3)
        assert set(kpts[:, 2]) <= {1.0, 2.0}
        np.testing.assert_array_equal(kpts[:, 2], clean[:, 2])
        assert not np.allclose(kpts[:, :2], clean[:, :2])
        # Noise of a few percent of the inter-ocular distance.
        err = np.linalg.norm(kpts[:, :2] - clean[:, :2], axis=1)
        assert 0.005 < err.mean() / ann['interocular'] < 0.1
        lo, hi = clean[:, :2].min(0), clean[:, :2].max(0)
        np.testing.assert_allclose(ann['center'], (lo + hi) / 2, atol=2e-3)
        np.testing.assert_allclose(
            ann['scale'], (hi - lo).max() / 200, atol=1e-5
        )
        np.testing.assert_allclose(ann['bbox'][2:], hi - lo, atol=2e-3)
        assert set(ann['attributes']) == set(ATTRIBUTES)
        assert ann['attributes']['largepose'] == int(abs(ann['yaw']) > 40)
        assert -75 <= ann['yaw'] <= 75
        assert {'pitch', 'roll'} <= set(ann)


def test_landmarks_lie_on_the_drawn_features(synth_wflw):
    """Landmarks sit on drawn edges (contour, lids, brows, lips): the image
    gradient is stronger at a face's own landmarks than at another face's
    landmarks put on the same image."""
    root, paths = synth_wflw
    with open(paths['train']) as f:
        anns = json.load(f)['annotations']
    mags, points = [], []
    for ann, img in zip(anns, _images(root)):
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
        mags.append(np.hypot(gx, gy))
        clean = np.array(ann['keypoints_clean']).reshape(-1, 3)[:, :2]
        points.append(np.clip(np.round(clean).astype(int), 0, SIZE - 1))

    def edge_strength(mag, pts):
        return mag[pts[:, 1], pts[:, 0]].mean()

    own = np.array([edge_strength(m, p) for m, p in zip(mags, points)])
    other = np.array(
        [edge_strength(m, points[i - 1]) for i, m in enumerate(mags)]
    )
    assert (own > other).mean() >= 0.75
    assert own.mean() > 1.4 * other.mean()


def test_wflw_json_loads_in_mmpose_and_passes_the_data_check(synth_wflw):
    from mmpose.datasets import WFLWDataset

    root, paths = synth_wflw
    ds = WFLWDataset(
        data_root=str(root),
        ann_file='annotations/face_landmarks_wflw_train.json',
        data_prefix=dict(img='images/'),
        pipeline=[],
        test_mode=True,
    )
    assert len(ds) == SPLITS['train']
    info = ds.get_data_info(0)
    assert info['keypoints'].shape == (1, 98, 2)
    assert osp.isfile(info['img_path'])
    with open(paths['train']) as f:
        first = json.load(f)['annotations'][0]
    np.testing.assert_allclose(
        info['keypoints'][0],
        np.array(first['keypoints']).reshape(-1, 3)[:, :2],
        rtol=1e-6,
    )
    check_keypoint_counts(paths['train'], 98, 'WFLWDataset metainfo')
    with pytest.raises(DataCheckError, match='has 98 keypoints'):
        check_keypoint_counts(paths['train'], 68, '300W metainfo')


def test_300w_layout_shares_the_images_and_loads_in_mmpose(
    tmp_path, synth_wflw
):
    from mmpose.datasets import Face300WDataset

    root, wflw_paths = synth_wflw
    paths = _write(tmp_path, layout='300w', splits=dict(train=3))
    assert osp.basename(paths['train']) == 'face_landmarks_300w_train.json'
    # Read back as the WFLW test above reads its file, by 300W's dataset.
    ds = Face300WDataset(
        data_root=str(tmp_path),
        ann_file='annotations/face_landmarks_300w_train.json',
        data_prefix=dict(img='images/'),
        pipeline=[],
        test_mode=True,
    )
    assert len(ds) == 3
    assert ds.get_data_info(0)['keypoints'].shape == (1, 68, 2)
    check_keypoint_counts(paths['train'], 68, 'Face300WDataset metainfo')
    with open(paths['train']) as f:
        anns = json.load(f)['annotations']
    with open(wflw_paths['train']) as f:
        wflw = json.load(f)['annotations']
    for a, w in zip(anns, wflw):
        clean = np.array(a['keypoints_clean']).reshape(-1, 3)
        clean98 = np.array(w['keypoints_clean']).reshape(-1, 3)
        np.testing.assert_array_equal(clean, clean98[WFLW_TO_300W])
    img = cv2.imread(str(tmp_path / 'images' / 'train_00001.jpg'))
    np.testing.assert_array_equal(img, _images(root)[0])


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match='layout must be one of'):
        write_synthface(str(tmp_path), dict(train=1), layout='aflw')
    with pytest.raises(ValueError, match='seed must be a non-negative'):
        write_synthface(str(tmp_path), dict(train=1), seed=-1)


def test_cli_writes_data_and_a_preview(tmp_path):
    module = load_tool('tools', 'dataset_converters', 'make_synthface.py')
    preview = tmp_path / 'preview.png'
    paths = module.main(
        [
            str(tmp_path / 'data'),
            '--num-train', '4',
            '--num-test', '2',
            '--size', '48',
            '--workers', '1',
            '--preview', str(preview),
        ]
    )  # fmt: skip
    with open(paths['test']) as f:
        assert len(json.load(f)['annotations']) == 2
    grid = cv2.imread(str(preview))
    assert grid is not None and grid.shape == (2 * 192, 2 * 192, 3)
    assert 'val' not in paths

    # A validation split comes only when asked for, and leaves the test
    # split as it was (each split has its own random streams).
    with_val = module.main(
        [
            str(tmp_path / 'with_val'),
            '--num-train', '4',
            '--num-val', '3',
            '--num-test', '2',
            '--size', '48',
            '--workers', '1',
        ]
    )  # fmt: skip
    with open(with_val['val']) as f:
        assert len(json.load(f)['annotations']) == 3
    with open(paths['test']) as f, open(with_val['test']) as g:
        assert json.load(f)['annotations'] == json.load(g)['annotations']


def test_docstring_examples_run():
    import doctest

    from mmaniso.synthface import noise

    for module in (noise, t3d):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0
