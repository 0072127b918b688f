"""Anisotropic weight matrices and the quadratic form they define.

At a point with unit curve tangent ``t`` and normal ``n`` the weight is

    W = t t^T / a^2 + n n^T / b^2 = t t^T / a^2 + (I - t t^T) / b^2,

so an error of length ``a`` along the curve costs as much as one of length
``b`` across it. A point without a valid tangent (a corner, a point on no
curve, or one whose neighbours are all invisible) gets ``W = I``. ``a``,
``b`` and the residuals are read in the same unit (pixels in the loss).

The cost ``r^T W r = (t.r)^2 / a^2 + (n.r)^2 / b^2`` needs no ``W``. The
loss keeps ``W`` as its three distinct entries per point and forms the
gradient ``2 W r`` in the forward pass (:func:`symmetric_quadratic_form`).
"""

from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def _check_axes(a: float, b: float) -> None:
    if not (a > 0 and b > 0):
        raise ValueError(
            f'the semi-axes a and b must be positive, got a={a}, b={b}'
        )


def anisotropic_weight_matrices(
    tangents: Tensor, a: float, b: float, valid: Optional[Tensor] = None
) -> Tensor:
    """The paper's weight matrix at every point.

    .. math::
        W_i = \\frac{t_i t_i^\\top}{a^2}
        + \\frac{I - t_i t_i^\\top}{b^2}

    Args:
        tangents: Unit tangents, shape (B, K, 2).
        a: Semi-axis along the tangent.
        b: Semi-axis across the tangent.
        valid: Which points have a tangent, shape (B, K), bool; the others
            get ``W = I``. All, when not given.

    Returns:
        Tensor: Symmetric positive definite weights, shape (B, K, 2, 2).

    Example:
        >>> t = torch.tensor([[[0.0, 1.0]]])
        >>> anisotropic_weight_matrices(t, 2.0, 1.0)[0, 0].tolist()
        [[1.0, 0.0], [0.0, 0.25]]
    """
    _check_axes(a, b)
    outer = tangents[..., :, None] * tangents[..., None, :]  # (B, K, 2, 2)
    eye = torch.eye(2, dtype=tangents.dtype, device=tangents.device)
    weights = outer / a**2 + (eye - outer) / b**2
    if valid is not None:
        weights = torch.where(valid[..., None, None], weights, eye)
    return weights


def quadratic_form(residuals: Tensor, matrices: Tensor) -> Tensor:
    """``r^T W r`` at every point, for any weight matrices.

    .. math::
        q_i = r_i^\\top W_i r_i

    Args:
        residuals: Residuals ``x - z``, shape (B, K, 2).
        matrices: Weights, shape (B, K, 2, 2).

    Returns:
        Tensor: The costs, shape (B, K).

    Example:
        >>> r = torch.tensor([[[1.0, 2.0]]])
        >>> quadratic_form(r, torch.eye(2).expand(1, 1, 2, 2)).tolist()
        [[5.0]]
    """
    return torch.einsum('...i,...ij,...j->...', residuals, matrices, residuals)


def anisotropic_quadratic_form(
    residuals: Tensor,
    tangents: Tensor,
    a: float,
    b: float,
    valid: Optional[Tensor] = None,
) -> Tensor:
    """The paper's cost ``r^T W r`` from the projections on ``t`` and ``n``.

    .. math::
        q_i = \\frac{(t_i \\cdot r_i)^2}{a^2}
        + \\frac{(n_i \\cdot r_i)^2}{b^2}
        = \\frac{\\lVert r_i\\rVert^2}{b^2}
        + \\Big(\\frac{1}{a^2} - \\frac{1}{b^2}\\Big)(t_i \\cdot r_i)^2

    Args:
        residuals: Residuals ``x - z``, shape (B, K, 2), in the unit of
            ``a`` and ``b``.
        tangents: Unit tangents, shape (B, K, 2).
        a: Semi-axis along the tangent.
        b: Semi-axis across the tangent.
        valid: Which points have a tangent, shape (B, K), bool; the others
            cost ``|r|^2``. All, when not given.

    Returns:
        Tensor: The costs, shape (B, K), never negative.

    Example:
        >>> r = torch.tensor([[[3.0, 0.0], [0.0, 3.0]]])
        >>> t = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
        >>> anisotropic_quadratic_form(r, t, 3.0, 1.0).tolist()
        [[1.0, 9.0]]
    """
    _check_axes(a, b)
    r0, r1 = residuals.unbind(-1)
    t0, t1 = tangents.unbind(-1)
    along = t0 * r0 + t1 * r1
    across = t0 * r1 - t1 * r0
    cost = along.square() / a**2 + across.square() / b**2
    if valid is not None:
        cost = torch.where(valid, cost, r0.square() + r1.square())
    return cost


def anisotropic_weight_entries(
    directions: Tensor,
    a: float,
    b: float,
    scale: Union[Tensor, float, None] = None,
    min_length: float = 1e-6,
) -> Tuple[Tensor, Tensor, Tensor]:
    """The three distinct entries of every weight matrix, from tangent
    directions of any length.

    The compact form of :func:`anisotropic_weight_matrices` that
    :func:`symmetric_quadratic_form` takes. A direction no longer than
    ``min_length`` (such as the zero tangent :func:`curve_tangents` returns
    where it has none) gives ``W = I``.

    .. math::
        W_i = s_i \\Big(\\frac{I}{b^2} + \\Big(\\frac{1}{a^2}
        - \\frac{1}{b^2}\\Big) \\frac{d_i d_i^\\top}{\\lVert d_i
        \\rVert^2}\\Big)

    Args:
        directions: Tangent directions ``d``, unit or not, shape (B, K, 2).
        a: Semi-axis along the tangent.
        b: Semi-axis across the tangent.
        scale: Factor ``s`` on each weight, a number or shape (B, K);
            e.g. a target weight. 1 when not given.
        min_length: Shortest direction that still counts as a tangent.

    Returns:
        tuple: ``(w00, w01, w11)``, each of shape (B, K).

    Example:
        >>> d = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])
        >>> w00, w01, w11 = anisotropic_weight_entries(d, 2.0, 1.0)
        >>> [round(w[0, 0].item(), 4) for w in (w00, w01, w11)]
        [0.73, -0.36, 0.52]
        >>> [w[0, 1].item() for w in (w00, w01, w11)] == [1.0, 0.0, 1.0]
        True
    """
    _check_axes(a, b)
    d0, d1 = directions.unbind(-1)  # (B, K) each
    sq_len = torch.addcmul(d0 * d0, d1, d1)
    min_sq = min_length * min_length
    valid = sq_len > min_sq
    if not isinstance(scale, Tensor):
        scale = torch.full_like(sq_len, 1.0 if scale is None else scale)
    base = torch.where(valid, scale * (1.0 / b**2), scale)
    # s (1/a^2 - 1/b^2) / |d|^2 where valid, else s (..) / inf = 0: never
    # a division by 0, in values or gradients.
    sq_len = torch.where(valid, sq_len, torch.inf)
    coef = scale * (1.0 / a**2 - 1.0 / b**2) / sq_len
    coef_d0 = coef * d0
    w00 = torch.addcmul(base, coef_d0, d0)
    w11 = torch.addcmul(base, coef * d1, d1)
    w01 = coef_d0 * d1
    return w00, w01, w11


class _SymmetricQuadraticForm(torch.autograd.Function):
    """``r^T W r`` whose gradient ``2 W r`` is formed in the forward pass;
    the weights are constants."""

    @staticmethod
    def forward(ctx, residuals, w00, w01, w11, ignore):
        r0, r1 = residuals[..., 0], residuals[..., 1]
        wr0 = torch.addcmul(w00 * r0, w01, r1)  # (W r)_0, shape (B, K)
        wr1 = torch.addcmul(w11 * r1, w01, r0)
        if ignore is not None:
            # Filled, not multiplied by 0: the residuals or weights of an
            # ignored point may be NaN or inf. The fills also zero its
            # gradient 2 W r.
            wr0.masked_fill_(ignore, 0.0)
            wr1.masked_fill_(ignore, 0.0)
        ctx.save_for_backward(wr0, wr1)
        cost = torch.addcmul(r0 * wr0, r1, wr1)
        if ignore is not None:
            cost.masked_fill_(ignore, 0.0)  # r * 0 is NaN for r = NaN
        return cost

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        wr0, wr1 = ctx.saved_tensors
        grad2 = grad * 2
        out = wr0.new_empty(wr0.shape + (2,))
        torch.mul(grad2, wr0, out=out[..., 0])
        torch.mul(grad2, wr1, out=out[..., 1])
        return out, None, None, None, None


def symmetric_quadratic_form(
    residuals: Tensor,
    w00: Tensor,
    w01: Tensor,
    w11: Tensor,
    ignore: Optional[Tensor] = None,
) -> Tensor:
    """``r^T W r`` at every point, W given by its three distinct entries.

    Same values as :func:`quadratic_form`, faster on small per-point
    matrices: the gradient ``2 W r`` is formed in the forward pass. When
    an entry requires grad, plain differentiable operations are used
    instead, so every input gets its gradient.

    .. math::
        q_i = w_{00} r_{i,0}^2 + 2 w_{01} r_{i,0} r_{i,1}
        + w_{11} r_{i,1}^2

    Args:
        residuals: Residuals ``x - z``, shape (B, K, 2).
        w00: Entry (0, 0) of each weight, shape (B, K).
        w01: Entries (0, 1) = (1, 0), shape (B, K).
        w11: Entry (1, 1), shape (B, K).
        ignore: Points that cost exactly 0, with a zero gradient into every
            input, whatever their residuals and weights (NaN or inf
            included), shape (B, K), bool. None, when not given.

    Returns:
        Tensor: The costs, shape (B, K).

    Example:
        >>> r = torch.tensor([[[1.0, 2.0], [float('nan'), 0.0]]])
        >>> one, zero = torch.ones(1, 2), torch.zeros(1, 2)
        >>> symmetric_quadratic_form(r, one, zero, one).tolist()[0][0]
        5.0
        >>> ignore = torch.tensor([[False, True]])
        >>> symmetric_quadratic_form(r, one, zero, one, ignore).tolist()
        [[5.0, 0.0]]
    """
    if torch.is_grad_enabled() and (
        w00.requires_grad or w01.requires_grad or w11.requires_grad
    ):
        if ignore is not None:
            # Every input of an ignored point is replaced, so no NaN there
            # reaches a value or, through a product, a gradient.
            keep = ~ignore
            residuals = torch.where(keep[..., None], residuals, 0.0)
            w00, w01, w11 = (
                torch.where(keep, w, 0.0) for w in (w00, w01, w11)
            )
        r0, r1 = residuals.unbind(-1)
        return w00 * r0.square() + 2 * w01 * r0 * r1 + w11 * r1.square()
    return _SymmetricQuadraticForm.apply(residuals, w00, w01, w11, ignore)
