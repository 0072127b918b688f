"""Pose bins and the pose-balanced mean shape.

The pose-based data balancing of Wing loss (Feng et al., CVPR 2018), used by
Rayhan, Galata and Cootes (BMVC 2020): the training shapes are aligned to
their mean by generalised Procrustes analysis (:mod:`mmaniso.ops.procrustes`;
similarity transforms, no reflections), projected on the first principal
component of the aligned shapes (:func:`weighted_pca`; it follows yaw for
faces) and cut into equal-width bins.
"""

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
    generalized_procrustes,
)


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
    gpa = generalized_procrustes(x, w)
    # Unaligned shapes get weight 0 everywhere, so they project to 0.
    v = w * gpa.valid[:, None]  # (N, K)
    flat = gpa.aligned.reshape(num, -1)  # (N, K * D)
    flat_weights = v[..., None].expand_as(gpa.aligned).reshape(num, -1)
    pca = weighted_pca(flat, flat_weights, num_components=1)
    scores = pca.project(flat, flat_weights)[:, 0]  # (N,)
    low, high = scores.min(), scores.max()
    if clip_quantiles is not None:
        qs = torch.tensor([q_low, q_high], dtype=torch.float64)
        low, high = torch.quantile(scores.double(), qs).to(scores.dtype)
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
