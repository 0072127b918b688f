"""The anisotropic cost as a negative log-likelihood with learned scales.

The fixed family (:mod:`mmaniso.ops.cost`) costs a landmark's error ``r``
(in pixels of the input crop) with hand-set semi-axes ``a`` (along the
ground-truth curve) and ``b`` (across it). Read as the exponent of an
elliptical density, the same cost gives the scales a likelihood, so they
can be learned: per landmark ``i`` with unit tangent ``t_i`` and normal
``n_i``,

.. math::
    u_i = \\frac{t_i \\cdot r_i}{a_i},\\quad
    v_i = \\frac{n_i \\cdot r_i}{b_i},\\quad q_i = u_i^2 + v_i^2

and the negative log-likelihood is ``q/2 + log(2 pi a b)`` for the Gaussian
(``distance='squared'``) and ``m + log(2 pi a b)`` with ``m = sqrt(q)`` for
the Laplace-like density ``exp(-m) / (2 pi a b)`` (``'mahalanobis'``; both
densities integrate to 1 over the plane).

A point without a tangent (a corner, an isolated point, or a curve point
whose neighbours are not visible in that image) is isotropic with the
geometric mean ``s = sqrt(a b)`` of its scales, which keeps the normaliser
``log(2 pi a b) = log(2 pi s^2)``.

Scales come from unconstrained parameters ``p`` as
``s = min_scale + exp(p)`` (:func:`floored_scales`): never below
``min_scale``, so the likelihood cannot collapse onto a point whose error
happens to be near zero.

Pure torch; no MMPose import.
"""

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .tangents import curve_tangents

LIKELIHOOD_DISTANCES = ('squared', 'mahalanobis')
# sqrt(q + eps) - sqrt(eps), as the fixed family (mmaniso.ops.cost): q is
# dimensionless here (errors in units of the scales).
NLL_EPS = 1e-6
LOG_2PI = math.log(2.0 * math.pi)


def floored_scales(params: Tensor, min_scale: float) -> Tensor:
    """Scales from unconstrained parameters, never below ``min_scale``.

    .. math::
        s = s_{\\min} + e^{p}

    Args:
        params (Tensor): Unconstrained parameters, any shape.
        min_scale: The floor ``s_min``, in the unit of the scales (>= 0).

    Returns:
        Tensor: Scales, same shape as ``params``.

    Example:
        >>> floored_scales(torch.tensor([0.0]), 0.5).tolist()
        [1.5]
    """
    return params.exp() + min_scale


def scale_params_for(scales: Tensor, min_scale: float) -> Tensor:
    """The parameters :func:`floored_scales` maps to ``scales``.

    .. math::
        p = \\ln(s - s_{\\min})

    Args:
        scales (Tensor): Scales, each above ``min_scale``, any shape.
        min_scale: The floor.

    Returns:
        Tensor: Parameters, same shape.

    Example:
        >>> scale_params_for(torch.tensor([1.5]), 0.5).tolist()
        [0.0]
    """
    if not bool((scales > min_scale).all()):
        raise ValueError(
            f'initial scales must exceed min_scale={min_scale}, got '
            f'{scales.min().item()}; lower min_scale or raise a and b'
        )
    return (scales - min_scale).log()


def elliptical_nll(
    residuals: Tensor,
    tangents: Tensor,
    valid: Tensor,
    along: Tensor,
    across: Tensor,
    distance: str = 'mahalanobis',
    ignore: Optional[Tensor] = None,
) -> Tensor:
    """Negative log-likelihood of each landmark's error under its ellipse.

    .. math::
        \\ell_i = f(q_i) + \\ln(2 \\pi a_i b_i),\\quad
        f(q) = q / 2 \\text{ (squared) or } \\sqrt{q + \\epsilon}
        - \\sqrt{\\epsilon} \\text{ (mahalanobis)}

    Args:
        residuals (Tensor): Errors ``x - z`` in pixels, shape (B, K, 2).
        tangents (Tensor): Unit tangents (zeros where none), shape
            (B, K, 2).
        valid (Tensor): Which points have a tangent, shape (B, K), bool;
            the others are isotropic with scale ``sqrt(a b)``.
        along (Tensor): Scale ``a`` along the tangent in pixels, shape
            (B, K) or (K,).
        across (Tensor): Scale ``b`` across it, same shape as ``along``.
        distance: ``'squared'`` (Gaussian) or ``'mahalanobis'``
            (Laplace-like).
        ignore (Tensor, optional): Points whose value is exactly 0 with a
            zero gradient into every input, whatever their residuals (NaN
            or inf included), shape (B, K), bool.

    Returns:
        Tensor: The per-point negative log-likelihood, shape (B, K).

    Example:
        >>> r = torch.zeros(1, 1, 2)
        >>> t, ok = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[True]])
        >>> one = torch.ones(1)
        >>> nll = elliptical_nll(r, t, ok, one, one, 'squared')
        >>> round(nll.item(), 4) == round(math.log(2 * math.pi), 4)
        True
    """
    if distance not in LIKELIHOOD_DISTANCES:
        raise ValueError(
            f'distance must be one of {LIKELIHOOD_DISTANCES} for a '
            f'likelihood, got {distance!r}'
        )
    if ignore is not None:
        # Replaced, not multiplied by 0: an ignored point may hold NaN.
        residuals = torch.where(ignore[..., None], 0.0, residuals)
    log_a, log_b = along.log(), across.log()
    log_iso = (log_a + log_b) * 0.5  # ln sqrt(a b)
    inv_a = torch.where(valid, (-log_a).exp(), (-log_iso).exp())
    inv_b = torch.where(valid, (-log_b).exp(), (-log_iso).exp())
    r0, r1 = residuals.unbind(-1)  # (B, K) each
    t0, t1 = tangents.unbind(-1)
    # Without a tangent the frame is the image's axes (t = (1, 0)).
    t0 = torch.where(valid, t0, 1.0)
    t1 = torch.where(valid, t1, 0.0)
    u = (t0 * r0 + t1 * r1) * inv_a
    v = (t0 * r1 - t1 * r0) * inv_b
    q = u.square() + v.square()
    if distance == 'squared':
        exponent = q * 0.5
    else:
        exponent = (q + NLL_EPS).sqrt() - math.sqrt(NLL_EPS)
    nll = exponent + (log_a + log_b + LOG_2PI)
    if ignore is not None:
        nll = torch.where(ignore, 0.0, nll)
    return nll


def ellipse_axes(
    tangents: Tensor, valid: Tensor, along: Tensor, across: Tensor
) -> Tensor:
    """Ellipses ``(semi-axis along, semi-axis across, angle)`` per point.

    The angle is that of the along axis, ``atan2(t_y, t_x)``, in radians;
    a point without a tangent gets ``sqrt(a b)`` twice and angle 0 (the
    rule of :func:`elliptical_nll`).

    Args:
        tangents (Tensor): Unit tangents, shape (B, K, 2).
        valid (Tensor): Which points have a tangent, shape (B, K), bool.
        along (Tensor): Scales along, shape (B, K).
        across (Tensor): Scales across, shape (B, K).

    Returns:
        Tensor: Shape (B, K, 3).

    Example:
        >>> t = torch.tensor([[[0.0, 1.0]]])
        >>> e = ellipse_axes(t, torch.tensor([[True]]),
        ...                  torch.tensor([[2.0]]), torch.tensor([[1.0]]))
        >>> [round(v, 4) for v in e[0, 0].tolist()]
        [2.0, 1.0, 1.5708]
    """
    iso = (along * across).sqrt()
    a = torch.where(valid, along, iso)
    b = torch.where(valid, across, iso)
    angle = torch.atan2(tangents[..., 1], tangents[..., 0])
    angle = torch.where(valid, angle, 0.0)
    return torch.stack([a, b, angle], dim=-1)


def map_ellipses(ellipses: Tensor, scale: Tensor) -> Tensor:
    """Ellipses through the axis-aligned scaling ``diag(sx, sy)``.

    MMPose maps a top-down crop's keypoints to the image by
    ``x * bbox_scale / input_size + offset``; an ellipse maps with the
    linear part. A uniform scale multiplies both semi-axes and keeps the
    angle; a non-uniform one changes both, computed from the singular
    values of ``diag(s) R diag(a, b)``. The first semi-axis stays the one
    nearer the mapped along direction.

    .. math::
        M = \\mathrm{diag}(s_x, s_y) [a t, b n] = U \\Sigma V^\\top

    Args:
        ellipses (Tensor): ``(a, b, angle)`` per point, shape (N, K, 3).
        scale (Tensor): ``(sx, sy)`` per instance, shape (N, 2).

    Returns:
        Tensor: The mapped ellipses, shape (N, K, 3).

    Example:
        >>> e = torch.tensor([[[2.0, 1.0, 0.0]]])
        >>> map_ellipses(e, torch.tensor([[3.0, 3.0]]))[0, 0].tolist()
        [6.0, 3.0, 0.0]
    """
    a, b, angle = ellipses.unbind(-1)
    sx, sy = scale[:, None, 0], scale[:, None, 1]  # (N, 1) each
    c, s = angle.cos(), angle.sin()
    # Columns of M: the mapped along and across semi-axis vectors.
    m = torch.stack(
        [
            torch.stack([sx * a * c, -sx * b * s], -1),
            torch.stack([sy * a * s, sy * b * c], -1),
        ],
        -2,
    )  # (N, K, 2, 2)
    u, sv, _ = torch.linalg.svd(m)
    along_dir = m[..., :, 0]  # (N, K, 2)
    first = u[..., :, 0]
    # Which singular direction is nearer the mapped along axis.
    swap = (first * along_dir).sum(-1).abs() < (u[..., :, 1] * along_dir).sum(
        -1
    ).abs()
    axis = torch.where(swap[..., None], u[..., :, 1], first)
    new_a = torch.where(swap, sv[..., 1], sv[..., 0])
    new_b = torch.where(swap, sv[..., 0], sv[..., 1])
    new_angle = torch.atan2(axis[..., 1], axis[..., 0])
    # An axis is a line: keep the angle within 90 degrees of the mapped
    # along direction.
    flip = (axis * along_dir).sum(-1) < 0
    new_angle = torch.where(
        flip, torch.atan2(-axis[..., 1], -axis[..., 0]), new_angle
    )
    uniform = (sx == sy).expand_as(a)
    return torch.where(
        uniform[..., None],
        torch.stack([a * sx.abs(), b * sx.abs(), angle], -1),
        torch.stack([new_a, new_b, new_angle], -1),
    )


def coverage_radius(probability: float, distance: str) -> float:
    """The radius ``k`` in units of the scales that holds ``probability``.

    Inverse of :func:`coverage_probability` (bisection; exact to 1e-12).

    Args:
        probability: In (0, 1).
        distance: ``'squared'`` (Gaussian) or ``'mahalanobis'``
            (Laplace-like).

    Returns:
        float: ``k`` with ``P(sqrt(q) <= k) = probability``.

    Example:
        >>> round(coverage_radius(1 - math.exp(-0.5), 'squared'), 6)
        1.0
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f'probability must be in (0, 1), got {probability}')
    lo, hi = 0.0, 1.0
    while coverage_probability(hi, distance) < probability:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if coverage_probability(mid, distance) < probability:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def coverage_probability(k: float, distance: str) -> float:
    """Share of errors inside the ``k``-scale ellipse, under the density.

    With ``rho = sqrt(q)`` the error in units of the scales, ``rho`` has
    density ``rho exp(-rho^2 / 2)`` (Gaussian: Rayleigh) or ``rho exp(-rho)``
    (Laplace-like: Gamma(2, 1)), so

    .. math::
        P(\\rho \\le k) = 1 - e^{-k^2/2} \\text{ (squared)},\\quad
        1 - (1 + k) e^{-k} \\text{ (mahalanobis)}

    Args:
        k: Radius in units of the scales (>= 0).
        distance: ``'squared'`` or ``'mahalanobis'``.

    Returns:
        float: The probability.

    Example:
        >>> round(coverage_probability(1.0, 'mahalanobis'), 4)
        0.2642
    """
    if distance == 'squared':
        return 1.0 - math.exp(-0.5 * k * k)
    if distance == 'mahalanobis':
        return 1.0 - (1.0 + k) * math.exp(-k)
    raise ValueError(
        f'distance must be one of {LIKELIHOOD_DISTANCES}, got {distance!r}'
    )


def tangent_frame(
    target: Tensor,
    neighbours: Tensor,
    size: Tuple[float, float],
    visible: Optional[Tensor] = None,
    min_length: float = 1e-6,
) -> Tuple[Tensor, Tensor]:
    """Unit tangents in pixels from normalised ground-truth points.

    Args:
        target (Tensor): Points divided by the input size, shape (B, K, 2).
        neighbours (Tensor): Curve neighbours, shape (2, K).
        size: ``(w, h)`` of the input crop in pixels.
        visible (Tensor, optional): Point weights, shape (B, K).
        min_length: Shortest neighbour difference in pixels that still
            defines a tangent.

    Returns:
        tuple: ``(tangents (B, K, 2), valid (B, K))``.
    """
    scale = target.new_tensor(size)
    with torch.no_grad():
        return curve_tangents(
            target, neighbours, visible, scale=scale, min_length=min_length
        )
