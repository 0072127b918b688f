"""Tests of mmaniso.datasets.training_shapes: annotations, crop frame, mean."""

import warnings

import numpy as np
import pytest
import torch

from mmaniso.datasets.training_shapes import (
    PoseAnnotations,
    crop_normalised_keypoints,
    dataset_pose_bins,
    head_mean_shape,
    pipeline_setting,
    read_pose_annotations,
)
from mmaniso.testing import InMemoryPoseDataset


@pytest.fixture(scope='module')
def wflw_dataset(wflw_fixture):
    from mmengine.registry import DefaultScope
    from mmpose.datasets import WFLWDataset

    with DefaultScope.overwrite_default_scope('mmpose'):
        return WFLWDataset(
            data_root=str(wflw_fixture),
            ann_file='annotations/face_landmarks_wflw_train.json',
            data_prefix=dict(img='images/'),
            pipeline=[
                dict(type='LoadImage'),
                dict(type='GetBBoxCenterScale', padding=1.4),
                dict(type='TopdownAffine', input_size=(64, 48)),
            ],
        )


def mmpose_labels(info: dict, input_size, padding: float) -> np.ndarray:
    """Keypoints through MMPose's own transforms and codec, (K, 2)."""
    from mmpose.codecs import RegressionLabel
    from mmpose.datasets.transforms import GetBBoxCenterScale, TopdownAffine

    info = dict(info, img=np.zeros((96, 96, 3), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # 'Use the existing bbox_center'
        info = GetBBoxCenterScale(padding=padding)(info)
    info = TopdownAffine(input_size=input_size)(info)
    codec = RegressionLabel(input_size=input_size)
    encoded = codec.encode(
        info['transformed_keypoints'], info['keypoints_visible']
    )
    return encoded['keypoint_labels'][0]


@pytest.mark.parametrize('input_size', [(64, 64), (64, 48), (48, 64)])
def test_crop_frame_matches_mmpose_pipeline(wflw_dataset, input_size):
    annotations = read_pose_annotations(wflw_dataset)
    ours = crop_normalised_keypoints(annotations, input_size, padding=1.25)
    for idx in (0, 3, 7):
        info = wflw_dataset.get_data_info(idx)
        theirs = mmpose_labels(info, input_size, 1.25)
        np.testing.assert_allclose(ours[idx], theirs, atol=2e-5)


def test_crop_frame_from_bbox_corners_matches_mmpose():
    rng = np.random.default_rng(0)
    kpts = rng.uniform(20, 70, (3, 5, 2)).astype(np.float32)
    infos = [
        dict(
            keypoints=k[None],
            keypoints_visible=np.ones((1, 5), np.float32),
            bbox=np.array([[*k.min(0) - 3, *k.max(0) + 2]], np.float32),
        )
        for k in kpts
    ]
    annotations = read_pose_annotations(InMemoryPoseDataset(infos))
    ours = crop_normalised_keypoints(annotations, (32, 40), padding=1.1)
    for idx, info in enumerate(infos):
        theirs = mmpose_labels(info, (32, 40), 1.1)
        np.testing.assert_allclose(ours[idx], theirs, atol=2e-5)


def test_reads_annotations_of_wflw(wflw_dataset):
    annotations = read_pose_annotations(wflw_dataset)
    num = len(wflw_dataset)
    assert annotations.keypoints.shape == (num, 98, 2)
    assert annotations.visible.shape == (num, 98)
    info = wflw_dataset.get_data_info(5)
    np.testing.assert_array_equal(
        annotations.bbox_center[5], info['bbox_center'][0]
    )
    np.testing.assert_array_equal(
        annotations.bbox_scale[5], info['bbox_scale'][0]
    )


def test_annotation_errors_are_clear():
    good = dict(
        keypoints=np.zeros((1, 3, 2)),
        bbox=np.array([[0, 0, 1, 1]], np.float32),
    )
    with pytest.raises(ValueError, match='empty'):
        read_pose_annotations(InMemoryPoseDataset([]))
    with pytest.raises(ValueError, match='sample 1 has neither bbox'):
        read_pose_annotations(
            InMemoryPoseDataset([good, dict(keypoints=np.zeros((1, 3, 2)))])
        )
    two = dict(good, keypoints=np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match='sample 1 does not hold one'):
        read_pose_annotations(InMemoryPoseDataset([good, two]))
    other = dict(good, keypoints=np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match='sample 1 does not hold one'):
        read_pose_annotations(InMemoryPoseDataset([good, other]))

    class CombinedDataset(InMemoryPoseDataset):
        pass

    with pytest.raises(TypeError, match='CombinedDataset'):
        read_pose_annotations(CombinedDataset([good]))
    with pytest.raises(TypeError, match='get_data_info'):
        read_pose_annotations([good])


def test_missing_visibility_means_visible():
    info = dict(keypoints=np.ones((1, 3, 2)), bbox=np.array([[0, 0, 2, 2]]))
    annotations = read_pose_annotations(InMemoryPoseDataset([info]))
    assert annotations.visible.tolist() == [[1.0, 1.0, 1.0]]
    np.testing.assert_array_equal(annotations.bbox_center, [[1.0, 1.0]])
    np.testing.assert_array_equal(annotations.bbox_scale, [[2.0, 2.0]])


def test_pipeline_setting_finds_transforms(wflw_dataset):
    assert pipeline_setting(wflw_dataset, 'GetBBoxCenterScale', 'padding')
    assert (
        pipeline_setting(wflw_dataset, 'GetBBoxCenterScale', 'padding') == 1.4
    )
    assert pipeline_setting(wflw_dataset, 'TopdownAffine', 'input_size') == (
        64,
        48,
    )
    empty = InMemoryPoseDataset([])
    assert pipeline_setting(empty, 'TopdownAffine', 'x') is None


def test_pose_balanced_mean_shape_by_hand():
    # Two samples in bin 0, one in bin 2; boxes make the frame easy:
    # centre (10, 10), size 8 -> padded 10, u = (p - 10) / 10 + 0.5.
    kpts = np.array(
        [[[10.0, 10.0]], [[12.0, 10.0]], [[15.0, 5.0]]], np.float32
    )
    annotations = PoseAnnotations(
        kpts,
        np.ones((3, 1), np.float32),
        np.full((3, 2), 10.0, np.float32),
        np.full((3, 2), 8.0, np.float32),
    )
    mean = head_mean_shape(
        annotations, torch.tensor([0, 0, 2]), (16, 16), padding=1.25
    )
    bin0 = np.array([0.6, 0.5])  # mean of (0.5, 0.5) and (0.7, 0.5)
    bin2 = np.array([1.0, 0.0])
    assert mean.dtype == torch.float32
    np.testing.assert_allclose(mean.numpy(), [(bin0 + bin2) / 2], atol=1e-6)


@pytest.mark.parametrize(
    'bad, field',
    [
        (dict(keypoints=np.array([[[0.0, 1.0], [np.nan, 1.0]]])), 'keypoints'),
        (
            dict(keypoints_visible=np.array([[1.0, np.nan]])),
            'keypoints_visible',
        ),
        (dict(bbox_center=np.array([[np.inf, 1.0]])), 'bbox_center'),
        (dict(bbox_scale=np.array([[1.0, -np.inf]])), 'bbox_scale'),
        # Corners given as bbox: a NaN there used to be taken for "no
        # corners" and left the box uninitialised.
        (dict(bbox=np.array([[np.nan, 0.0, 2.0, 2.0]])), 'bbox'),
        (dict(bbox=np.array([[0.0, 0.0, np.inf, 2.0]])), 'bbox'),
    ],
)
def test_non_finite_annotation_names_sample_and_field(bad, field):
    good = dict(
        keypoints=np.ones((1, 2, 2)),
        bbox_center=np.array([[1.0, 1.0]]),
        bbox_scale=np.array([[2.0, 2.0]]),
    )
    sample = dict(good, **bad)
    if 'bbox' in bad:
        del sample['bbox_center'], sample['bbox_scale']
    with pytest.raises(ValueError) as err:
        read_pose_annotations(InMemoryPoseDataset([good, good, sample]))
    assert (
        'sample 2 of InMemoryPoseDataset has a NaN or infinite value in '
        f'"{field}"' in (str(err.value))
    )


def faces_in_boxes(num=60, seed=0):
    """Faces turned by yaw (up to about 60 degrees), rolled a little, in
    boxes around their keypoints, at random places and sizes in pixels."""
    from mmaniso.synthface.face_template import mean_face

    rng = np.random.default_rng(seed)
    face = mean_face(98)
    depth = 0.7 * np.sqrt(np.clip(1 - face[:, 0] ** 2, 0, None))
    yaw = np.deg2rad(np.clip(rng.normal(0, 25, num), -60, 60))
    x = np.cos(yaw)[:, None] * face[:, 0] + np.sin(yaw)[:, None] * depth
    shapes = np.stack([x, np.broadcast_to(face[:, 1], x.shape)], -1)
    shapes = shapes + rng.normal(0, 0.01, shapes.shape)
    roll = rng.normal(0, 0.15, num)
    rot = np.stack(
        [
            np.stack([np.cos(roll), -np.sin(roll)], -1),
            np.stack([np.sin(roll), np.cos(roll)], -1),
        ],
        -2,
    )
    size = rng.uniform(40, 120, num)[:, None, None]
    place = rng.uniform(100, 400, (num, 1, 2))
    kpts = size * shapes @ rot.transpose(0, 2, 1) + place
    jitter = rng.normal(0, 2, (num, 4))
    boxes = np.concatenate([kpts.min(1), kpts.max(1)], 1) + jitter
    return kpts.astype(np.float32), boxes.astype(np.float32)


def test_a_face_far_outside_its_box_leaves_the_mean_shape_alone():
    # One training face whose keypoints lie 200 px outside its box: a plain
    # mean of bin means moves with it; the robust statistics leave it out,
    # say so, and keep the mean of the clean data.
    kpts, boxes = faces_in_boxes()
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # clean data: no warning at all
        clean = dataset_pose_bins(
            InMemoryPoseDataset.from_arrays(kpts, bboxes=boxes), 9
        )
    assert not clean.exclude.any()
    # A face of the thinnest pose bin, whose mean counts as much as a full
    # bin's.
    thin = int(torch.argmin(clean.bins.counts[clean.bins.ids]))
    attacked = kpts.copy()
    attacked[thin] += 200.0
    named = f'dataset indices \\[{thin}\\]'
    with pytest.warns(UserWarning, match=named) as rec:
        bad = dataset_pose_bins(
            InMemoryPoseDataset.from_arrays(attacked, bboxes=boxes), 9
        )
    message = str(rec[0].message)
    assert '1 of 60 training samples' in message
    assert f'sample {thin}: offset' in message
    assert 'Check these annotations' in message
    assert torch.nonzero(bad.exclude).flatten().tolist() == [thin]

    def mean(binned, exclude):
        return head_mean_shape(
            binned.annotations, binned.bins.ids, (64, 64), num_bins=9,
            exclude=exclude,
        )  # fmt: skip

    # A plain mean moves by a sizeable part of the crop...
    plain = (mean(bad, None) - mean(clean, None)).abs().max()
    assert plain > 0.05
    # ...the robust one is that of the other 59 faces, as if the wrong one
    # were not there.
    others = np.delete(np.arange(60), thin)
    without = dataset_pose_bins(
        InMemoryPoseDataset.from_arrays(kpts[others], bboxes=boxes[others]),
        9,
    )
    torch.testing.assert_close(
        mean(bad, bad.exclude), mean(without, None), atol=1e-5, rtol=0
    )


def test_a_garbled_face_keeps_no_pose_bin_of_its_own():
    # Keypoints in the wrong order: with them in the fit, undersampling's
    # smallest bin could be that one face.
    kpts, boxes = faces_in_boxes()
    garbled = kpts.copy()
    garbled[3] = garbled[3, ::-1]
    clean = dataset_pose_bins(
        InMemoryPoseDataset.from_arrays(kpts, bboxes=boxes), 5
    )
    with pytest.warns(UserWarning, match='sample 3: .*shape'):
        bad = dataset_pose_bins(
            InMemoryPoseDataset.from_arrays(garbled, bboxes=boxes), 5
        )
    keep = torch.ones(60, dtype=torch.bool)
    keep[3] = False
    assert bad.bins.ids[keep].tolist() == clean.bins.ids[keep].tolist()
    torch.testing.assert_close(bad.bins.edges, clean.bins.edges, atol=0.05,
                               rtol=0)  # fmt: skip


def test_synthface_large_poses_are_not_outliers(tmp_path):
    # SynthFace's large poses and expressions reached the shape floor of an
    # earlier version (one face of 2,000 left out): genuine faces, however
    # turned, must keep their place in the mean shape.
    import json

    from mmaniso.synthface import write_synthface

    paths = write_synthface(
        str(tmp_path), dict(train=80), seed=1, workers=1, progress=False
    )
    with open(paths['train']) as f:
        anns = json.load(f)['annotations']
    kpts = np.array([a['keypoints'] for a in anns], float).reshape(
        len(anns), -1, 3
    )[..., :2]
    boxes = np.array([a['bbox'] for a in anns], float)
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        found = dataset_pose_bins(
            InMemoryPoseDataset.from_arrays(kpts, bboxes=boxes), 9
        )
    assert not found.exclude.any()
    # And with room to spare: the farthest of these genuine faces sits well
    # below the shape floor (2,000 faces reach a little further).
    from mmaniso.ops.pose import OUTLIER_FLOORS

    assert 1.25 * float(found.outliers.scores[:, 2].max()) < OUTLIER_FLOORS[2]
