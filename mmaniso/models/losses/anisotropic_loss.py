"""The anisotropic landmark cost of Rayhan, Galata and Cootes (BMVC 2020).

A registered, thin wrapper over :func:`mmaniso.ops.cost.anisotropic_cost`:
it checks its config, turns the point types into neighbour-index buffers
once, works out each point's factor (loss weight, mean, target weight) and
reduces the per-point costs.
"""

from contextlib import nullcontext
from typing import Optional, Sequence, Union

import torch
from mmpose.registry import MODELS
from torch import Tensor, nn

from mmaniso.datasets.point_types import PointTypes, get_point_types
from mmaniso.ops import cost as cost_ops
from mmaniso.ops.cost import anisotropic_cost, check_cost_options

# The crop MMPose's face configs use; what input_size=None means for a loss
# not built by MeanShapeRegressionHead (which passes its codec's instead).
DEFAULT_INPUT_SIZE = (256, 256)
_REDUCTIONS = ('mean', 'sum', 'none')


def _autocast_off(device: torch.device):
    """A context that runs float32 maths under AMP on ``device``."""
    try:
        enabled = torch.is_autocast_enabled(device.type)
    except (TypeError, RuntimeError):  # torch < 2.4, or no autocast there
        enabled = {
            'cuda': torch.is_autocast_enabled,
            'cpu': getattr(torch, 'is_autocast_cpu_enabled', bool),
        }.get(device.type, bool)()
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


@MODELS.register_module()
class AnisotropicLoss(nn.Module):
    """Curve-aware weighted squared error of regressed keypoints.

    Each keypoint's error ``r = x - z`` (prediction minus ground truth)
    costs ``r^T W r`` with ``W = t t^T / a^2 + (I - t t^T) / b^2``, ``t`` the
    unit tangent of the point's curve at the ground truth (see
    :mod:`mmaniso.ops.tangents`), so with ``a > b`` sliding along a curve is
    cheaper than leaving it: an error along the curve costs ``(b / a)^2`` of
    the same error across it. Corners, points on no curve and points
    without a tangent get ``W = I``.

    Units: MMPose's ``RegressionLabel`` codec regresses coordinates divided
    by the input size. Since ``W = I`` at corners fixes the unit in which
    ``a`` and ``b`` are read, residuals and tangents are taken in pixels of
    the input crop (the paper's reading): both coordinates are multiplied by
    ``input_size = (w, h)`` first. With ``a = b = 1`` the cost of a point is
    its squared pixel error. Set ``input_size`` to the codec's.

    The weights are functions of the ground truth only and are treated as
    constants: the gradient flows through the residuals, never through the
    tangents.

    Visibility: when ``target_weight`` is given, a keypoint with weight 0
    (unlabelled, or outside the crop) never steers a tangent, whatever
    ``use_target_weight`` says: its neighbours fall back to the one-sided
    difference, or to ``W = I`` when neither neighbour is visible. Its
    coordinates, in ``target`` or ``output``, then never reach a
    neighbour's cost, so they may be anything, NaN or inf included. With
    ``use_target_weight`` such a point also costs exactly 0, with a zero
    gradient, whatever its coordinates (its cost is filled with 0, not
    multiplied by its weight: 0 * NaN is NaN). Without it every point
    counts: a weight-0 point's own cost is computed from its coordinates
    like any other's (non-finite coordinates give a non-finite cost).

    Reduction: ``'none'`` returns the per-point costs, shape (B, K),
    multiplied by ``target_weight`` when ``use_target_weight``; ``'sum'``
    their sum; ``'mean'`` their sum divided by ``B * K``, i.e. the mean over
    all points, masked ones counting as 0 (as MMPose's regression losses
    average). When nothing is visible the result is an exact zero that
    still depends on ``output`` (as ``output.sum() * 0``), so every DDP rank
    keeps the same graph; this needs no host synchronisation.

    The maths runs in float32 (or float64 for float64 inputs) with autocast
    disabled.

    Args:
        point_types: A dataset name (MMPose's ``dataset_name``, e.g.
            ``'wflw'``) or a point-types dict for a custom dataset (see
            :func:`mmaniso.datasets.point_types.get_point_types`).
        a: Semi-axis along the curve, in input pixels.
        b: Semi-axis across the curve, in input pixels.
        distance: ``'squared'``, the paper's quadratic form ``q = r^T W r``;
            ``'mahalanobis'``, its square root ``m`` per point (an L1-like
            variant), computed as ``sqrt(q + eps) - sqrt(eps)`` with
            ``eps = 1e-6`` pixels squared: 0 at the target, with a finite
            (zero) gradient there and a difference of at most ``1e-3``
            pixels from ``sqrt(q)`` elsewhere; ``'softwing'`` or ``'wing'``,
            MMPose's SoftWing or Wing formula applied to ``m`` with its
            parameters in input-crop pixels (see ``wing_params``).
        weighting: ``'paper'``, the ``W`` above, or ``'normalised'``:
            ``W~ = n n^T + (b/a)^2 t t^T`` on curve points and ``I`` at
            corners and isolated points, i.e. ``b^2`` times the paper's
            ``W`` on curves, so that an error across a curve weighs what
            the same error at a corner weighs.
        wing_params: Parameters of the ``'softwing'``/``'wing'`` formula,
            in input-crop pixels. Defaults: SoftWing ``omega1=2``,
            ``omega2=20``, ``epsilon=0.5`` (Lin et al., ICCV 2021, as
            MMPose's WFLW recipe gives them for a 256 x 256 crop); Wing
            ``omega=10``, ``epsilon=2`` (Feng et al., CVPR 2018, for their
            128 x 128 crop). MMPose's own ``SoftWingLoss``/``WingLoss`` read
            these in the normalised [0, 1] frame, where every error is in
            their linear branch.
        use_target_weight: Multiply each point's cost by its target weight
            (a weight-0 point costs exactly 0, see Visibility).
        loss_weight: Factor on the loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (see above).
        input_size: Width and height of the model input in pixels, the
            codec's ``input_size``. Inside a ``MeanShapeRegressionHead``
            leave it unset: the head passes its codec's (and refuses a
            different value). Elsewhere ``None`` means 256 x 256.
    """

    MAHALANOBIS_EPS = cost_ops.MAHALANOBIS_EPS
    MIN_TANGENT_LENGTH = cost_ops.MIN_TANGENT_LENGTH

    def __init__(
        self,
        point_types: Union[str, dict, PointTypes],
        a: float = 5.0,
        b: float = 3.0,
        distance: str = 'squared',
        use_target_weight: bool = False,
        loss_weight: float = 1.0,
        reduction: str = 'mean',
        input_size: Optional[Sequence[float]] = None,
        weighting: str = 'paper',
        wing_params: Optional[dict] = None,
    ):
        super().__init__()
        try:
            check_cost_options(a, b, distance, weighting)
        except ValueError as e:
            raise ValueError(f'AnisotropicLoss: {e}') from None
        defaults = {
            'softwing': cost_ops.SOFTWING_DEFAULTS,
            'wing': cost_ops.WING_DEFAULTS,
        }.get(distance)
        if wing_params is not None:
            unknown = set(wing_params) - set(defaults or ())
            if unknown:
                raise ValueError(
                    f'AnisotropicLoss: wing_params {sorted(unknown)} do not '
                    f'apply to distance={distance!r}; it takes '
                    f'{sorted(defaults or ())}'
                )
        if input_size is None:
            input_size = DEFAULT_INPUT_SIZE
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f'AnisotropicLoss: reduction must be one of {_REDUCTIONS}, '
                f'got {reduction!r}'
            )
        if (
            not isinstance(input_size, (list, tuple))
            or len(input_size) != 2
            or not all(s > 0 for s in input_size)
        ):
            raise ValueError(
                f'AnisotropicLoss: input_size must be (width, height) in '
                f"pixels, the codec's input_size, got {input_size!r}"
            )
        self.point_types = get_point_types(point_types)
        self.a = float(a)
        self.b = float(b)
        self.distance = distance
        self.weighting = weighting
        self.wing_params = dict(defaults or {}, **(wing_params or {}))
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight
        self.reduction = reduction
        # Previous and next neighbour of each point along its curve, -1 for
        # none, shape (2, K). Derived from the config: not in checkpoints.
        self.register_buffer(
            'neighbours', self.point_types.neighbours(), persistent=False
        )
        self._size = tuple(float(s) for s in input_size)
        self.register_buffer(
            'input_size', torch.tensor(self._size), persistent=False
        )

    @property
    def num_keypoints(self) -> int:
        return self.point_types.num_keypoints

    def extra_repr(self) -> str:
        return (
            f'point_types={self.point_types.name!r}, a={self.a}, b={self.b}, '
            f'distance={self.distance!r}, weighting={self.weighting!r}, '
            f'reduction={self.reduction!r}, '
            f'input_size={tuple(self.input_size.tolist())}'
        )

    def _check(
        self, output: Tensor, target: Tensor, target_weight: Optional[Tensor]
    ) -> None:
        if output.dim() != 3 or output.shape[-1] != 2:
            raise ValueError(
                f'AnisotropicLoss: output must have shape (B, K, 2), got '
                f'{tuple(output.shape)}'
            )
        if target.shape != output.shape:
            raise ValueError(
                f'AnisotropicLoss: target shape {tuple(target.shape)} must '
                f'equal the output shape {tuple(output.shape)}'
            )
        if output.shape[1] != self.num_keypoints:
            raise ValueError(
                f'AnisotropicLoss: the output has {output.shape[1]} '
                f'keypoints but point types {self.point_types.name!r} have '
                f'{self.num_keypoints}; set point_types to the dataset the '
                'head is trained on'
            )
        if target_weight is None:
            if self.use_target_weight:
                raise ValueError(
                    'AnisotropicLoss: use_target_weight=True needs a '
                    'target_weight'
                )
        elif target_weight.shape not in (
            output.shape[:2],
            output.shape[:2] + (1,),
        ):
            raise ValueError(
                f'AnisotropicLoss: target_weight must have shape (B, K) or '
                f'(B, K, 1) = {tuple(output.shape[:2])}(, 1), got '
                f'{tuple(target_weight.shape)}'
            )

    def forward(
        self,
        output: Tensor,
        target: Tensor,
        target_weight: Optional[Tensor] = None,
    ) -> Tensor:
        """Computes the loss.

        Args:
            output: Predicted keypoints, normalised by the input size,
                shape (B, K, 2).
            target: Ground-truth keypoints, same units, shape (B, K, 2).
            target_weight: Keypoint weights (0 = invisible), shape (B, K)
                or (B, K, 1).

        Returns:
            Tensor: A scalar, or the per-point costs of shape (B, K) with
            ``reduction='none'``.
        """
        self._check(output, target, target_weight)
        if output.numel() == 0:
            zero = output.sum() * 0
            return (
                zero.expand(output.shape[:2])
                if (self.reduction == 'none')
                else zero
            )
        batch, num_keypoints = output.shape[:2]
        dtype = torch.promote_types(output.dtype, torch.float32)
        with _autocast_off(output.device):
            weight = None
            if target_weight is not None:
                weight = target_weight.reshape(batch, num_keypoints)
                weight = weight.to(dtype)
            # With use_target_weight a weight-0 point costs exactly 0 with
            # a zero gradient whatever its coordinates (an unlabelled point
            # may hold NaN or inf): its cost is filled, not multiplied by
            # its weight alone (0 * NaN = NaN).
            ignore = (weight == 0) if self.use_target_weight else None
            cost = anisotropic_cost(
                output.to(dtype),
                target.to(dtype),
                self.neighbours,
                self.a,
                self.b,
                self._size,
                visible=weight,
                ignore=ignore,
                point_factor=self._point_factor(weight, batch * num_keypoints),
                distance=self.distance,
                weighting=self.weighting,
                wing_params=self.wing_params or None,
            )
            return cost if self.reduction == 'none' else cost.sum()

    def _point_factor(
        self, weight: Optional[Tensor], num_points: int
    ) -> Union[Tensor, float]:
        """What each point's cost is multiplied by: the loss weight, for the
        mean ``1 / (B * K)`` and, with ``use_target_weight``, the target
        weight."""
        factor = self.loss_weight
        if self.reduction == 'mean':
            factor = factor / num_points
        if self.use_target_weight:
            return weight * factor
        return factor
