"""Tests of mmaniso.datasets.training_shapes: annotations, crop frame, mean."""

import warnings

import numpy as np
import pytest
import torch

from mmaniso.datasets.training_shapes import (
    PoseAnnotations,
    crop_normalised_keypoints,
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
