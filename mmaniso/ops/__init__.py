"""Pure torch/numpy maths. Nothing here imports mmengine or mmpose."""

from .batch_affine import (
    TopdownBatch,
    TopdownParams,
    draw_topdown_params,
    topdown_augment,
    truncated_normal,
)
from .likelihood import (
    coverage_probability,
    coverage_radius,
    ellipse_axes,
    elliptical_nll,
    floored_scales,
    map_ellipses,
)
from .pose import PCA, PoseBins, mean_of_bin_means, pose_bins, weighted_pca
from .procrustes import (
    SimilarityTransform,
    apply_similarity,
    generalized_procrustes,
    procrustes_align,
)
from .tangents import curve_differences, curve_neighbours, curve_tangents
from .weights import (
    anisotropic_quadratic_form,
    anisotropic_weight_entries,
    anisotropic_weight_matrices,
    quadratic_form,
    symmetric_quadratic_form,
)

__all__ = [
    'TopdownBatch',
    'TopdownParams',
    'draw_topdown_params',
    'topdown_augment',
    'truncated_normal',
    'anisotropic_quadratic_form',
    'anisotropic_weight_entries',
    'anisotropic_weight_matrices',
    'curve_differences',
    'curve_neighbours',
    'curve_tangents',
    'quadratic_form',
    'symmetric_quadratic_form',
    'coverage_probability',
    'coverage_radius',
    'ellipse_axes',
    'elliptical_nll',
    'floored_scales',
    'map_ellipses',
    'PCA',
    'PoseBins',
    'apply_similarity',
    'SimilarityTransform',
    'mean_of_bin_means',
    'generalized_procrustes',
    'pose_bins',
    'procrustes_align',
    'weighted_pca',
]
