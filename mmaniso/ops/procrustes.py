"""Similarity Procrustes and generalised Procrustes analysis.

One similarity fit (weighted centring, then the best rotation and scale:
closed form in 2-D, SVD above) serves both :func:`procrustes_align` and
every round of :func:`generalized_procrustes`; pose binning on top of it is
in :mod:`mmaniso.ops.pose`.

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
    formed once; each round is then two matrix products and the same
    rotation-and-scale fit as :func:`procrustes_align` (closed form in 2-D).

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
    return _gpa(x, w, max_iters, tol)


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


def _gpa(
    x: Tensor, w: Tensor, max_iters: int, tol: float
) -> GeneralizedProcrustes:
    """Generalised Procrustes rounds; each fit is :func:`procrustes_align`'s
    (``_centre`` and ``_rotation_scale``: closed form in 2-D, SVD above)."""
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
