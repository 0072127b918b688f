"""InMemoryPoseDataset: served as MMPose's top-down datasets serve samples."""

import doctest

import numpy as np
import pytest
from mmpose.datasets.transforms import GetBBoxCenterScale

from mmaniso.datasets.training_shapes import (
    pipeline_setting,
    read_pose_annotations,
)
from mmaniso.testing import InMemoryPoseDataset, pose_dataset


def test_from_arrays_serves_one_instance_per_sample():
    kpts = np.array([[[1.0, 2.0], [5.0, 3.0]], [[0.0, 0.0], [2.0, 8.0]]])
    visible = np.array([[1, 0], [1, 1]])
    dataset = InMemoryPoseDataset.from_arrays(kpts, visible)
    assert len(dataset) == 2
    info = dataset.get_data_info(1)
    assert info['keypoints'].shape == (1, 2, 2)
    assert info['keypoints'].dtype == np.float32
    assert info['keypoints_visible'].tolist() == [[1.0, 1.0]]
    # The box is the extent of all the keypoints, visible or not.
    assert dataset.get_data_info(0)['bbox'].tolist() == [[1, 2, 5, 3]]
    annotations = read_pose_annotations(dataset)
    np.testing.assert_array_equal(annotations.keypoints, kpts)
    np.testing.assert_array_equal(annotations.visible, visible)
    np.testing.assert_array_equal(annotations.bbox_center, [[3, 2.5], [1, 4]])


def test_given_boxes_and_infos_are_served_as_given():
    kpts = np.zeros((1, 3, 2))
    boxes = np.array([[-1.0, -2.0, 4.0, 5.0]])
    dataset = InMemoryPoseDataset.from_arrays(kpts, bboxes=boxes)
    assert dataset.get_data_info(0)['bbox'].tolist() == boxes.tolist()
    raw = InMemoryPoseDataset([dict(keypoints='not checked')])
    info = raw.get_data_info(0)
    info['keypoints'] = None  # a copy: the dataset keeps its own
    assert raw.get_data_info(0) == dict(keypoints='not checked')


def test_pipeline_settings_can_be_looked_up():
    dataset = InMemoryPoseDataset.from_arrays(
        np.zeros((1, 3, 2)), pipeline=[GetBBoxCenterScale(padding=1.5)]
    )
    assert pipeline_setting(dataset, 'GetBBoxCenterScale', 'padding') == 1.5
    plain = InMemoryPoseDataset.from_arrays(np.zeros((1, 3, 2)))
    assert pipeline_setting(plain, 'GetBBoxCenterScale', 'padding') is None


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match=r'keypoints must have shape'):
        InMemoryPoseDataset.from_arrays(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r'visible must have shape \(1, 3\)'):
        InMemoryPoseDataset.from_arrays(np.zeros((1, 3, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match=r'bboxes must have shape \(1, 4\)'):
        InMemoryPoseDataset.from_arrays(
            np.zeros((1, 3, 2)), bboxes=np.ones(4)
        )


def test_docstring_example_runs():
    result = doctest.testmod(pose_dataset)
    assert result.attempted > 0 and result.failed == 0
