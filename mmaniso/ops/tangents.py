"""Unit tangents of landmark curves, from the ground-truth points.

A curve is an ordered list of keypoint indices, open or closed. Each point
of a curve has a previous and a next neighbour on it (-1 where there is
none: the ends of an open curve, corners, points on no curve). The tangent
at a point is the difference of its neighbours' positions
(:func:`curve_differences`), normalised (:func:`curve_tangents`):

* both neighbours visible: the central difference ``x[next] - x[prev]``
  (on a closed curve the neighbours wrap round);
* one neighbour visible: the one-sided difference between the point and
  that neighbour (this is also the rule at the ends of an open curve);
* no neighbour visible, or a difference shorter than ``min_length``: no
  tangent. The point is marked invalid and gets an isotropic weight.

An invisible neighbour never steers a tangent, whatever its coordinates
(NaN or inf at an unlabelled point included: it is selected out, never
multiplied by a zero mask), and an invalid tangent is returned as zeros
with ``valid=False``; no step divides by zero, so neither the values nor
their gradients are ever NaN or inf unless a point's own or a usable
neighbour's coordinates are.
"""

from typing import Iterable, Optional, Sequence, Tuple

import torch
from torch import Tensor

NO_NEIGHBOUR = -1


def curve_neighbours(
    num_keypoints: int,
    curves: Iterable[Tuple[Sequence[int], bool]],
    corners: Iterable[int] = (),
) -> Tensor:
    """Previous and next neighbour of every keypoint along its curve.

    Corners and points on no curve have no neighbours, so they get an
    isotropic weight. A corner may still be the neighbour of the points
    next to it on a curve.

    Args:
        num_keypoints: Number of keypoints K.
        curves: ``(indices, closed)`` pairs, indices in curve order.
        corners: Keypoints that get no tangent even when on a curve.

    Returns:
        Tensor: ``neighbours``, shape (2, K), int64: row 0 holds each
        point's previous neighbour, row 1 its next one, ``-1`` where there
        is none.

    Raises:
        ValueError: If an index is out of range or a point lies on two
            curves without being a corner.

    Example:
        >>> curve_neighbours(4, [([0, 1, 2], False)]).tolist()
        [[-1, 0, 1, -1], [1, 2, -1, -1]]
    """
    prev_index = [NO_NEIGHBOUR] * num_keypoints
    next_index = [NO_NEIGHBOUR] * num_keypoints
    corner_set = set(int(c) for c in corners)
    owner = {}
    for c, (indices, closed) in enumerate(curves):
        indices = [int(i) for i in indices]
        n = len(indices)
        for j, i in enumerate(indices):
            if not 0 <= i < num_keypoints:
                raise ValueError(
                    f'curve #{c} has index {i}, out of range for '
                    f'{num_keypoints} keypoints'
                )
            if i in corner_set:
                continue
            if owner.setdefault(i, c) != c:
                raise ValueError(
                    f'keypoint {i} is on curves #{owner[i]} and #{c}; a '
                    'point on two curves must be a corner'
                )
            if closed or j > 0:
                prev_index[i] = indices[(j - 1) % n]
            if closed or j < n - 1:
                next_index[i] = indices[(j + 1) % n]
    return torch.tensor([prev_index, next_index], dtype=torch.long)


# A typed signature with optional tensors: the form, not shared logic.
def curve_differences(
    kpts: Tensor,
    neighbours: Tensor,
    visible: Optional[Tensor] = None,
    scale: Optional[Tensor] = None,
) -> Tensor:
    """Un-normalised curve tangents: differences of usable neighbours.

    .. math::
        d_i = x_{n(i)} - x_{p(i)},\\quad x_{p(i)} := x_i \\text{ if } p(i)
        \\text{ is missing or invisible (likewise } n(i))

    Args:
        kpts: Keypoints (the ground truth), shape (B, K, 2).
        neighbours: Previous (row 0) and next (row 1) neighbour of each
            keypoint, shape (2, K), -1 for none (see
            :func:`curve_neighbours`).
        visible: Which keypoints may steer a tangent, shape (B, K), bool or
            a weight (> 0 means visible). All, when not given. The
            coordinates of an invisible point never reach another point's
            difference, so they may be anything, NaN or inf included.
        scale: Factors for x and y applied to the coordinates first, shape
            (2,); e.g. the input size, for pixels from coordinates
            normalised by it.

    Returns:
        Tensor: The central difference, a one-sided difference, or zero
        where no neighbour is usable, shape (B, K, 2) (a view of a
        coordinate-major tensor: ``unbind(-1)`` gives contiguous planes).

    Example:
        >>> kpts = torch.tensor([[[0., 0.], [1., 1.], [2., 0.]]])
        >>> neighbours = curve_neighbours(3, [([0, 1, 2], False)])
        >>> curve_differences(kpts, neighbours)[0].tolist()
        [[1.0, 1.0], [2.0, 0.0], [1.0, -1.0]]
    """
    if kpts.dim() != 3 or kpts.shape[-1] != 2:
        raise ValueError(
            f'kpts must have shape (B, K, 2), got {tuple(kpts.shape)}'
        )
    batch, num_keypoints = kpts.shape[:2]
    if neighbours.shape != (2, num_keypoints):
        raise ValueError(
            f'neighbours must have shape (2, {num_keypoints}) for '
            f'{num_keypoints} keypoints, got {tuple(neighbours.shape)}'
        )
    index = neighbours.reshape(-1)  # (2K,): previous ones, then next ones
    present = (index >= 0).view(2, num_keypoints)
    # A missing neighbour reads point 0, whose value is then never used.
    index = index.clamp_min(0)
    # Planar layout, the coordinate axis first: each step below is then a
    # contiguous row operation, several times faster on CPU than
    # broadcasting over a trailing axis of size 2. The visibility rides
    # along as a third plane, so one gather serves both.
    planes = kpts.permute(2, 0, 1)  # (2, B, K)
    if visible is not None:
        if visible.shape != (batch, num_keypoints):
            raise ValueError(
                f'visible must have shape {(batch, num_keypoints)}, got '
                f'{tuple(visible.shape)}'
            )
        planes = torch.cat([planes, visible[None].to(kpts.dtype)])
    else:
        planes = planes.contiguous()
    gathered = planes.view(-1, num_keypoints).index_select(1, index)
    gathered = gathered.view(-1, batch, 2, num_keypoints)  # (2|3, B, 2, K)
    unusable = ~present  # no neighbour, or (below) an invisible one
    if visible is not None:
        unusable = unusable | ~(gathered[2] > 0)  # (B, 2, K)
    # x[p] - x and x[n] - x, each zero where that neighbour is not usable:
    # their difference is the central difference, a one-sided difference,
    # or zero. Filled, not multiplied by a 0/1 mask: an unusable
    # neighbour's coordinates may be anything (NaN or inf at an unlabelled
    # point) and 0 * NaN would be NaN; the fill gives an exact 0 with a
    # zero gradient (in place on a fresh tensor: several times faster on
    # CPU than torch.where).
    steps = gathered[:2] - planes[:2].unsqueeze(2)
    steps = steps.masked_fill_(unusable, 0.0)
    diff = steps[:, :, 1] - steps[:, :, 0]  # (2, B, K)
    if scale is not None:
        diff = diff * scale.to(diff.dtype).view(2, 1, 1)
    return diff.permute(1, 2, 0)


# Its Args read as curve_differences's: it takes the same inputs.
def curve_tangents(
    kpts: Tensor,
    neighbours: Tensor,
    visible: Optional[Tensor] = None,
    scale: Optional[Tensor] = None,
    min_length: float = 1e-6,
) -> Tuple[Tensor, Tensor]:
    """Unit curve tangents at every keypoint (rules in the module doc).

    .. math::
        t_i = d_i / \\lVert d_i \\rVert \\text{ if } \\lVert d_i \\rVert
        > \\text{min\\_length, else no tangent}

    Args:
        kpts: Keypoints (the ground truth), shape (B, K, 2).
        neighbours: Previous (row 0) and next (row 1) neighbour of each
            keypoint, shape (2, K), -1 for none (see
            :func:`curve_neighbours`).
        visible: Which keypoints may steer a tangent, shape (B, K), bool or
            a weight (> 0 means visible). All, when not given.
        scale: Factors for x and y applied to the coordinates first, shape
            (2,); e.g. the input size, for tangents in pixels from
            coordinates normalised by it.
        min_length: Shortest difference, in the (scaled) units of ``kpts``,
            that still defines a tangent.

    Returns:
        tuple:
        - tangents (Tensor): Unit tangents, shape (B, K, 2); zeros where
          invalid.
        - valid (Tensor): Whether a point has a tangent, shape (B, K),
          bool.

    Example:
        >>> kpts = torch.tensor([[[0., 0.], [1., 1.], [2., 0.]]])
        >>> neighbours = curve_neighbours(3, [([0, 1, 2], False)])
        >>> t, valid = curve_tangents(kpts, neighbours)
        >>> t[0, 1].tolist(), valid.tolist()
        ([1.0, 0.0], [[True, True, True]])
    """
    diff = curve_differences(kpts, neighbours, visible, scale)
    d0, d1 = diff.unbind(-1)
    sq_len = torch.addcmul(d0 * d0, d1, d1)  # (B, K)
    min_sq = min_length * min_length
    valid = sq_len > min_sq
    # Invalid points are scaled by 0, never divided by a (near) zero length.
    inv_len = torch.where(valid, sq_len.clamp_min(min_sq).rsqrt(), 0.0)
    return diff * inv_len[..., None], valid
