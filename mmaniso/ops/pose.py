"""Pose bins and the pose-balanced mean shape.

The pose-based data balancing of Wing loss (Feng et al., CVPR 2018), used by
Rayhan, Galata and Cootes (BMVC 2020): the training shapes are aligned to
their mean by generalised Procrustes analysis (:mod:`mmaniso.ops.procrustes`;
similarity transforms, no reflections), projected on the first principal
component of the aligned shapes (:func:`weighted_pca`; it follows yaw for
faces) and cut into equal-width bins.
"""

import math
import warnings
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .procrustes import (
    ArrayLike,
    _as_float,
    _missing_landmarks,
    _point_weights,
    _similarity,
    apply_similarity,
    generalized_procrustes,
)

# Robust z (median + k * MAD) beyond which a shape is an outlier, and the
# floors below which it never is (fractions of the reference shape's RMS
# radius; natural log for the size). On the 1,289 real 300W test faces
# (public and private) the largest z are 3.2 (offset), 5.3 (size) and 3.3
# (shape): none is excluded. SynthFace's large poses reach a shape score of
# 0.61 (2,000 training and 1,000 test faces; a floor of 0.6 left one of its
# faces out), and a face whose 98 points are reversed or shuffled scores
# 0.93-0.99, so the shape floor sits between them, at 0.8.
OUTLIER_Z = 8.0
OUTLIER_FLOORS = (1.0, math.log(2.0), 0.8)
OUTLIER_TESTS = ('offset', 'size', 'shape')
REFERENCE_SAMPLES = 10_000  # shapes the median reference is taken over


class PCA(NamedTuple):
    """Result of :func:`weighted_pca`.

    Attributes:
        mean (Tensor): The mean, shape (F,).
        components (Tensor): Unit principal axes, largest variance first,
            shape (C, F).
        variances (Tensor): Variance along each axis, shape (C,).
    """

    mean: Tensor
    components: Tensor
    variances: Tensor

    def project(
        self, data: ArrayLike, weights: Optional[ArrayLike] = None
    ) -> Tensor:
        """Coordinates of samples along the axes, shape (N, C).

        A missing entry (weight 0) sits at the mean, as in the fit, and so
        adds nothing.

        Args:
            data (Tensor | ndarray): Samples, shape (N, F).
            weights (Tensor | ndarray, optional): Entry weights, (N, F).
        """
        x = _as_float(data, self.mean.dtype)
        centred = x - self.mean
        if weights is not None:
            centred = centred * (_point_weights(weights, x.shape, x) > 0)
        return centred @ self.components.T


class PoseBins(NamedTuple):
    """Result of :func:`pose_bins`.

    Attributes:
        ids (Tensor): Bin of each shape, shape (N,), int64.
        edges (Tensor): Bin edges along the first principal component,
            shape (num_bins + 1,).
        counts (Tensor): Number of shapes in each bin, shape (num_bins,),
            int64; empty bins count 0.
        scores (Tensor): Each shape's coordinate along the first principal
            component, shape (N,).
    """

    ids: Tensor
    edges: Tensor
    counts: Tensor
    scores: Tensor


class ShapeOutliers(NamedTuple):
    """Result of :func:`shape_outliers`.

    Attributes:
        mask (Tensor): Outlying shapes, shape (N,), bool.
        scores (Tensor): Each shape's ``offset``, ``size`` and ``shape``
            score (see :func:`shape_outliers`), shape (N, 3).
        thresholds (Tensor): The threshold of each score, shape (3,).
        reference (Tensor): The per-coordinate median shape, (K, D).
    """

    mask: Tensor
    scores: Tensor
    thresholds: Tensor
    reference: Tensor

    def reasons(self, index: int) -> str:
        """Which tests shape ``index`` fails, with its scores."""
        return ', '.join(
            f'{name} {float(self.scores[index, j]):.2f} > '
            f'{float(self.thresholds[j]):.2f}'
            for j, name in enumerate(OUTLIER_TESTS)
            if bool(self.scores[index, j] > self.thresholds[j])
        )


def _robust_threshold(values: Tensor, z: float, floor: float) -> Tensor:
    """``max(median + z * 1.4826 * MAD, floor)`` of a 1-D tensor."""
    med = values.median()
    mad = 1.4826 * (values - med).abs().median()
    return torch.clamp(med + z * mad, min=floor)


def shape_outliers(
    shapes: ArrayLike,
    weights: Optional[ArrayLike] = None,
    z: float = OUTLIER_Z,
    floors: Tuple[float, float, float] = OUTLIER_FLOORS,
) -> ShapeOutliers:
    """Shapes far beyond the bulk, in a frame all shapes share.

    The reference is the per-coordinate median of the visible landmarks
    (robust to up to half the shapes being wrong; over an even spread of
    at most 10,000 shapes in large sets). Each shape gets three
    scores, all in units of the reference's RMS radius ``r`` over the
    shape's visible landmarks:

    - ``offset``: distance of its centroid from the reference's;
    - ``size``: ``|log|`` of its RMS radius over the reference's;
    - ``shape``: RMS residual after the best similarity fit onto the
      reference (the Procrustes distance).

    A shape is an outlier when a score exceeds ``median + z * 1.4826 *
    MAD`` of that score over all shapes and the score's floor. In a frame
    tied to each face's box (as the head's), ``offset`` and ``size`` catch
    keypoints that do not belong to their box, ``shape`` catches garbled
    keypoints anywhere. Shapes with fewer than two visible landmarks score
    0 (they cannot be aligned; see :func:`generalized_procrustes`).

    .. math::
        \\text{outlier}_i = \\exists j: s_{ij} > \\max(\\operatorname{med}_n
        s_{nj} + z \\cdot 1.4826 \\operatorname{MAD}_n s_{nj}, f_j)

    Args:
        shapes (Tensor | ndarray): Shapes in a common frame, (N, K, D).
        weights (Tensor | ndarray, optional): Landmark weights (0 for
            invisible), shape (N, K).
        z: Robust z-score beyond which a score is an outlier.
        floors: Smallest ``offset``, ``size`` and ``shape`` thresholds.

    Returns:
        ShapeOutliers: ``mask`` (N,), ``scores`` (N, 3), ``thresholds``
        (3,) and ``reference`` (K, D).

    Example:
        >>> base = torch.tensor([[0., 0.], [2., 0.], [1., 1.], [1., 3.]])
        >>> shapes = base + 0.01 * torch.randn(20, 4, 2)
        >>> shapes[7] += 50.  # keypoints far from where the others are
        >>> torch.nonzero(shape_outliers(shapes).mask).flatten().tolist()
        [7]
    """
    x = _as_float(shapes)
    if x.dim() != 3 or x.shape[0] == 0 or x.shape[-1] < 2:
        raise ValueError(
            'shapes must have shape (N, K, D) with N >= 1 and D >= 2, got '
            f'{tuple(x.shape)}'
        )
    w = _point_weights(weights, x.shape[:2], x)
    seen = w > 0  # (N, K)
    # The median of an even spread of at most REFERENCE_SAMPLES shapes:
    # as robust, and a tenth of the sorting on 100k shapes.
    step = max(1, len(x) // REFERENCE_SAMPLES)
    reference = torch.where(
        seen[::step, :, None], x[::step], float('nan')
    ).nanmedian(0)
    reference = torch.nan_to_num(reference.values)  # (K, D)
    ref = reference.expand_as(x)
    fit, degenerate = _similarity(x, ref, w, True, False)
    usable = (~degenerate) & (seen.sum(1) >= 2)  # (N,)
    wn = w / w.sum(1, keepdim=True).clamp_min(1e-300)  # (N, K)
    mu_x = torch.einsum('nk,nkd->nd', wn, x)
    mu_r = torch.einsum('nk,kd->nd', wn, reference)
    rad_x = (wn * (x - mu_x[:, None]).pow(2).sum(-1)).sum(1).sqrt()
    rad_r = (wn * (reference - mu_r[:, None]).pow(2).sum(-1)).sum(1).sqrt()
    tiny = torch.finfo(x.dtype).eps
    rad_r = rad_r.clamp_min(tiny)
    aligned = apply_similarity(x, fit)
    residual = (wn * (aligned - reference).pow(2).sum(-1)).sum(1).sqrt()
    scores = torch.stack(
        [
            (mu_x - mu_r).norm(dim=-1) / rad_r,
            torch.log(rad_x.clamp_min(tiny) / rad_r).abs(),
            residual / rad_r,
        ],
        1,
    )  # (N, 3)
    scores = torch.where(usable[:, None], scores, torch.zeros_like(scores))
    scores = torch.nan_to_num(scores, nan=0.0)
    if bool(usable.any()):
        thresholds = torch.stack(
            [
                _robust_threshold(scores[usable, j], z, floors[j])
                for j in range(3)
            ]
        )
    else:
        thresholds = torch.tensor(floors, dtype=x.dtype)
    mask = (scores > thresholds).any(1) & usable
    return ShapeOutliers(mask, scores, thresholds, reference)


def _principal_axes(
    centred: Tensor, num_components: int
) -> Tuple[Tensor, Tensor]:
    """Leading eigenpairs of the covariance of centred (N, F) data.

    Each axis is signed so that its largest-magnitude entry is positive.
    The small (F, F) eigenproblem is solved by numpy in float64.
    """
    cov = centred.T @ centred / max(len(centred) - 1, 1)  # (F, F)
    variances, vectors = np.linalg.eigh(cov.detach().cpu().double().numpy())
    order = np.argsort(variances)[::-1][:num_components]
    variances = np.clip(variances[order], 0, None)
    components = vectors[:, order].T  # (C, F)
    pivot = np.abs(components).argmax(1)
    sign = np.sign(components[np.arange(len(components)), pivot])
    components = components * np.where(sign == 0, 1.0, sign)[:, None]
    return (
        torch.as_tensor(components).to(centred),
        torch.as_tensor(variances).to(centred),
    )


def weighted_pca(
    data: ArrayLike,
    weights: Optional[ArrayLike] = None,
    num_components: int = 1,
) -> PCA:
    """Principal components of data with missing entries.

    Entries of weight 0 are missing: the mean of each feature is its
    weighted mean, and a missing entry is filled with that mean before the
    covariance is taken (so it adds no variance). Each axis is signed so
    that its largest-magnitude entry is positive, which makes the result
    deterministic.

    .. math::
        C = \\frac{1}{N - 1} \\sum_i (\\tilde{x}_i - \\mu)
        (\\tilde{x}_i - \\mu)^\\top = V \\Lambda V^\\top

    Args:
        data (Tensor | ndarray): Samples, shape (N, F).
        weights (Tensor | ndarray, optional): Entry weights, shape (N, F);
            the mean is weighted, and only whether an entry is 0 matters
            for the covariance.
        num_components: Number C of axes to return, at most F.

    Returns:
        PCA: ``mean`` (F,), ``components`` (C, F), ``variances`` (C,).

    Example:
        >>> t = torch.linspace(-1, 1, 11)[:, None]
        >>> pca = weighted_pca(torch.cat([3 * t, t], 1))
        >>> (pca.components * 10 ** 0.5).round().tolist()
        [[3.0, 1.0]]
    """
    x = _as_float(data)
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f'data must have shape (N, F), got {tuple(x.shape)}')
    feats = x.shape[1]
    if not 1 <= num_components <= feats:
        raise ValueError(
            f'num_components must be in [1, {feats}], got {num_components}'
        )
    w = _point_weights(weights, x.shape, x)
    total = w.sum(0)
    _missing_landmarks(total, 'features')
    mean = (w * x).sum(0) / total
    centred = (x - mean) * (w > 0)  # (N, F), missing entries at the mean
    components, variances = _principal_axes(centred, num_components)
    return PCA(mean, components, variances)


def pose_bins(
    shapes: ArrayLike,
    weights: Optional[ArrayLike] = None,
    num_bins: int = 9,
    clip_quantiles: Optional[Tuple[float, float]] = None,
    exclude: Optional[ArrayLike] = None,
) -> PoseBins:
    """Equal-width pose bins along the first principal component.

    Wing loss's pose-based data balancing: the shapes are aligned by
    :func:`generalized_procrustes`, flattened, and projected on the first
    principal axis of the aligned shapes by :func:`weighted_pca` (a missing
    landmark takes the mean's value and so adds nothing to the projection).
    The range of the projections is cut into ``num_bins`` equal bins.

    Degenerate input is reported, not hidden: with fewer shapes than bins a
    warning says that bins will be empty; when the shapes do not vary (all
    the same up to a similarity) a warning says so and every shape goes to
    bin 0.

    .. math::
        b_i = \\min\\left(\\left\\lfloor \\mathrm{num\\_bins}
        \\frac{p_i - \\min_j p_j}{\\max_j p_j - \\min_j p_j}
        \\right\\rfloor, \\mathrm{num\\_bins} - 1\\right),
        \\quad p_i = v_1^\\top (\\tilde{x}_i - \\mu)

    Args:
        shapes (Tensor | ndarray): Shapes, shape (N, K, D), in any frame
            (each is aligned here). Float32 input is processed in float32,
            which is ample for binning and twice as fast.
        weights (Tensor | ndarray, optional): Landmark weights (0 for
            invisible), shape (N, K).
        num_bins: Number of bins.
        clip_quantiles: ``(low, high)`` quantiles of the scores that span
            the bins instead of their full range, e.g. ``(0.01, 0.99)``:
            outlier-robust edges for heavy-tailed pose data, where a few
            extreme faces would otherwise get bins of their own. Shapes
            beyond them go to the first or last bin.
        exclude (Tensor | ndarray, optional): Shapes left out of the fit,
            shape (N,), bool (e.g. :func:`shape_outliers`' mask): they
            steer neither the Procrustes mean, nor the principal axis, nor
            the bin edges, but are aligned to the mean, scored and put in
            the nearest bin like the others.

    Returns:
        PoseBins: ``ids`` (N,), ``edges`` (num_bins + 1,), ``counts``
        (num_bins,) and ``scores`` (N,).

    Example:
        >>> base = torch.tensor([[-1., 0.], [1., 0.], [0., 1.], [0., -1.]])
        >>> turn = torch.tensor([[0.3, 0.], [0.3, 0.], [0., 0.], [0., 0.]])
        >>> shapes = torch.stack([base - turn, base, base, base + turn])
        >>> pose_bins(shapes, num_bins=3).counts.tolist()
        [1, 2, 1]
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int):
        raise TypeError(f'num_bins must be an int, got {num_bins!r}')
    if num_bins < 1:
        raise ValueError(f'num_bins must be >= 1, got {num_bins}')
    x = _as_float(shapes)
    if x.dim() != 3 or x.shape[0] == 0:
        raise ValueError(
            f'shapes must have shape (N, K, D) with N >= 1, got '
            f'{tuple(x.shape)}'
        )
    if clip_quantiles is not None:
        q_low, q_high = (float(q) for q in clip_quantiles)
        if not 0 <= q_low < q_high <= 1:
            raise ValueError(
                'clip_quantiles must be (low, high) with 0 <= low < high '
                f'<= 1, got {clip_quantiles!r}'
            )
    num = x.shape[0]
    if num < num_bins:
        warnings.warn(
            f'pose_bins: {num} shapes for {num_bins} bins; at least '
            f'{num_bins - num} bins will be empty',
            stacklevel=2,
        )
    w = _point_weights(weights, x.shape[:2], x)
    keep = torch.ones(num, dtype=torch.bool, device=x.device)
    if exclude is not None:
        keep = ~torch.as_tensor(exclude, device=x.device).bool()
        if keep.shape != (num,):
            raise ValueError(
                f'exclude must have shape ({num},), got {tuple(keep.shape)}'
            )
        if not bool(keep.any()):
            raise ValueError('exclude leaves no shape to fit the bins to')
    if bool(keep.all()):
        gpa = generalized_procrustes(x, w)
        aligned, valid = gpa.aligned, gpa.valid
    else:
        # The mean of the kept shapes; the others are aligned to it.
        gpa = generalized_procrustes(x[keep], w[keep])
        out = ~keep
        fit, degenerate = _similarity(
            x[out], gpa.mean.expand_as(x[out]), w[out], True, False
        )
        aligned = torch.empty_like(x)
        aligned[keep] = gpa.aligned
        aligned[out] = apply_similarity(x[out], fit)
        valid = torch.empty(num, dtype=torch.bool, device=x.device)
        valid[keep] = gpa.valid
        valid[out] = ~degenerate & ((w[out] > 0).sum(1) >= 2)
    # Unaligned shapes get weight 0 everywhere, so they project to 0.
    v = w * valid[:, None]  # (N, K)
    flat = aligned.reshape(num, -1)  # (N, K * D)
    flat_weights = v[..., None].expand_as(aligned).reshape(num, -1)
    fit_weights = flat_weights * keep[:, None]
    pca = weighted_pca(flat, fit_weights, num_components=1)
    scores = pca.project(flat, flat_weights)[:, 0]  # (N,)
    kept = scores[keep]
    low, high = kept.min(), kept.max()
    if clip_quantiles is not None:
        qs = torch.tensor([q_low, q_high], dtype=torch.float64)
        low, high = torch.quantile(kept.double(), qs).to(scores.dtype)
    # The aligned shapes have about unit RMS radius: a spread this small
    # is rounding noise, not pose.
    if float(high - low) <= 1e-5:
        warnings.warn(
            f'pose_bins: the {num} shapes do not vary in pose (identical up '
            'to a similarity); all go to bin 0',
            stacklevel=2,
        )
        ids = torch.zeros(num, dtype=torch.int64)
        edges = low + torch.zeros(num_bins + 1, dtype=scores.dtype)
    else:
        edges = torch.linspace(
            float(low), float(high), num_bins + 1, dtype=scores.dtype
        )
        ids = torch.floor((scores - low) / (high - low) * num_bins)
        ids = ids.long().clamp_(0, num_bins - 1)
    counts = torch.bincount(ids, minlength=num_bins)
    return PoseBins(ids, edges, counts, scores)


def mean_of_bin_means(
    shapes: ArrayLike,
    bin_ids: ArrayLike,
    weights: Optional[ArrayLike] = None,
    num_bins: Optional[int] = None,
) -> Tensor:
    """The mean over pose bins of each bin's mean shape.

    Every non-empty bin counts once, however many shapes it holds, so the
    result is the mean face of a pose-balanced training set. Landmark means
    are weighted (invisible landmarks have weight 0); where a landmark has
    no weight in some bin it is averaged over the bins where it has.

    .. math::
        \\bar{x} = \\frac{1}{|\\mathcal{B}|} \\sum_{b \\in \\mathcal{B}}
        \\bar{x}_b, \\quad \\bar{x}_{b,k} = \\frac{\\sum_{i \\in b}
        w_{ik} x_{ik}}{\\sum_{i \\in b} w_{ik}}

    Args:
        shapes (Tensor | ndarray): Shapes in the frame wanted for the mean,
            shape (N, K, D).
        bin_ids (Tensor | ndarray): Bin of each shape, shape (N,).
        weights (Tensor | ndarray, optional): Landmark weights, shape
            (N, K).
        num_bins: Number of bins; ``max(bin_ids) + 1`` when not given.

    Returns:
        Tensor: The mean shape, shape (K, D), in the dtype of ``shapes``.

    Example:
        >>> shapes = torch.tensor([[[0.]], [[0.]], [[0.]], [[4.]]])
        >>> mean_of_bin_means(shapes, torch.tensor([0, 0, 0, 1])).tolist()
        [[2.0]]
    """
    x = _as_float(shapes)
    if x.dim() != 3 or x.shape[0] == 0:
        raise ValueError(
            f'shapes must have shape (N, K, D) with N >= 1, got '
            f'{tuple(x.shape)}'
        )
    ids = torch.as_tensor(bin_ids, device=x.device).long()
    if ids.shape != x.shape[:1]:
        raise ValueError(
            f'bin_ids must have shape ({len(x)},), got {tuple(ids.shape)}'
        )
    if bool((ids < 0).any()):
        raise ValueError('bin_ids must be non-negative')
    num_bins = int(ids.max()) + 1 if num_bins is None else num_bins
    if int(ids.max()) >= num_bins:
        raise ValueError(
            f'bin id {int(ids.max())} is out of range for {num_bins} bins'
        )
    x64 = x.to(torch.float64)
    w = _point_weights(weights, x.shape[:2], x64)
    sums = x64.new_zeros((num_bins,) + x.shape[1:])  # (num_bins, K, D)
    sums.index_add_(0, ids, w[..., None] * x64)
    totals = x64.new_zeros((num_bins, x.shape[1]))  # (num_bins, K)
    totals.index_add_(0, ids, w)
    seen = totals > 0  # (num_bins, K)
    bin_means = sums / totals.clamp_min(1e-300)[..., None]
    used = seen.sum(0)  # (K,)
    if bool((used == 0).any()):
        missing = torch.nonzero(used == 0).flatten().tolist()
        raise ValueError(
            f'landmarks {missing} have weight 0 in every shape, so they '
            'have no mean'
        )
    mean = (bin_means * seen[..., None]).sum(0) / used[:, None]
    return mean.to(x.dtype)
