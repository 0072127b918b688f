"""MMPose's top-down training augmentation as one batched affine warp.

MMPose's top-down pipeline draws, per sample and on the CPU, a horizontal
flip (``RandomFlip``), a shift, scale and rotation of the padded face box
(``RandomBBoxTransform``, truncated normals) and warps the image into the
model's input (``TopdownAffine``, OpenCV). Here the same draws come from a
``torch.Generator`` on any device and the four steps become one source ->
input affine map per sample, applied to a whole batch by one
``affine_grid``/``grid_sample`` call; keypoints go through the same map and
``RegressionLabel``'s targets and weights follow.

Frames are MMPose's: pixel centres at integer coordinates, a flip maps
``x`` to ``W - 1 - x``, and the input crop's centre is ``(w / 2, h / 2)``
(``get_warp_matrix``, not UDP).
"""

import math
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Size = Tuple[int, int]


class TopdownParams(NamedTuple):
    """Per-sample random augmentation, as MMPose's transforms draw it.

    Attributes:
        flip (Tensor): Horizontal flip, shape (B,), bool.
        offset (Tensor): Box centre shift as a fraction of the box size
            (w, h), shape (B, 2).
        scale (Tensor): Box scale factor, shape (B,).
        rotation (Tensor): Rotation in degrees, shape (B,).
    """

    flip: Tensor
    offset: Tensor
    scale: Tensor
    rotation: Tensor


class TopdownBatch(NamedTuple):
    """Result of :func:`topdown_augment`.

    Attributes:
        images (Tensor): Model inputs, shape (B, C, h, w).
        keypoints (Tensor): Keypoints in input pixels, symmetric points
            swapped where flipped, shape (B, K, 2).
        keypoint_labels (Tensor): ``keypoints / (w, h)``, shape (B, K, 2).
        keypoint_weights (Tensor): 1 for visible keypoints inside the input,
            else 0, shape (B, K).
        matrix (Tensor): Source -> input pixel map, shape (B, 2, 3).
    """

    images: Tensor
    keypoints: Tensor
    keypoint_labels: Tensor
    keypoint_weights: Tensor
    matrix: Tensor


def truncated_normal(
    shape: Sequence[int],
    low: float = -1.0,
    high: float = 1.0,
    generator: Optional[torch.Generator] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal draws truncated to ``[low, high]`` (inverse CDF).

    The distribution of ``scipy.stats.truncnorm(low, high)``, which MMPose's
    ``RandomBBoxTransform`` samples, drawn from ``generator`` on ``device``.

    .. math:: x = \\sqrt{2}\\,\\mathrm{erfinv}\\big(\\mathrm{erf}(a/\\sqrt{2})
        + u\\,(\\mathrm{erf}(b/\\sqrt{2}) - \\mathrm{erf}(a/\\sqrt{2}))\\big),
        \\quad u \\sim U(0, 1)

    Args:
        shape: Output shape.
        low: Lower truncation point, in standard deviations.
        high: Upper truncation point, in standard deviations.
        generator: Random source; its device must be ``device``'s.
        device: Where to draw.
        dtype: Floating point type of the result.

    Returns:
        Tensor: Draws in ``[low, high]``, shape ``shape``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = truncated_normal((1000,), generator=g)
        >>> bool(x.abs().max() <= 1)
        True
    """
    if not low < high:
        raise ValueError(f'need low < high, got low={low}, high={high}')
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return _truncated_normal_from_uniform(u, low, high)


def _truncated_normal_from_uniform(u: Tensor, low: float, high: float):
    a = math.erf(low / math.sqrt(2.0))
    b = math.erf(high / math.sqrt(2.0))
    x = math.sqrt(2.0) * torch.erfinv(a + u * (b - a))
    return x.clamp_(low, high)


def draw_topdown_params(
    batch_size: int,
    generator: Optional[torch.Generator] = None,
    device: Optional[Union[str, torch.device]] = None,
    flip_prob: float = 0.5,
    shift_factor: float = 0.16,
    shift_prob: float = 0.3,
    scale_factor: Tuple[float, float] = (0.5, 1.5),
    scale_prob: float = 1.0,
    rotate_factor: float = 80.0,
    rotate_prob: float = 0.6,
) -> TopdownParams:
    """Draws ``RandomFlip`` and ``RandomBBoxTransform``'s parameters.

    The distributions of MMPose 1.x, whose defaults these are: a flip with
    probability ``flip_prob``; with probability ``shift_prob`` an offset of
    ``shift_factor`` times a standard normal truncated to [-1, 1] per axis
    (else 0); with probability ``scale_prob`` a scale of
    ``mu + sigma t``, ``mu`` and ``sigma`` the middle and half-width of
    ``scale_factor``, ``t`` truncated to [-1, 1] (else 1); with probability
    ``rotate_prob`` a rotation of ``rotate_factor t`` degrees (else 0).
    All uniforms come from one ``torch.rand`` call on ``device``.

    Args:
        batch_size: Number of samples B.
        generator: Random source on ``device``.
        device: Where to draw.
        flip_prob: ``RandomFlip(prob)``.
        shift_factor: ``RandomBBoxTransform(shift_factor)``.
        shift_prob: ``RandomBBoxTransform(shift_prob)``.
        scale_factor: ``RandomBBoxTransform(scale_factor)``, (min, max).
        scale_prob: ``RandomBBoxTransform(scale_prob)``.
        rotate_factor: ``RandomBBoxTransform(rotate_factor)``, degrees.
        rotate_prob: ``RandomBBoxTransform(rotate_prob)``.

    Returns:
        TopdownParams: ``flip`` (B,), ``offset`` (B, 2), ``scale`` (B,),
        ``rotation`` (B,).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> p = draw_topdown_params(4, g, scale_factor=(0.75, 1.25))
        >>> tuple(p.offset.shape), bool((p.scale - 1).abs().max() <= 0.25)
        ((4, 2), True)
    """
    for name, prob in (
        ('flip_prob', flip_prob),
        ('shift_prob', shift_prob),
        ('scale_prob', scale_prob),
        ('rotate_prob', rotate_prob),
    ):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'{name} must be in [0, 1], got {prob}')
    low, high = (float(v) for v in scale_factor)
    if not 0.0 < low <= high:
        raise ValueError(
            f'scale_factor must be (min, max) with 0 < min <= max, got '
            f'{tuple(scale_factor)}'
        )
    # Columns: flip, shift x, shift y, shift gate, scale, scale gate,
    # rotation, rotation gate.
    u = torch.rand((batch_size, 8), generator=generator, device=device)
    t = _truncated_normal_from_uniform(u[:, [1, 2, 4, 6]], -1.0, 1.0)
    offset = torch.where(
        u[:, 3:4] < shift_prob, t[:, :2] * shift_factor, t.new_zeros(())
    )
    mu, sigma = 0.5 * (high + low), 0.5 * (high - low)
    scale = torch.where(u[:, 5] < scale_prob, t[:, 2] * sigma + mu, 1.0)
    rotation = torch.where(
        u[:, 7] < rotate_prob, t[:, 3] * rotate_factor, t.new_zeros(())
    )
    return TopdownParams(u[:, 0] < flip_prob, offset, scale, rotation)


def fix_aspect_ratio(scale: Tensor, aspect_ratio: float) -> Tensor:
    """Widens boxes to ``w / h = aspect_ratio`` (``TopdownAffine``'s rule).

    Args:
        scale (Tensor): Box sizes (w, h), shape (B, 2).
        aspect_ratio: Target ``w / h``.

    Returns:
        Tensor: Box sizes, shape (B, 2).
    """
    w, h = scale[:, :1], scale[:, 1:]
    return torch.where(
        w > h * aspect_ratio,
        torch.cat([w, w / aspect_ratio], 1),
        torch.cat([h * aspect_ratio, h], 1),
    )


def topdown_warp_matrix(
    center: Tensor, scale: Tensor, rotation: Tensor, input_size: Size
) -> Tensor:
    """MMPose's ``get_warp_matrix`` for a batch: box -> input pixels.

    .. math:: q = \\frac{w}{s_w} R(-\\theta)(p - c) + (w/2, h/2)

    Args:
        center (Tensor): Box centres, shape (B, 2).
        scale (Tensor): Box sizes (w, h) at the input's aspect ratio,
            shape (B, 2).
        rotation (Tensor): Degrees, counter-clockwise in the image, shape
            (B,).
        input_size: Model input (w, h).

    Returns:
        Tensor: Affine maps, shape (B, 2, 3).

    Example:
        >>> m = topdown_warp_matrix(torch.tensor([[50., 50.]]),
        ...     torch.tensor([[100., 100.]]), torch.zeros(1), (64, 64))
        >>> m[0, :, 2].tolist()
        [0.0, 0.0]
    """
    w, h = input_size
    theta = torch.deg2rad(rotation)
    k = w / scale[:, 0]
    cos, sin = torch.cos(theta) * k, torch.sin(theta) * k
    linear = torch.stack(
        [torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1
    )  # (B, 2, 2)
    shift = center.new_tensor([w / 2.0, h / 2.0]) - torch.einsum(
        'bij,bj->bi', linear, center
    )
    return torch.cat([linear, shift[:, :, None]], 2)


def topdown_affine_matrix(
    center: Tensor,
    scale: Tensor,
    params: TopdownParams,
    input_size: Size,
    flip_width: Union[float, Tensor],
) -> Tensor:
    """The source -> input map of ``RandomFlip``, ``RandomBBoxTransform``
    and ``TopdownAffine`` together.

    The box centre is flipped with the image (``x -> W - 1 - x``), shifted
    by ``offset`` times the box size, the box scaled and widened to the
    input's aspect ratio, and warped as ``TopdownAffine`` warps it; the
    flip is folded into the map. The result does not depend on
    ``flip_width`` (the flip moves the box with the image).

    Args:
        center (Tensor): Padded box centres (``GetBBoxCenterScale``),
            source pixels, shape (B, 2).
        scale (Tensor): Padded box sizes (w, h), shape (B, 2).
        params (TopdownParams): The draws.
        input_size: Model input (w, h).
        flip_width: Source image width W, a number or shape (B,).

    Returns:
        Tensor: Affine maps from source to input pixels, shape (B, 2, 3).
    """
    w, h = input_size
    flip = params.flip
    width = torch.as_tensor(flip_width, dtype=center.dtype).to(center)
    flipped_x = width - 1.0 - center[:, 0]
    center = torch.stack(
        [torch.where(flip, flipped_x, center[:, 0]), center[:, 1]], 1
    )
    center = center + params.offset.to(center) * scale
    scale = scale * params.scale.to(center)[:, None]
    scale = fix_aspect_ratio(scale, w / h)
    matrix = topdown_warp_matrix(
        center, scale, params.rotation.to(center), input_size
    )
    # m @ flip: x -> W - 1 - x negates the first column and moves the
    # translation by (W - 1) times it.
    sign = torch.where(flip, -1.0, 1.0).to(center)
    first = matrix[:, :, 0] * sign[:, None]  # (B, 2)
    shift = matrix[:, :, 2] + torch.where(
        flip[:, None], matrix[:, :, 0] * (width - 1.0).reshape(-1, 1), 0.0
    )
    return torch.stack([first, matrix[:, :, 1], shift], 2)


def invert_affine(matrix: Tensor) -> Tensor:
    """Inverse of 2-D affine maps, in closed form (no device sync).

    Args:
        matrix (Tensor): Affine maps, shape (B, 2, 3).

    Returns:
        Tensor: Their inverses, shape (B, 2, 3).
    """
    a, b, tx = matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 0, 2]
    c, d, ty = matrix[:, 1, 0], matrix[:, 1, 1], matrix[:, 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    itx = -(ia * tx + ib * ty)
    ity = -(ic * tx + id_ * ty)
    return torch.stack(
        [torch.stack([ia, ib, itx], 1), torch.stack([ic, id_, ity], 1)], 1
    )


def warp_images(
    images: Tensor,
    matrix: Tensor,
    output_size: Size,
    mode: str = 'bilinear',
) -> Tensor:
    """Resamples each image through its affine map, zeros outside.

    ``cv2.warpAffine(img, m, (w, h), flags=INTER_LINEAR)`` for a batch, in
    floating point: output pixel ``q`` reads the source at ``m^{-1} q``,
    pixel centres at integers (``align_corners=False`` in normalised
    coordinates).

    Args:
        images (Tensor): Source images, shape (B, C, H, W), floating point.
        matrix (Tensor): Source -> output pixel maps, shape (B, 2, 3).
        output_size: Output (w, h).
        mode: ``grid_sample`` interpolation.

    Returns:
        Tensor: Warped images, shape (B, C, h, w).
    """
    if not images.is_floating_point():
        raise TypeError(
            f'warp_images needs floating point images, got {images.dtype}; '
            'convert with .float() first'
        )
    b, c, src_h, src_w = images.shape
    w, h = output_size
    inv = invert_affine(matrix.to(images.dtype))  # output px -> source px
    # Normalised (align_corners=False): u = (2 x + 1) / W - 1.
    to_px = inv.new_tensor(
        [[w / 2.0, 0.0, (w - 1) / 2.0], [0.0, h / 2.0, (h - 1) / 2.0]]
    )  # output normalised -> output px
    sx, sy = 2.0 / src_w, 2.0 / src_h
    lin = inv[:, :, :2] @ to_px[:, :2]  # (B, 2, 2)
    trans = inv[:, :, :2] @ to_px[:, 2] + inv[:, :, 2]  # (B, 2)
    norm = inv.new_tensor([sx, sy])
    offset = inv.new_tensor([1.0 / src_w - 1.0, 1.0 / src_h - 1.0])
    theta = torch.cat(
        [lin * norm[:, None], (trans * norm + offset)[:, :, None]], 2
    )
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    return F.grid_sample(
        images, grid, mode=mode, padding_mode='zeros', align_corners=False
    )


def transform_points(points: Tensor, matrix: Tensor) -> Tensor:
    """Maps points through affine maps.

    Args:
        points (Tensor): Shape (B, K, 2).
        matrix (Tensor): Shape (B, 2, 3).

    Returns:
        Tensor: ``points @ A^T + t``, shape (B, K, 2).
    """
    matrix = matrix.to(points)
    return points @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]


def swap_flipped(values: Tensor, flip: Tensor, flip_indices: Tensor):
    """Reorders each flipped sample's keypoints by its flip indices.

    Args:
        values (Tensor): Per-keypoint values, shape (B, K) or (B, K, D).
        flip (Tensor): Which samples were flipped, shape (B,), bool.
        flip_indices (Tensor): Each keypoint's mirror, shape (K,) or
            (B, K), long.

    Returns:
        Tensor: Same shape as ``values``.
    """
    b, k = values.shape[:2]
    index = flip_indices.to(values.device).long().expand(b, k)
    view = index.reshape(b, k, *([1] * (values.dim() - 2)))
    swapped = values.gather(1, view.expand_as(values))
    mask = flip.reshape(b, *([1] * (values.dim() - 1)))
    return torch.where(mask, swapped, values)


def regression_targets(
    keypoints: Tensor, visible: Tensor, input_size: Size
) -> Tuple[Tensor, Tensor]:
    """``RegressionLabel.encode`` for a batch.

    Args:
        keypoints (Tensor): Input pixels, shape (B, K, 2).
        visible (Tensor): Visibility, shape (B, K).
        input_size: Model input (w, h).

    Returns:
        tuple: ``keypoint_labels`` ``keypoints / (w, h)``, shape
        (B, K, 2), and ``keypoint_weights``, 1 where the keypoint is
        visible (> 0.5) and inside ``[0, w - 1] x [0, h - 1]``, else 0,
        shape (B, K).
    """
    w, h = input_size
    size = keypoints.new_tensor([w, h])
    inside = ((keypoints >= 0) & (keypoints <= size - 1)).all(-1)
    weights = (inside & (visible > 0.5)).to(keypoints.dtype)
    return keypoints / size, weights


def topdown_augment(
    images: Tensor,
    center: Tensor,
    scale: Tensor,
    keypoints: Tensor,
    visible: Tensor,
    params: TopdownParams,
    input_size: Size,
    flip_indices: Tensor,
) -> TopdownBatch:
    """Flip, shift, scale, rotate and crop a batch, targets included.

    MMPose's ``RandomFlip`` -> ``RandomBBoxTransform`` -> ``TopdownAffine``
    -> ``GenerateTarget(RegressionLabel)`` for given draws, with one
    resample of each source image.

    Args:
        images (Tensor): Source images, shape (B, C, H, W), float.
        center (Tensor): Padded box centres, shape (B, 2).
        scale (Tensor): Padded box sizes (w, h), shape (B, 2).
        keypoints (Tensor): Source pixels, shape (B, K, 2).
        visible (Tensor): Visibility, shape (B, K).
        params (TopdownParams): The draws (:func:`draw_topdown_params`).
        input_size: Model input (w, h).
        flip_indices (Tensor): Each keypoint's mirror, shape (K,) or (B, K).

    Returns:
        TopdownBatch: Inputs (B, C, h, w), keypoints and labels (B, K, 2),
        weights (B, K) and the maps (B, 2, 3).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> p = draw_topdown_params(2, g)
        >>> out = topdown_augment(torch.rand(2, 3, 96, 96),
        ...     torch.full((2, 2), 48.), torch.full((2, 2), 60.),
        ...     torch.rand(2, 5, 2) * 96, torch.ones(2, 5), p, (64, 64),
        ...     torch.tensor([4, 3, 2, 1, 0]))
        >>> tuple(out.images.shape), tuple(out.keypoint_weights.shape)
        ((2, 3, 64, 64), (2, 5))
    """
    if images.dim() != 4 or keypoints.dim() != 3 or keypoints.shape[-1] != 2:
        raise ValueError(
            f'expected images (B, C, H, W) and keypoints (B, K, 2), got '
            f'{tuple(images.shape)} and {tuple(keypoints.shape)}'
        )
    matrix = topdown_affine_matrix(
        center, scale, params, input_size, images.shape[-1]
    )
    out = warp_images(images, matrix, input_size)
    points = transform_points(keypoints, matrix)
    points = swap_flipped(points, params.flip, flip_indices)
    visible = swap_flipped(visible, params.flip, flip_indices)
    labels, weights = regression_targets(points, visible, input_size)
    return TopdownBatch(out, points, labels, weights, matrix)


__all__ = [
    'TopdownBatch',
    'TopdownParams',
    'draw_topdown_params',
    'fix_aspect_ratio',
    'invert_affine',
    'regression_targets',
    'swap_flipped',
    'topdown_affine_matrix',
    'topdown_augment',
    'topdown_warp_matrix',
    'transform_points',
    'truncated_normal',
    'warp_images',
]
