"""The anisotropic landmark cost and its family, per point.

Rayhan, Galata and Cootes (BMVC 2020) cost a landmark's error ``r`` (in
pixels of the input crop) as ``q = r^T W r`` with

.. math::
    W = \\frac{t t^\\top}{a^2} + \\frac{I - t t^\\top}{b^2}

on curve points (``t`` the ground-truth tangent) and ``W = I`` at corners.
:func:`anisotropic_cost` computes that and its variants:

- ``weighting='paper'`` is that ``W``; ``'normalised'`` is
  ``W~ = n n^T + (b/a)^2 t t^T`` on curve points and ``I`` at corners, i.e.
  ``b^2`` times the paper's ``W`` on curves, so that an error across a
  curve costs what the same error at a corner costs.
- ``distance='squared'`` is ``q``; ``'mahalanobis'`` is ``m = sqrt(q)``
  (L1-like); ``'softwing'`` and ``'wing'`` are MMPose's SoftWing and Wing
  formulas applied to ``m``, with their parameters in input-crop pixels.

Pure torch; no MMPose import.
"""

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .tangents import curve_differences
from .weights import anisotropic_weight_entries, symmetric_quadratic_form

DISTANCES = ('squared', 'mahalanobis', 'softwing', 'wing')
WEIGHTINGS = ('paper', 'normalised')
# sqrt(q + eps) - sqrt(eps): 0 at the target with a finite gradient there,
# at most 1e-3 pixels from sqrt(q) elsewhere.
MAHALANOBIS_EPS = 1e-6
MIN_TANGENT_LENGTH = 1e-6  # pixels
# MMPose's defaults (SoftWingLoss, WingLoss), which their papers give in
# pixels of the input crop: SoftWing (Lin et al., ICCV 2021; MMPose's WFLW
# recipe, 256 x 256) omega1=2, omega2=20, epsilon=0.5; Wing (Feng et al.,
# CVPR 2018, 128 x 128 in the paper) omega=10, epsilon=2.
SOFTWING_DEFAULTS = dict(omega1=2.0, omega2=20.0, epsilon=0.5)
WING_DEFAULTS = dict(omega=10.0, epsilon=2.0)


def soft_wing(
    m: Tensor, omega1: float = 2.0, omega2: float = 20.0, epsilon: float = 0.5
) -> Tensor:
    """SoftWing of non-negative errors, as MMPose's ``SoftWingLoss``.

    .. math::
        f(m) = m \\ (m < \\omega_1), \\quad
        \\omega_2 \\ln(1 + m / \\epsilon) + B \\ \\text{else},
        \\quad B = \\omega_1 - \\omega_2 \\ln(1 + \\omega_1 / \\epsilon)

    Args:
        m (Tensor): Errors, any shape, in the unit of the parameters.

    Returns:
        Tensor: ``f(m)``, same shape.

    Example:
        >>> soft_wing(torch.tensor([1.0, 2.0])).tolist()
        [1.0, 2.0]
    """
    offset = omega1 - omega2 * math.log(1.0 + omega1 / epsilon)
    return torch.where(
        m < omega1, m, omega2 * torch.log1p(m / epsilon) + offset
    )


def wing(m: Tensor, omega: float = 10.0, epsilon: float = 2.0) -> Tensor:
    """Wing of non-negative errors, as MMPose's ``WingLoss``.

    .. math::
        f(m) = \\omega \\ln(1 + m / \\epsilon) \\ (m < \\omega), \\quad
        m - C \\ \\text{else}, \\quad C = \\omega - \\omega \\ln(1 +
        \\omega / \\epsilon)

    Args:
        m (Tensor): Errors, any shape, in the unit of the parameters.

    Returns:
        Tensor: ``f(m)``, same shape.

    Example:
        >>> round(wing(torch.tensor([10.0])).item(), 4)
        17.9176
    """
    offset = omega - omega * math.log(1.0 + omega / epsilon)
    return torch.where(
        m < omega, omega * torch.log1p(m / epsilon), m - offset
    )


def check_cost_options(
    a: float, b: float, distance: str, weighting: str
) -> None:
    """Raises ``ValueError`` for options :func:`anisotropic_cost` lacks."""
    if not (a > 0 and b > 0):
        raise ValueError(
            f'a and b must be positive pixel lengths, got a={a}, b={b} '
            '(the paper uses a=5.0, b=3.0)'
        )
    if distance not in DISTANCES:
        raise ValueError(
            f'distance must be one of {DISTANCES}, got {distance!r}'
        )
    if weighting not in WEIGHTINGS:
        raise ValueError(
            f'weighting must be one of {WEIGHTINGS}, got {weighting!r}'
        )


def anisotropic_cost(
    output: Tensor,
    target: Tensor,
    neighbours: Tensor,
    a: float,
    b: float,
    input_size: Sequence[float] = (1.0, 1.0),
    visible: Optional[Tensor] = None,
    ignore: Optional[Tensor] = None,
    point_factor: Union[Tensor, float] = 1.0,
    distance: str = 'squared',
    weighting: str = 'paper',
    wing_params: Optional[dict] = None,
) -> Tensor:
    """Per-point anisotropic cost of regressed landmarks.

    Residuals and tangents are taken in pixels: both coordinates are
    multiplied by ``input_size`` first (MMPose regresses coordinates divided
    by the input size). Tangents come from the ground truth and are
    constants: the gradient flows through the residuals only.

    Args:
        output (Tensor): Predictions, normalised, shape (B, K, 2).
        target (Tensor): Ground truth, normalised, shape (B, K, 2).
        neighbours (Tensor): Previous and next curve neighbour of each point,
            -1 for none, shape (2, K) (``PointTypes.neighbours()``).
        a: Semi-axis along the curve, in pixels.
        b: Semi-axis across the curve, in pixels.
        input_size: ``(w, h)`` of the input crop.
        visible (Tensor, optional): Point weights, shape (B, K); a point of
            weight 0 never steers a neighbour's tangent.
        ignore (Tensor, optional): Points whose cost is exactly 0 with a zero
            gradient, whatever their coordinates, shape (B, K), bool.
        point_factor (Tensor | float): Factor on each point's cost, a number
            or shape (B, K) (loss weight, 1 / (B K) for a mean, target
            weight).
        distance: ``'squared'``, ``'mahalanobis'``, ``'softwing'`` or
            ``'wing'`` (see the module docstring).
        weighting: ``'paper'`` or ``'normalised'``.
        wing_params (dict, optional): Parameters of :func:`soft_wing` or
            :func:`wing` in pixels; their defaults when not given.

    Returns:
        Tensor: Costs times ``point_factor``, shape (B, K).
    """
    check_cost_options(a, b, distance, weighting)
    sx, sy = (float(s) for s in input_size)
    square = sx == sy
    if weighting == 'normalised':
        # b^2 * W = t t^T (b/a)^2 + n n^T: the paper's form with a/b and 1.
        a, b = a / b, 1.0
    with torch.no_grad():
        # A square input scales all directions alike, which leaves W
        # unchanged: only the length threshold needs the scale.
        size = output.new_tensor((sx, sy))
        directions = curve_differences(
            target, neighbours, visible, scale=None if square else size
        )
        # Pixel residuals are size * normalised residuals, so W in
        # normalised units is diag(size) W diag(size). The squared cost
        # takes each point's factor into W as well.
        factor = sx * sx
        if distance == 'squared':
            factor = point_factor * factor
        w00, w01, w11 = anisotropic_weight_entries(
            directions,
            a,
            b,
            scale=factor,
            min_length=MIN_TANGENT_LENGTH / (sx if square else 1),
        )
        if not square:
            w01 = w01 * (sy / sx)
            w11 = w11 * (sy * sy / (sx * sx))
    cost = symmetric_quadratic_form(output - target, w00, w01, w11, ignore)
    if distance == 'squared':
        return cost
    eps = MAHALANOBIS_EPS
    m = (cost.clamp_min(0) + eps).sqrt() - math.sqrt(eps)  # pixels
    if distance == 'softwing':
        m = soft_wing(m, **{**SOFTWING_DEFAULTS, **(wing_params or {})})
    elif distance == 'wing':
        m = wing(m, **{**WING_DEFAULTS, **(wing_params or {})})
    return m * point_factor
