"""Similarity Procrustes, generalised Procrustes, PCA and pose bins.

The pose-based data balancing of Wing loss (Feng et al., CVPR 2018), used by
Rayhan, Galata and Cootes (BMVC 2020): the training shapes are aligned to
their mean by generalised Procrustes analysis (similarity transforms, no
reflections), projected on the first principal component of the aligned
shapes (which follows yaw for faces) and cut into equal-width bins.

Every landmark carries a weight; an invisible landmark has weight 0 and
steers neither an alignment nor a mean. All functions are vectorised over
shapes (no Python loop over shapes) and take tensors or numpy arrays.
"""

import warnings
from typing import NamedTuple, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]


class SimilarityTransform(NamedTuple):
    """A batch of similarity transforms ``y = s * R @ x + t``.

    Attributes:
        R (Tensor): Rotations, shape (B, D, D), ``det(R) = +1`` unless
            reflections were allowed.
        t (Tensor): Translations, shape (B, D).
        s (Tensor): Scales, shape (B,).
    """

    R: Tensor
    t: Tensor
    s: Tensor


class GeneralizedProcrustes(NamedTuple):
    """Result of :func:`generalized_procrustes`.

    Attributes:
        aligned (Tensor): Shapes aligned to the mean, shape (N, K, D).
        mean (Tensor): The mean shape, centred and of unit RMS radius,
            shape (K, D).
        transform (SimilarityTransform): Maps each input shape on its
            aligned copy.
        valid (Tensor): Shapes that could be aligned (at least two visible,
            distinct landmarks), shape (N,), bool.
        num_iters (int): Iterations run.
    """

    aligned: Tensor
    mean: Tensor
    transform: SimilarityTransform
    valid: Tensor
    num_iters: int


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


def _as_float(x: ArrayLike, dtype: Optional[torch.dtype] = None) -> Tensor:
    x = torch.as_tensor(x)
    if dtype is not None:
        return x.to(dtype)
    return x if x.is_floating_point() else x.to(torch.float64)


def _point_weights(
    weights: Optional[ArrayLike], shape: Tuple[int, int], like: Tensor
) -> Tensor:
    """Weights broadcast to (B, K) in ``like``'s dtype and device."""
    if weights is None:
        return like.new_ones(shape)
    w = torch.as_tensor(weights).to(like)
    if w.dim() == 3 and w.shape[-1] == 1:
        w = w[..., 0]
    try:
        w = w.expand(shape)
    except RuntimeError:
        raise ValueError(
            f'weights of shape {tuple(w.shape)} do not match the points; '
            f'expected (B, K) = {tuple(shape)} or (K,)'
        ) from None
    if bool((w < 0).any()):
        raise ValueError('weights must be non-negative; got a negative one')
    return w


def _rotation_scale(
    cov: Tensor, var_x: Tensor, estimate_scale: bool, allow_reflection: bool
) -> Tuple[Tensor, Tensor]:
    """Best rotation and scale from the weighted cross-covariance.

    Args:
        cov (Tensor): ``M_ij = sum_k w_k y_ki x_kj`` of centred points,
            shape (B, D, D).
        var_x (Tensor): ``sum_k w_k |x_k|^2`` of the centred source,
            shape (B,).

    Returns:
        tuple: rotations (B, D, D) and scales (B,).
    """
    tiny = torch.finfo(cov.dtype).eps
    if cov.shape[-1] == 2:
        # Closed form in 2-D: the best rotation maximises tr(R^T M), reached
        # at (cos, sin) parallel to (M00 + M11, M10 - M01); the best
        # reflection at (M00 - M11, M01 + M10).
        m00, m01 = cov[:, 0, 0], cov[:, 0, 1]
        m10, m11 = cov[:, 1, 0], cov[:, 1, 1]
        cos, sin = m00 + m11, m10 - m01
        trace = torch.sqrt(cos * cos + sin * sin)
        # No correlation at all (trace 0) leaves the rotation free: use I.
        some = trace > tiny
        cos = torch.where(some, cos / trace.clamp_min(tiny), 1.0)
        sin = torch.where(some, sin / trace.clamp_min(tiny), 0.0)
        rot = torch.stack(
            [torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2
        )  # (B, 2, 2)
        if allow_reflection:
            cos_r, sin_r = m00 - m11, m01 + m10
            trace_r = torch.sqrt(cos_r * cos_r + sin_r * sin_r)
            cos_r = cos_r / trace_r.clamp_min(tiny)
            sin_r = sin_r / trace_r.clamp_min(tiny)
            refl = torch.stack(
                [
                    torch.stack([cos_r, sin_r], -1),
                    torch.stack([sin_r, -cos_r], -1),
                ],
                -2,
            )
            flip = trace_r > trace
            rot = torch.where(flip[:, None, None], refl, rot)
            trace = torch.where(flip, trace_r, trace)
    else:
        u, sv, vh = torch.linalg.svd(cov)
        signs = torch.ones_like(sv)
        if not allow_reflection:
            det = torch.linalg.det(u @ vh)
            signs[:, -1] = torch.where(det < 0, -1.0, 1.0)
        rot = u @ (signs[..., None] * vh)
        trace = (sv * signs).sum(-1)
    if estimate_scale:
        scale = trace / var_x.clamp_min(tiny)
    else:
        scale = torch.ones_like(var_x)
    return rot, scale


def _centre(
    points: Tensor, weights: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Weighted centroids, centred points and degenerate-shape mask.

    Args:
        points (Tensor): Shape (B, K, D).
        weights (Tensor): Shape (B, K).

    Returns:
        tuple: normalised weights (B, K), centroids (B, D), centred points
        (B, K, D), weighted variance (B,) and a (B,) mask of degenerate
        shapes (no weight, or all weighted points at one place up to
        rounding of the centroid).
    """
    tiny = torch.finfo(points.dtype).eps
    total = weights.sum(1)  # (B,)
    wn = weights / total.clamp_min(tiny)[:, None]  # (B, K), rows sum to 1
    mu = torch.bmm(wn[:, None], points)[:, 0]  # (B, D)
    centred = points - mu[:, None]
    var = torch.bmm(wn[:, None], centred * centred)[:, 0].sum(-1)  # (B,)
    spread = (mu * mu).sum(-1) + var
    degenerate = (total <= tiny) | (var <= 1e3 * tiny * tiny * spread)
    return wn, mu, centred, var, degenerate


def _similarity(
    source: Tensor,
    target: Tensor,
    weights: Tensor,
    estimate_scale: bool,
    allow_reflection: bool,
) -> Tuple[SimilarityTransform, Tensor]:
    """Weighted similarity fit without validation or warnings.

    Returns the transform and a (B,) mask of degenerate problems, for which
    the transform is the translation between the weighted centroids.
    """
    dim = source.shape[-1]
    wn, mu_x, xc, var_x, degenerate = _centre(source, weights)
    mu_y = torch.bmm(wn[:, None], target)[:, 0]  # (B, D)
    # Since sum_k w_k xc_k = 0, the target need not be centred here.
    cov = torch.bmm(target.transpose(1, 2), wn[..., None] * xc)  # (B, D, D)
    rot, scale = _rotation_scale(cov, var_x, estimate_scale, allow_reflection)
    eye = torch.eye(dim, dtype=source.dtype, device=source.device)
    rot = torch.where(degenerate[:, None, None], eye.expand_as(rot), rot)
    scale = torch.where(degenerate, torch.ones_like(scale), scale)
    trans = mu_y - scale[:, None] * torch.einsum('bij,bj->bi', rot, mu_x)
    return SimilarityTransform(rot, trans, scale), degenerate


def procrustes_align(
    source: ArrayLike,
    target: ArrayLike,
    weights: Optional[ArrayLike] = None,
    estimate_scale: bool = True,
    allow_reflection: bool = False,
) -> SimilarityTransform:
    """Weighted similarity transform that best maps ``source`` on ``target``.

    Rotation, isotropic scale and translation; never a reflection unless
    ``allow_reflection``. Points of weight 0 (invisible) are ignored. Where a
    problem is degenerate (no weight, or all weighted source points at one
    place) a warning is issued and that transform is the translation between
    the weighted centroids (``R = I``, ``s = 1``).

    .. math::
        (R, t, s) = \\arg\\min \\sum_k w_k \\lVert s R x_k + t - y_k
        \\rVert^2, \\quad R^\\top R = I, \\ \\det R = 1

    Args:
        source (Tensor | ndarray): Points to move, shape (B, K, D).
        target (Tensor | ndarray): Points to reach, shape (B, K, D) or
            (K, D) for one target shared by the batch.
        weights (Tensor | ndarray, optional): Non-negative point weights,
            shape (B, K) or (K,). All ones when not given.
        estimate_scale: Fit the scale; else ``s = 1`` (rigid fit).
        allow_reflection: Also consider improper rotations (``det R = -1``).

    Returns:
        SimilarityTransform: ``R`` (B, D, D), ``t`` (B, D) and ``s`` (B,),
        such that ``target ≈ s * source @ R.T + t``.

    Example:
        >>> x = torch.tensor([[[0., 0.], [1., 0.], [0., 2.]]])
        >>> rot = torch.tensor([[0., -1.], [1., 0.]])
        >>> y = 3 * x @ rot.T + torch.tensor([5., 6.])
        >>> fit = procrustes_align(x, y)
        >>> fit.s.round(decimals=4).tolist(), fit.t.round(decimals=4).tolist()
        ([3.0], [[5.0, 6.0]])
        >>> torch.allclose(apply_similarity(x, fit), y, atol=1e-5)
        True
    """
    src = _as_float(source)
    tgt = _as_float(target, src.dtype).to(src.device)
    if src.dim() != 3:
        raise ValueError(
            f'source must have shape (B, K, D), got {tuple(src.shape)}'
        )
    if tgt.dim() == 2:
        tgt = tgt.expand_as(src)
    if tgt.shape != src.shape:
        raise ValueError(
            f'target of shape {tuple(tgt.shape)} does not match source of '
            f'shape {tuple(src.shape)}'
        )
    if src.shape[-1] < 2:
        raise ValueError(f'points need D >= 2 coordinates, got {src.shape}')
    w = _point_weights(weights, src.shape[:2], src)
    fit, degenerate = _similarity(
        src, tgt, w, estimate_scale, allow_reflection
    )
    if bool(degenerate.any()):
        warnings.warn(
            f'procrustes_align: {int(degenerate.sum())} of {len(src)} '
            'shapes are degenerate (no weighted point, or all weighted '
            'points coincide); they are only translated',
            stacklevel=2,
        )
    return fit


def apply_similarity(
    points: ArrayLike, transform: SimilarityTransform
) -> Tensor:
    """Applies a batch of similarity transforms to points.

    .. math:: y_k = s R x_k + t

    Args:
        points (Tensor | ndarray): Points, shape (B, K, D).
        transform (SimilarityTransform): ``R`` (B, D, D), ``t`` (B, D),
            ``s`` (B,).

    Returns:
        Tensor: Transformed points, shape (B, K, D).

    Example:
        >>> fit = SimilarityTransform(
        ...     torch.eye(2)[None], torch.ones(1, 2), torch.full((1,), 2.))
        >>> apply_similarity(torch.ones(1, 1, 2), fit).tolist()
        [[[3.0, 3.0]]]
    """
    x = _as_float(points, transform.R.dtype)
    rotated = torch.einsum('bkj,bij->bki', x, transform.R)  # (B, K, D)
    return transform.s[:, None, None] * rotated + transform.t[:, None]


def _normalise(shape: Tensor) -> Tensor:
    """Centres a (K, D) shape and scales it to unit RMS radius."""
    centred = shape - shape.mean(0)
    radius = centred.pow(2).sum(-1).mean().sqrt()
    return centred / radius.clamp_min(torch.finfo(shape.dtype).eps)


def _missing_landmarks(total: Tensor, what: str = 'landmarks') -> None:
    """Raises if an entry of the per-landmark (or per-feature) total weight
    is zero: it would have no mean."""
    if bool((total <= 0).any()):
        missing = torch.nonzero(total <= 0).flatten().tolist()
        raise ValueError(
            f'{what} {missing} have weight 0 in every sample, so they '
            'have no mean; mark at least one of each visible'
        )


def generalized_procrustes(
    shapes: ArrayLike,
    weights: Optional[ArrayLike] = None,
    max_iters: int = 30,
    tol: float = 1e-7,
) -> GeneralizedProcrustes:
    """Aligns shapes to their common mean (generalised Procrustes analysis).

    Starts from the shape with the most weight, then alternates: align
    every shape to the mean by a weighted similarity (no reflection); the
    new mean is the per-landmark weighted mean of the aligned shapes,
    centred, scaled to unit RMS radius and rotated onto the first estimate
    (which fixes the otherwise free orientation). Stops when no mean
    landmark moves more than ``tol``. Shapes with fewer than two distinct
    weighted landmarks cannot be aligned: they are reported in ``valid``,
    only translated, left out of the mean, and a warning says how many
    there are.

    The weighted, centred shapes do not change between rounds and are
    formed once; each round is then a couple of matrix-vector products (2-D
    points are handled as complex numbers).

    .. math::
        \\bar{x} = \\arg\\min_{\\bar{x}} \\sum_i \\min_{s_i, R_i, t_i}
        \\sum_k w_{ik} \\lVert s_i R_i x_{ik} + t_i - \\bar{x}_k \\rVert^2

    Args:
        shapes (Tensor | ndarray): Shapes, shape (N, K, D).
        weights (Tensor | ndarray, optional): Landmark weights (0 for
            invisible), shape (N, K).
        max_iters: Most alignment rounds.
        tol: Largest change of a mean landmark that counts as converged
            (the mean has unit RMS radius); never below 64 machine epsilons
            of the shapes' dtype.

    Returns:
        GeneralizedProcrustes: ``aligned`` (N, K, D), ``mean`` (K, D),
        ``transform``, ``valid`` (N,) and ``num_iters``.

    Example:
        >>> base = torch.tensor([[0., 0.], [2., 0.], [1., 1.], [1., 3.]])
        >>> rot = torch.tensor([[0.6, -0.8], [0.8, 0.6]])
        >>> shapes = torch.stack([base, 2 * base @ rot.T + 7.])
        >>> gpa = generalized_procrustes(shapes)
        >>> torch.allclose(gpa.aligned[0], gpa.aligned[1], atol=1e-6)
        True
    """
    x = _as_float(shapes)
    if x.dim() != 3 or x.shape[0] == 0 or x.shape[-1] < 2:
        raise ValueError(
            'shapes must have shape (N, K, D) with N >= 1 and D >= 2, got '
            f'{tuple(x.shape)}'
        )
    if max_iters < 1:
        raise ValueError(f'max_iters must be >= 1, got {max_iters}')
    w = _point_weights(weights, x.shape[:2], x)
    tol = max(tol, 64 * torch.finfo(x.dtype).eps)
    if x.shape[-1] == 2:
        return _gpa_planar(x, w, max_iters, tol)
    return _gpa_general(x, w, max_iters, tol)


def _check_alignable(valid: Tensor, weights: Tensor) -> Tensor:
    """Warns about shapes that cannot be aligned; returns the mean's
    weights (N, K), zero for those shapes."""
    if not bool(valid.any()):
        raise ValueError(
            'no shape has two distinct visible landmarks; nothing to align'
        )
    if not bool(valid.all()):
        warnings.warn(
            f'generalized_procrustes: {int((~valid).sum())} of '
            f'{len(valid)} shapes have fewer than two distinct visible '
            'landmarks; they are only translated and left out of the mean',
            stacklevel=3,
        )
    v = weights * valid[:, None]
    _missing_landmarks(v.sum(0))
    return v


def _gpa_planar(
    x: Tensor, w: Tensor, max_iters: int, tol: float
) -> GeneralizedProcrustes:
    """Generalised Procrustes for 2-D shapes, with points as complex numbers.

    A similarity without reflection is ``z -> a z + b`` with complex ``a``
    (scale and rotation) and ``b``; the best ``a`` for a centred shape
    ``z`` and a mean ``m`` is ``sum_k w_k conj(z_k) m_k / sum_k w_k |z_k|^2``
    (the centroid of ``m`` drops out as ``sum_k w_k z_k = 0``). Each round
    is then two complex matrix-vector products over all shapes.
    """
    num, num_kpts, _ = x.shape
    tiny = torch.finfo(x.dtype).eps
    z = torch.view_as_complex(x.contiguous())  # (N, K)
    total = w.sum(1)  # (N,)
    wn = w / total.clamp_min(tiny)[:, None]  # (N, K), rows sum to 1
    mu = (wn * z).sum(1)  # (N,) weighted centroids
    zc = z - mu[:, None]  # (N, K)
    sq = zc.real * zc.real + zc.imag * zc.imag  # (N, K)
    var = (wn * sq).sum(1)  # (N,)
    spread = mu.real * mu.real + mu.imag * mu.imag + var
    degenerate = (total <= tiny) | (var <= 1e3 * tiny * tiny * spread)
    valid = (~degenerate) & ((w > 0).sum(1) >= 2)
    v = _check_alignable(valid, w)  # (N, K)
    v_total = v.sum(0)  # (K,)
    wz = wn * zc.conj()  # (N, K)
    vz = v * zc  # (N, K)
    inv_var = torch.where(valid, 1 / var.clamp_min(tiny), 0.0)

    def complex_matvec(real: Tensor, vec: Tensor) -> Tensor:
        return torch.complex(real @ vec.real, real @ vec.imag)

    def fit_to(mean: Tensor) -> Tuple[Tensor, Tensor]:
        """Scale-rotations a (N,) and target centroids (N,), complex."""
        a = (wz @ mean) * inv_var
        a = torch.where(valid, a, torch.ones_like(a))
        return a, complex_matvec(wn, mean)

    def normalise(mean: Tensor) -> Tensor:
        mean = mean - mean.mean()
        radius = mean.abs().pow(2).mean().sqrt()
        return mean / radius.clamp_min(tiny)

    seed = int(torch.argmax(v.sum(1)))
    # The reference may itself miss landmarks: those come from the
    # per-landmark mean of the unaligned, centred shapes.
    filled = vz.sum(0) / v_total
    reference = normalise(torch.where(w[seed] > 0, zc[seed], filled))
    mean = reference
    num_iters = 0
    while num_iters < max_iters:
        num_iters += 1
        a, target_mu = fit_to(mean)
        # Per landmark: sum over shapes of v * (a zc + target_mu).
        summed = vz.T @ a + complex_matvec(v.T, target_mu)
        new_mean = normalise(summed / v_total)
        # Fix the gauge: rotate the new mean onto the reference.
        turn = (new_mean.conj() * reference).sum()
        new_mean = new_mean * (turn / turn.abs().clamp_min(tiny))
        change = float((new_mean - mean).abs().max())
        mean = new_mean
        if change < tol:
            break
    a, target_mu = fit_to(mean)
    aligned = torch.view_as_real(a[:, None] * zc + target_mu[:, None])
    scale = a.abs()
    unit = a / scale.clamp_min(tiny)
    rot = torch.stack(
        [
            torch.stack([unit.real, -unit.imag], -1),
            torch.stack([unit.imag, unit.real], -1),
        ],
        -2,
    )  # (N, 2, 2)
    trans = torch.view_as_real(target_mu - a * mu)
    fit = SimilarityTransform(rot, trans, scale)
    return GeneralizedProcrustes(
        aligned, torch.view_as_real(mean), fit, valid, num_iters
    )


def _gpa_general(
    x: Tensor, w: Tensor, max_iters: int, tol: float
) -> GeneralizedProcrustes:
    """Generalised Procrustes in any dimension, by batched SVD."""
    num, num_kpts, dim = x.shape
    wn, mu, xc, var, degenerate = _centre(x, w)
    valid = (~degenerate) & ((w > 0).sum(1) >= 2)  # (N,)
    v = _check_alignable(valid, w)  # (N, K) weights of the mean
    v_total = v.sum(0)  # (K,)
    # Fixed across rounds, laid out for one matrix product each:
    # wxc_k[k, (n, j)] = wn[n, k] * xc[n, k, j], likewise vxc_k with v.
    wxc_k = (wn[..., None] * xc).transpose(0, 1).reshape(num_kpts, -1)
    vxc_k = (v[..., None] * xc).transpose(0, 1).reshape(num_kpts, -1)

    def fit_to(mean: Tensor) -> Tuple[Tensor, Tensor]:
        """Scaled rotations (N, D, D) and target centroids (N, D)."""
        cov = (mean.T @ wxc_k).reshape(dim, num, dim).transpose(0, 1)
        rot, scale = _rotation_scale(cov, var, True, False)
        rot = torch.where(valid[:, None, None], rot, torch.eye(dim).to(rot))
        scale = torch.where(valid, scale, torch.ones_like(scale))
        return scale[:, None, None] * rot, wn @ mean

    seed = int(torch.argmax(v.sum(1)))
    # The reference may itself miss landmarks: those come from the
    # per-landmark mean of the unaligned, centred shapes.
    filled = vxc_k.reshape(num_kpts, num, dim).sum(1) / v_total[:, None]
    reference = torch.where(w[seed][:, None] > 0, xc[seed], filled)
    reference = _normalise(reference)
    mean = reference
    num_iters = 0
    while num_iters < max_iters:
        num_iters += 1
        scaled_rot, target_mu = fit_to(mean)
        # Sum over shapes of v * (s R xc + target_mu), per landmark.
        summed = vxc_k @ scaled_rot.transpose(1, 2).reshape(-1, dim)
        summed = summed + v.T @ target_mu  # (K, D)
        new_mean = _normalise(summed / v_total[:, None])
        # Fix the gauge: rotate the new mean onto the reference.
        cov = (reference.T @ new_mean)[None]  # (1, D, D)
        rot, _ = _rotation_scale(cov, cov.new_ones(1), False, False)
        new_mean = new_mean @ rot[0].T
        change = float((new_mean - mean).abs().max())
        mean = new_mean
        if change < tol:
            break
    scaled_rot, target_mu = fit_to(mean)
    aligned = torch.bmm(xc, scaled_rot.transpose(1, 2)) + target_mu[:, None]
    scale = torch.linalg.det(scaled_rot).abs().pow(1.0 / dim)
    rot = scaled_rot / scale[:, None, None]
    trans = target_mu - torch.einsum('bij,bj->bi', scaled_rot, mu)
    fit = SimilarityTransform(rot, trans, scale)
    return GeneralizedProcrustes(aligned, mean, fit, valid, num_iters)


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
) -> PoseBins:
    """Equal-width pose bins along the first principal component.

    Wing loss's pose-based data balancing: the shapes are aligned by
    :func:`generalized_procrustes`, flattened, and projected on the first
    principal axis of the aligned shapes (as in :func:`weighted_pca`, a
    missing landmark takes the mean's value and so adds nothing to the
    projection). The range of the projections is cut into ``num_bins``
    equal bins.

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
    num = x.shape[0]
    if num < num_bins:
        warnings.warn(
            f'pose_bins: {num} shapes for {num_bins} bins; at least '
            f'{num_bins - num} bins will be empty',
            stacklevel=2,
        )
    w = _point_weights(weights, x.shape[:2], x)
    gpa = generalized_procrustes(x, w)
    v = w * gpa.valid[:, None]  # unaligned shapes project to 0
    mean = (v[..., None] * gpa.aligned).sum(0) / v.sum(0)[:, None]
    centred = (gpa.aligned - mean) * (v > 0)[..., None]  # (N, K, D)
    centred = centred.reshape(num, -1)
    axes, _ = _principal_axes(centred, 1)
    scores = centred @ axes[0]  # (N,)
    low, high = scores.min(), scores.max()
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


def balanced_mean_shape(
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
        >>> balanced_mean_shape(shapes, torch.tensor([0, 0, 0, 1])).tolist()
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
