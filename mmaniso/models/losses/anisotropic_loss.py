"""The anisotropic landmark cost of Rayhan, Galata and Cootes (BMVC 2020).

A registered, thin wrapper over :func:`mmaniso.ops.cost.anisotropic_cost`:
it checks its config, turns the point types into neighbour-index buffers
once, works out each point's factor (loss weight, mean, target weight) and
reduces the per-point costs.
"""

from contextlib import nullcontext
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmpose.registry import MODELS
from torch import Tensor, nn

from mmaniso.datasets.point_types import PointTypes, get_point_types
from mmaniso.ops import cost as cost_ops
from mmaniso.ops.cost import anisotropic_cost, check_cost_options
from mmaniso.ops.likelihood import (
    LIKELIHOOD_DISTANCES,
    elliptical_nll,
    floored_scales,
    scale_params_for,
    tangent_frame,
)

# The crop MMPose's face configs use; what input_size=None means for a loss
# not built by MeanShapeRegressionHead (which passes its codec's instead).
DEFAULT_INPUT_SIZE = (256, 256)
_REDUCTIONS = ('mean', 'sum', 'none')
SCALES = ('fixed', 'learned', 'learned_isotropic', 'predicted')
TIE_SCALES = (None, 'curve')
# The default floor of the learned and predicted scales, in input-crop
# pixels: about the standard deviation of rounding a point to the pixel
# grid (1 / sqrt(12) = 0.29 px), below which no annotation is precise.
DEFAULT_MIN_SCALE = 0.3


class NonFiniteLikelihoodError(FloatingPointError):
    """A learned or predicted scale, or the likelihood, is not finite."""


def _check_scale_options(
    scales: str,
    tie_scales: Optional[str],
    min_scale: float,
    a: float,
    b: float,
    distance: str,
    weighting: str,
) -> None:
    """Refuses scale options the likelihood cannot serve."""
    if scales not in SCALES:
        raise ValueError(
            f'AnisotropicLoss: scales must be one of {SCALES}, got {scales!r}'
        )
    if tie_scales not in TIE_SCALES:
        raise ValueError(
            f'AnisotropicLoss: tie_scales must be one of {TIE_SCALES}, got '
            f'{tie_scales!r}'
        )
    if tie_scales is not None and scales not in (
        'learned',
        'learned_isotropic',
    ):
        raise ValueError(
            f'AnisotropicLoss: tie_scales={tie_scales!r} ties learned '
            f"scales, but scales={scales!r}; use scales='learned' or "
            "'learned_isotropic', or drop tie_scales"
        )
    if isinstance(min_scale, bool) or not isinstance(min_scale, (int, float)):
        raise TypeError(
            f'AnisotropicLoss: min_scale must be a number of input-crop '
            f'pixels, got {min_scale!r}'
        )
    if scales == 'fixed':
        return
    if distance not in LIKELIHOOD_DISTANCES:
        raise ValueError(
            f'AnisotropicLoss: scales={scales!r} needs a log-density as its '
            f"exponent, but distance={distance!r} (a wing's exponent is "
            "not one); use distance='mahalanobis' (Laplace-like, L1) or "
            "'squared' (Gaussian), or scales='fixed'"
        )
    if weighting != 'normalised':
        raise ValueError(
            f'AnisotropicLoss: scales={scales!r} learns the weighting '
            f'itself and starts from the normalised family, but weighting='
            f"{weighting!r}; set weighting='normalised'"
        )
    if not (0 <= min_scale < min(a, b)):
        raise ValueError(
            f'AnisotropicLoss: min_scale={min_scale} must be >= 0 and below '
            f'the starting scales a={a} and b={b} (input-crop pixels); '
            f'the default is {DEFAULT_MIN_SCALE}'
        )


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
        scales: ``'fixed'``, the cost above with the given ``a`` and ``b``
            (the default). The others minimise the negative log-likelihood
            of the elliptical density whose exponent is the distance
            (:mod:`mmaniso.ops.likelihood`): ``m + log(2 pi a_i b_i)``
            (``distance='mahalanobis'``, Laplace-like) or
            ``q / 2 + log(2 pi a_i b_i)`` (``'squared'``, Gaussian), with
            ``m``, ``q`` built from per-landmark scales ``a_i`` (along the
            curve) and ``b_i`` (across; corners and isolated points: one
            isotropic scale). ``'learned'``: ``a_i`` and ``b_i`` are
            parameters of this module (``scale_params``, in the model's
            state dict and checkpoints), starting at ``a`` and ``b`` (and at
            ``b`` for corners and isolated points, the normalised family's
            start). ``'learned_isotropic'``: one scale per landmark,
            starting at ``b`` everywhere (the isotropic twin's start), so
            learned weighting and learned anisotropy can be told apart.
            ``'predicted'``: the head predicts the scales per image and
            passes them as ``scale_params`` (see
            ``MeanShapeRegressionHead(predict_scales=...)``). Every form
            needs ``distance='squared'`` or ``'mahalanobis'`` (a wing's
            exponent is not a log-density) and ``weighting='normalised'``
            (the scales set the weighting themselves; the normalised family
            is where they start).
        tie_scales: With ``'learned'`` or ``'learned_isotropic'``:
            ``None``, one set of scales per landmark; ``'curve'``, one set
            per curve (corners and isolated points keep their own).
        min_scale: Floor of the learned and predicted scales in input-crop
            pixels: scale ``= min_scale + exp(p)``. Without a floor the
            likelihood of a landmark whose errors happen to be near zero
            grows without bound as its scale shrinks (and the gradient on
            the network grows as ``1 / scale``). The default, 0.3 px, is
            about the standard deviation of rounding a point to the pixel
            grid (``1 / sqrt(12)``).
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
        scales: str = 'fixed',
        tie_scales: Optional[str] = None,
        min_scale: float = DEFAULT_MIN_SCALE,
    ):
        super().__init__()
        try:
            check_cost_options(a, b, distance, weighting)
        except ValueError as e:
            raise ValueError(f'AnisotropicLoss: {e}') from None
        _check_scale_options(
            scales, tie_scales, min_scale, a, b, distance, weighting
        )
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
        self.scales = scales
        self.tie_scales = tie_scales
        self.min_scale = float(min_scale)
        if scales != 'fixed':
            self._init_scales()

    @property
    def scale_channels(self) -> int:
        """Scales per landmark: 2 (along, across) or 1 (isotropic)."""
        return 1 if self.scales == 'learned_isotropic' else 2

    def _init_scales(self) -> None:
        """The landmark-to-parameter map and the learned scales' start."""
        num = self.num_keypoints
        # Landmarks that can have a tangent (a neighbour on a curve).
        has_tangent = (self.neighbours >= 0).any(0)
        self.register_buffer('has_tangent', has_tangent, persistent=False)
        group = list(range(num))
        if self.tie_scales == 'curve':
            group = [-1] * num
            count = 0
            for curve in self.point_types.curves:
                members = [i for i in curve.indices if has_tangent[i]]
                for i in members:
                    group[i] = count
                count += bool(members)
            for i in range(num):
                if group[i] < 0:
                    group[i], count = count, count + 1
        self.register_buffer(
            'scale_group', torch.tensor(group), persistent=False
        )
        if self.scales == 'predicted':
            return
        start = self.initial_scale_params()  # (K, C)
        first = [group.index(g) for g in range(max(group) + 1)]
        # Scales per group, their floor taken off: scale = min + exp(p).
        self.scale_params = nn.Parameter(start[first].clone())

    def initial_scale_params(self, channels: Optional[int] = None) -> Tensor:
        """Parameters whose scales are the fixed family's, per landmark.

        Along ``a`` and across ``b`` on landmarks with a tangent, ``b`` on
        the others; ``b`` everywhere for one (isotropic) channel.

        Args:
            channels: 2 (along, across) or 1; the module's when not given.

        Returns:
            Tensor: Shape (K, channels), float32.
        """
        channels = channels or self.scale_channels
        num = self.num_keypoints
        across = torch.full((num,), self.b)
        if channels == 1:
            return scale_params_for(across, self.min_scale)[:, None]
        along = torch.where(self.has_tangent.cpu(), self.a, self.b)
        scales = torch.stack([along, across], -1)
        return scale_params_for(scales, self.min_scale)

    def scales_from_params(self, params: Tensor) -> Tuple[Tensor, Tensor]:
        """Scales along and across in input-crop pixels from parameters.

        Args:
            params (Tensor): Shape (..., K, C), C = 2 (along, across) or 1.

        Returns:
            tuple: ``(along, across)``, each of shape (..., K); a landmark
            without a tangent uses its across scale for both.
        """
        scales = floored_scales(params, self.min_scale)
        across = scales[..., -1]
        if scales.shape[-1] == 1:
            return across, across
        along = torch.where(self.has_tangent, scales[..., 0], across)
        return along, across

    def learned_scales(self) -> Tuple[Tensor, Tensor]:
        """The learned scales per landmark, ``(along, across)``, (K,) each.

        Raises:
            ValueError: If the scales are not learned by this module.
        """
        if self.scales not in ('learned', 'learned_isotropic'):
            raise ValueError(
                f'AnisotropicLoss: scales={self.scales!r} has no learned '
                "scales; use scales='learned' or 'learned_isotropic'"
            )
        return self.scales_from_params(self.scale_params[self.scale_group])

    def scale_summary(
        self, along: Tensor, across: Tensor
    ) -> Dict[str, Tensor]:
        """Mean scales to log: along (landmarks with a tangent) and across
        (all), in input-crop pixels, detached."""
        isotropic = along is across  # one channel
        along, across = along.detach(), across.detach()
        if isotropic:
            return dict(scale_iso=across.mean())
        mask = self.has_tangent.expand_as(along)
        return dict(
            scale_along=along[mask].mean() if bool(mask.any()) else
            across.mean(),
            scale_across=across.mean(),
        )

    def landmark_name(self, index: int) -> str:
        """``'landmark 37 (curve left_brow)'`` for messages."""
        for curve in self.point_types.curves:
            if index in curve.indices and index not in (
                self.point_types.corners
            ):
                return f'landmark {index} (curve {curve.name!r})'
        kind = (
            'corner' if index in self.point_types.corners else 'isolated'
        )
        return f'landmark {index} ({kind})'

    @property
    def num_keypoints(self) -> int:
        return self.point_types.num_keypoints

    def extra_repr(self) -> str:
        return (
            f'point_types={self.point_types.name!r}, a={self.a}, b={self.b}, '
            f'distance={self.distance!r}, weighting={self.weighting!r}, '
            f'reduction={self.reduction!r}, '
            f'input_size={tuple(self.input_size.tolist())}, '
            f'scales={self.scales!r}'
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
        scale_params: Optional[Tensor] = None,
    ) -> Tensor:
        """Computes the loss.

        Args:
            output: Predicted keypoints, normalised by the input size,
                shape (B, K, 2).
            target: Ground-truth keypoints, same units, shape (B, K, 2).
            target_weight: Keypoint weights (0 = invisible), shape (B, K)
                or (B, K, 1).
            scale_params: With ``scales='predicted'`` only: the predicted
                scale parameters, scale ``= min_scale + exp(p)``, shape
                (B, K, 2) (along, across) or (B, K, 1) (isotropic).

        Returns:
            Tensor: A scalar, or the per-point costs of shape (B, K) with
            ``reduction='none'``.

        Raises:
            NonFiniteLikelihoodError: With learned or predicted scales,
                when a scale or the likelihood is not finite; the message
                names the first such landmark.
        """
        self._check(output, target, target_weight)
        if (scale_params is not None) != (self.scales == 'predicted'):
            raise ValueError(
                'AnisotropicLoss: scale_params are given exactly when '
                f"scales='predicted' (this loss has scales={self.scales!r});"
                ' use MeanShapeRegressionHead(predict_scales=...) with '
                "loss scales='predicted'"
            )
        if scale_params is not None and (
            scale_params.dim() != 3
            or scale_params.shape[:2] != output.shape[:2]
            or scale_params.shape[2] not in (1, 2)
        ):
            raise ValueError(
                'AnisotropicLoss: scale_params must have shape (B, K, 2) or '
                f'(B, K, 1) with (B, K) = {tuple(output.shape[:2])}, got '
                f'{tuple(scale_params.shape)}'
            )
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
            if self.scales != 'fixed':
                cost = self._likelihood(
                    output.to(dtype),
                    target.to(dtype),
                    weight,
                    ignore,
                    scale_params,
                )
                return cost if self.reduction == 'none' else cost.sum()
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

    def _likelihood(
        self,
        output: Tensor,
        target: Tensor,
        weight: Optional[Tensor],
        ignore: Optional[Tensor],
        scale_params: Optional[Tensor],
    ) -> Tensor:
        """Per-point NLL times the point factor, shape (B, K)."""
        batch, num_keypoints = output.shape[:2]
        if scale_params is None:
            params = self.scale_params[self.scale_group]  # (K, C)
        else:
            params = scale_params.to(output.dtype)
        along, across = self.scales_from_params(params.to(output.dtype))
        tangents, valid = tangent_frame(
            target,
            self.neighbours,
            self._size,
            visible=weight,
            min_length=self.MIN_TANGENT_LENGTH,
        )
        residuals = (output - target) * self.input_size.to(output.dtype)
        nll = elliptical_nll(
            residuals,
            tangents,
            valid,
            along,
            across,
            self.distance,
            ignore=ignore,
        )
        nll = nll * self._point_factor(weight, batch * num_keypoints)
        # One host sync per step: a NaN model must never be trained on.
        if not bool(torch.isfinite(nll.sum())):
            self._raise_non_finite(nll, along, across)
        return nll

    def _raise_non_finite(
        self, nll: Tensor, along: Tensor, across: Tensor
    ) -> None:
        bad = ~torch.isfinite(nll)
        if not bool(bad.any()):  # the sum overflowed, no single point
            bad = nll.abs() == nll.abs().max()
        sample, index = (int(v) for v in bad.nonzero()[0])
        pick = (sample, index) if along.dim() == 2 else (index,)
        raise NonFiniteLikelihoodError(
            f'AnisotropicLoss: the likelihood of {self.landmark_name(index)}'
            f' in sample {sample} of the batch is {nll[sample, index].item()}'
            f' (scale along {along[pick].item():.6g}, across '
            f'{across[pick].item():.6g} px; scales={self.scales!r}). A scale '
            'overflowed or the prediction is not finite: lower the learning '
            'rate, clip gradients (optim_wrapper clip_grad), or check this '
            "landmark's annotations"
        )

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
