"""Face-alignment metrics (NME, FR, AUC, CED).

:mod:`.functional` holds the maths (numpy only); :class:`FaceLandmarkMetric`
registers it into MMPose's ``METRICS``.
"""

from .ced_plot import plot_ced
from .face_landmark_metric import FaceLandmarkMetric
from .functional import (
    auc,
    box_distances,
    ced_curve,
    failure_rate,
    keypoint_distances,
    norm_indices_for,
    per_image_nme,
    summarise,
)

__all__ = [
    'FaceLandmarkMetric',
    'auc',
    'box_distances',
    'ced_curve',
    'failure_rate',
    'keypoint_distances',
    'norm_indices_for',
    'per_image_nme',
    'plot_ced',
    'summarise',
]
