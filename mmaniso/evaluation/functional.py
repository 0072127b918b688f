"""Face-alignment error measures: NME per image, CED, AUC and FR.

Numpy (scipy for the integral; torch only inside the curve tangents of
:mod:`mmaniso.ops.tangents`, the loss's own); nothing here imports mmengine
or mmpose, so the numbers can be checked and reused outside a runner.
Errors are fractions of the normalising distance throughout; the registered
:class:`~mmaniso.evaluation.FaceLandmarkMetric` reports NME and FR in
percent.
"""

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy.integrate import simpson

from mmaniso.datasets.layouts import LAYOUTS
from mmaniso.ops.cost import MIN_TANGENT_LENGTH
from mmaniso.ops.tangents import curve_tangents

# One end of a normalising segment: a keypoint index, or several whose mean
# is the end (e.g. an eye centre from its six contour points).
Anchor = Union[int, Sequence[int]]
NormIndices = Tuple[Anchor, Anchor]

NORMS = ('inter_ocular', 'inter_pupil', 'bbox')
# The metric's NME over groups of points, in table order: the points on a
# curve (not corners), their error along and across the ground-truth curve,
# and the corners.
POINT_GROUP_KEYS = ('NME_curve', 'NME_along', 'NME_across', 'NME_corners')

# Datasets normalised by the face box only.
BOX_ONLY = tuple(name for name, lay in LAYOUTS.items() if lay.norm == 'bbox')
# Keyed by MMPose's ``dataset_name`` (0-based indices), read from the
# layouts (mmaniso/datasets/layouts.py); see docs/data_preparation.md and
# the protocols they come from.
NORM_INDICES: Dict[str, Dict[str, NormIndices]] = {
    # Outer eye corners: the standard of MMPose, HRNet, PIPNet, ADNet, STAR.
    'inter_ocular': {
        name: lay.outer_eye_corners
        for name, lay in LAYOUTS.items()
        if name not in BOX_ONLY
    },
    # Pupils; 300W has none, so the eye centres are the means of the six
    # points around each eye (STAR, AWing).
    'inter_pupil': {
        name: lay.pupils
        for name, lay in LAYOUTS.items()
        if name not in BOX_ONLY
    },
}


def norm_indices_for(norm: str, dataset_name: str) -> Optional[NormIndices]:
    """Looks up the normalising keypoints of a dataset.

    Args:
        norm: ``'inter_ocular'``, ``'inter_pupil'`` or ``'bbox'``.
        dataset_name: MMPose's ``dataset_meta['dataset_name']``.

    Returns:
        The pair of anchors, or ``None`` for ``norm='bbox'``.

    Example:
        >>> norm_indices_for('inter_ocular', 'wflw')
        (60, 72)
    """
    if norm not in NORMS:
        raise ValueError(f'norm must be one of {NORMS}, got {norm!r}')
    if norm == 'bbox':
        return None
    table = NORM_INDICES[norm]
    if dataset_name not in table:
        if dataset_name in BOX_ONLY:
            raise ValueError(
                f'{dataset_name!r} is evaluated with the face box: use '
                f"norm='bbox' instead of {norm!r}"
            )
        raise ValueError(
            f'no {norm} indices known for dataset {dataset_name!r} (known: '
            f'{sorted(table)}); give norm_indices=(i, j) explicitly'
        )
    return table[dataset_name]


def _anchor_list(anchor: Anchor) -> Tuple[int, ...]:
    if isinstance(anchor, (int, np.integer)):
        return (int(anchor),)
    out = tuple(int(i) for i in anchor)
    if not out:
        raise ValueError('a normalisation anchor needs at least one index')
    return out


def keypoint_distances(
    gt: np.ndarray, norm_indices: NormIndices
) -> np.ndarray:
    """Distance between two ground-truth anchors of each image.

    .. math:: d_n = \\lVert \\bar g_{n,A} - \\bar g_{n,B} \\rVert_2

    Args:
        gt: Ground-truth keypoints, shape (N, K, 2).
        norm_indices: Two anchors, each an index or a group of indices whose
            mean is the anchor point.

    Returns:
        The distances, shape (N,).

    Example:
        >>> gt = np.array([[[0.0, 0.0], [3.0, 4.0]]])
        >>> keypoint_distances(gt, (0, 1))
        array([5.])
    """
    gt = np.asarray(gt, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(f'gt must have shape (N, K, 2), got {gt.shape}')
    if len(norm_indices) != 2:
        raise ValueError(
            f'norm_indices must be a pair of anchors, got {norm_indices!r}'
        )
    num_keypoints = gt.shape[1]
    ends = []
    for anchor in norm_indices:
        idx = _anchor_list(anchor)
        bad = [i for i in idx if not 0 <= i < num_keypoints]
        if bad:
            raise ValueError(
                f'norm_indices {norm_indices!r} out of range for '
                f'{num_keypoints} keypoints (index {bad[0]}); check the '
                f"dataset's keypoint layout or give norm_indices"
            )
        ends.append(gt[:, list(idx)].mean(1))  # (N, 2)
    return np.linalg.norm(ends[0] - ends[1], axis=-1)


def box_distances(bboxes: np.ndarray) -> np.ndarray:
    """Geometric mean of each box's sides, √(w·h).

    Args:
        bboxes: Boxes as (x1, y1, x2, y2), shape (N, 4).

    Returns:
        The sizes, shape (N,).

    Example:
        >>> box_distances(np.array([[0.0, 0.0, 4.0, 9.0]]))
        array([6.])
    """
    bboxes = np.asarray(bboxes, dtype=np.float64)
    if bboxes.ndim != 2 or bboxes.shape[-1] != 4:
        raise ValueError(f'bboxes must have shape (N, 4), got {bboxes.shape}')
    wh = bboxes[:, 2:] - bboxes[:, :2]  # (N, 2)
    return np.sqrt(np.clip(wh[:, 0] * wh[:, 1], 0, None))


def per_image_nme(
    pred: np.ndarray,
    gt: np.ndarray,
    norm_dist: np.ndarray,
    ids: Optional[Sequence] = None,
) -> np.ndarray:
    """Normalised mean error of each image, over all its keypoints.

    .. math:: e_n = \\frac{1}{K d_n} \\sum_k \\lVert p_{nk} - g_{nk} \\rVert_2

    Args:
        pred: Predicted keypoints, shape (N, K, 2).
        gt: Ground-truth keypoints, shape (N, K, 2).
        norm_dist: Normalising distance of each image, shape (N,).
        ids: Names of the images for error messages; defaults to indices.

    Returns:
        The errors as fractions of ``norm_dist``, shape (N,).

    Example:
        >>> gt = np.zeros((1, 2, 2))
        >>> per_image_nme(gt + [3.0, 4.0], gt, np.array([10.0]))
        array([0.5])
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    norm_dist = np.asarray(norm_dist, dtype=np.float64).reshape(-1)
    if pred.shape != gt.shape or gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(
            f'pred and gt must both have shape (N, K, 2), got {pred.shape} '
            f'and {gt.shape}'
        )
    if norm_dist.shape != (len(gt),):
        raise ValueError(
            f'norm_dist must have shape ({len(gt)},), got {norm_dist.shape}'
        )

    def name(i: int) -> str:
        return f'image {ids[i]!r}' if ids is not None else f'image #{i}'

    for what, arr in (('ground truth', gt), ('prediction', pred)):
        bad = ~np.isfinite(arr).all(axis=(1, 2))
        if bad.any():
            raise ValueError(
                f'{name(int(np.argmax(bad)))}: the {what} has non-finite '
                f'coordinates'
            )
    bad = ~(np.isfinite(norm_dist) & (norm_dist > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f'{name(i)}: normalisation distance is {norm_dist[i]!r}; the '
            f'normalising points (or box) of its ground truth coincide or '
            f'are degenerate. Fix the annotation or choose another norm'
        )
    err = np.linalg.norm(pred - gt, axis=-1).mean(-1)  # (N,)
    return err / norm_dist


def curve_error_components(
    pred: np.ndarray,
    gt: np.ndarray,
    neighbours: Union[np.ndarray, torch.Tensor],
    visible: Optional[np.ndarray] = None,
    min_length: float = MIN_TANGENT_LENGTH,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's error along and across its ground-truth curve.

    .. math:: e^{\\parallel}_{nk} = |r_{nk} \\cdot t_{nk}|,\\quad
        e^{\\perp}_{nk} = |r_{nk} \\times t_{nk}|,\\quad
        r_{nk} = p_{nk} - g_{nk}

    ``t`` is the unit tangent the anisotropic loss uses
    (:func:`mmaniso.ops.tangents.curve_tangents` of the ground truth, an
    invisible neighbour never steering it), so ``e∥² + e⊥²`` is the squared
    point error. The split is unchanged by a similarity transform of the
    image, so image pixels give the same split as the loss's input crop.

    Args:
        pred: Predicted keypoints, shape (N, K, 2).
        gt: Ground-truth keypoints, shape (N, K, 2).
        neighbours: Previous and next curve neighbour of each point, -1 for
            none, shape (2, K) (``PointTypes.neighbours()``).
        visible: Keypoint visibility (> 0 means visible), shape (N, K); all
            visible when not given.
        min_length: Shortest neighbour difference, in the units of ``gt``,
            that still defines a tangent.

    Returns:
        tuple:
        - along: ``e∥``, shape (N, K); 0 where not ``valid``.
        - across: ``e⊥``, shape (N, K); 0 where not ``valid``.
        - valid: Visible points with a tangent (not corners, not isolated
          and with a visible neighbour), shape (N, K), bool.

    Example:
        >>> gt = np.array([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]])
        >>> nb = np.array([[-1, 0, 1], [1, 2, -1]])
        >>> along, across, valid = curve_error_components(
        ...     gt + [3.0, 4.0], gt, nb)
        >>> along[0].tolist(), across[0].tolist(), valid[0].tolist()
        ([3.0, 3.0, 3.0], [4.0, 4.0, 4.0], [True, True, True])
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(
            f'pred and gt must both have shape (N, K, 2), got {pred.shape} '
            f'and {gt.shape}'
        )
    vis = None
    if visible is not None:
        visible = np.asarray(visible, dtype=np.float64)
        if visible.shape != gt.shape[:2]:
            raise ValueError(
                f'visible must have shape {gt.shape[:2]}, got {visible.shape}'
            )
        vis = torch.from_numpy(visible)
    tangents, valid = curve_tangents(
        torch.from_numpy(gt),
        torch.as_tensor(np.asarray(neighbours), dtype=torch.long),
        vis,
        min_length=min_length,
    )
    valid = valid.numpy()
    if visible is not None:
        valid = valid & (visible > 0)
    # Selected, not multiplied by a mask: an invisible point may hold
    # anything (NaN at an unlabelled point, and then in its own tangent).
    t = np.where(valid[..., None], tangents.numpy(), 0.0)  # (N, K, 2)
    r = np.where(valid[..., None], pred - gt, 0.0)  # (N, K, 2)
    along = np.abs(r[..., 0] * t[..., 0] + r[..., 1] * t[..., 1])
    across = np.abs(r[..., 1] * t[..., 0] - r[..., 0] * t[..., 1])
    return along, across, valid


def masked_per_image_nme(
    errors: np.ndarray, mask: np.ndarray, norm_dist: np.ndarray
) -> np.ndarray:
    """Per-image mean of some point errors over the masked points only.

    .. math:: e_n = \\frac{1}{|M_n| d_n} \\sum_{k \\in M_n} e_{nk}

    Args:
        errors: Point errors, shape (N, K).
        mask: Which points count, shape (N, K), bool.
        norm_dist: Normalising distance of each image, shape (N,).

    Returns:
        The errors as fractions of ``norm_dist``, NaN for an image with no
        masked point, shape (N,).

    Example:
        >>> masked_per_image_nme(
        ...     np.array([[1.0, 3.0, 9.0]]), np.array([[1, 1, 0]], bool),
        ...     np.array([4.0]))
        array([0.5])
    """
    errors = np.asarray(errors, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if errors.ndim != 2 or mask.shape != errors.shape:
        raise ValueError(
            f'errors and mask must both have shape (N, K), got '
            f'{errors.shape} and {mask.shape}'
        )
    count = mask.sum(-1)  # (N,)
    total = np.where(mask, errors, 0.0).sum(-1)
    with np.errstate(invalid='ignore', divide='ignore'):
        mean = np.where(count > 0, total / count, np.nan)
    return mean / np.asarray(norm_dist, dtype=np.float64).reshape(-1)


def _check_threshold(threshold: float, step: float) -> None:
    if not threshold > 0:
        raise ValueError(f'threshold must be positive, got {threshold!r}')
    if not 0 < step <= threshold:
        raise ValueError(
            f'step must be in (0, threshold={threshold}], got {step!r}'
        )


def _check_nme(nme: np.ndarray) -> np.ndarray:
    nme = np.asarray(nme, dtype=np.float64).reshape(-1)
    if nme.size == 0:
        raise ValueError(
            'no errors given: the CED of an empty set is undefined'
        )
    if np.isnan(nme).any():
        raise ValueError('the errors contain NaN')
    return nme


def ced_curve(
    nme: np.ndarray, max_nme: float, step: float = 1e-4
) -> Tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution on a regular grid up to ``max_nme``.

    .. math:: \\mathrm{CED}(e) = \\frac{1}{N} \\#\\{n : e_n \\le e\\}

    The grid is ``np.linspace(0, max_nme, round(max_nme / step) + 1)``, which
    ends exactly at ``max_nme`` (``np.arange`` can overshoot).

    Args:
        nme: Per-image errors, shape (N,).
        max_nme: Last grid point.
        step: Grid spacing.

    Returns:
        The grid and the fraction of images at or below each grid point,
        both shape (M,).

    Example:
        >>> grid, ced = ced_curve(np.array([0.02, 0.06]), 0.1, step=0.05)
        >>> grid.tolist(), ced.tolist()
        ([0.0, 0.05, 0.1], [0.0, 0.5, 1.0])
    """
    _check_threshold(max_nme, step)
    nme = np.sort(_check_nme(nme))
    grid = np.linspace(0.0, max_nme, int(round(max_nme / step)) + 1)
    counts = np.searchsorted(nme, grid, side='right')  # (M,)
    return grid, counts / nme.size


def auc(nme: np.ndarray, threshold: float, step: float = 1e-4) -> float:
    """Area under the CED up to ``threshold``, divided by ``threshold``.

    .. math:: \\mathrm{AUC}_t = \\frac{1}{t} \\int_0^t \\mathrm{CED}(e)\\,de

    Integrated with Simpson's rule on the grid of :func:`ced_curve`, as STAR
    and PIPNet do. In [0, 1].

    Args:
        nme: Per-image errors, shape (N,).
        threshold: Upper limit t of the integral.
        step: Grid spacing.

    Example:
        >>> round(auc(np.array([0.0, 1.0]), 0.1), 3)
        0.5
    """
    grid, ced = ced_curve(nme, threshold, step)
    return float(simpson(ced, x=grid) / threshold)


def failure_rate(nme: np.ndarray, threshold: float) -> float:
    """Fraction of images whose error exceeds ``threshold``.

    .. math:: \\mathrm{FR}_t = \\frac{1}{N} \\#\\{n : e_n > t\\}

    Example:
        >>> failure_rate(np.array([0.05, 0.1, 0.2]), 0.1)
        0.3333333333333333
    """
    nme = _check_nme(nme)
    if not threshold > 0:
        raise ValueError(f'threshold must be positive, got {threshold!r}')
    return float(np.mean(nme > threshold))


def threshold_name(threshold: float) -> str:
    """The short form used in metric keys: 0.10 -> '0.1', 0.08 -> '0.08'."""
    return f'{threshold:g}'


def summarise(
    nme: np.ndarray, thresholds: Sequence[float], step: float = 1e-4
) -> Dict[str, float]:
    """NME and FR in percent, AUC in [0, 1], keyed as the metric reports.

    Example:
        >>> summarise(np.array([0.02, 0.2]), [0.1])['FR@0.1']
        50.0
    """
    nme = _check_nme(nme)
    out = {'NME': float(nme.mean() * 100)}
    for t in thresholds:
        key = threshold_name(t)
        out[f'FR@{key}'] = failure_rate(nme, t) * 100
        out[f'AUC@{key}'] = auc(nme, t, step)
    return out
