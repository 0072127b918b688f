from .checks import check_data_files
from .mean_shape import PoseAnnotations, read_pose_annotations
from .point_types import PointTypes, get_point_types
from .samplers import PoseBalancedSampler

__all__ = [
    'check_data_files',
    'PointTypes',
    'get_point_types',
    'PoseAnnotations',
    'PoseBalancedSampler',
    'read_pose_annotations',
]
