from .checks import check_data_files
from .crop_feed_dataset import CropFeedDataset
from .point_types import PointTypes, get_point_types
from .samplers import PoseBalancedSampler
from .training_shapes import PoseAnnotations, read_pose_annotations

__all__ = [
    'check_data_files',
    'CropFeedDataset',
    'PointTypes',
    'get_point_types',
    'PoseAnnotations',
    'PoseBalancedSampler',
    'read_pose_annotations',
]
