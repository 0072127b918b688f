"""Ordinary and weighted least squares of landmarks on frozen features.

The maths of ``tools/misc/mechanism_check.py``: a linear read-out
``y_nk ≈ B_k x̃_n`` (``x̃ = [x; 1]``) of each landmark ``k`` from a face's
features ``x_n``, fitted to noisy labels either per coordinate
(:func:`ols_fit`) or by generalised least squares with each label's
inverse noise covariance (:func:`gls_fit`), the cost the anisotropic loss
approximates. The noise model is estimated from labels whose clean values
are known: each point's residual covariance in the local frame of the clean
curve (:func:`local_frames`, :func:`noise_covariances`), turned back into
every face's frame (:func:`precision_weights`).

GLS differs from OLS only through ``W_nk`` varying with the face ``n``:
with one ``W_k`` for every face, both have the same regressors for x and
y, so GLS gives OLS's coefficients (seemingly unrelated regressions).

Numpy and the curve tangents of :mod:`mmaniso.ops.tangents`; nothing here
imports mmengine or mmpose.
"""

from typing import Optional, Tuple, Union

import numpy as np
import torch

from mmaniso.ops.tangents import curve_tangents

#: Ridge, relative to the mean diagonal of the features' (weighted) Gram
#: matrix, added to the features' diagonal (never to the intercept). It
#: only keeps dead or collinear features from making the systems singular.
DEFAULT_RIDGE = 1e-6
#: Smallest noise std kept in a covariance, as a fraction of the scale, so
#: that a point the noise never moves does not get an infinite weight.
DEFAULT_MIN_STD = 1e-3


def _check_points(name: str, value: np.ndarray, n: Optional[int] = None):
    value = np.asarray(value, dtype=np.float64)
    if value.ndim != 3 or value.shape[-1] != 2:
        raise ValueError(
            f'{name} must have shape (N, K, 2), got {value.shape}'
        )
    if n is not None and len(value) != n:
        raise ValueError(
            f'{name} has {len(value)} faces but the features have {n}'
        )
    return value


def _check_features(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f'features must have shape (N, F), got {x.shape}')
    return x


def with_intercept(x: np.ndarray) -> np.ndarray:
    """Appends the constant feature: ``x̃ = [x; 1]``.

    Args:
        x: Features, shape (N, F).

    Returns:
        The design matrix, shape (N, F + 1).

    Example:
        >>> with_intercept(np.array([[2.0], [3.0]])).tolist()
        [[2.0, 1.0], [3.0, 1.0]]
    """
    x = _check_features(x)
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def _add_ridge(system: np.ndarray, features: np.ndarray, ridge: float):
    """Adds ``ρ`` times the mean of the features' diagonal entries to
    them, in place; ``features`` marks them (the intercept is not
    penalised)."""
    if not ridge >= 0:
        raise ValueError(f'ridge must be non-negative, got {ridge!r}')
    diag = np.diag(system)
    system[np.diag_indices_from(system)] += np.where(
        features, ridge * diag[features].mean(), 0.0
    )


def ols_fit(
    x: np.ndarray, y: np.ndarray, ridge: float = DEFAULT_RIDGE
) -> np.ndarray:
    """Least squares of every coordinate of every landmark on ``x̃``.

    .. math:: \\hat B = \\arg\\min_B \\sum_{n,k}
        \\lVert y_{nk} - B_k \\tilde x_n \\rVert^2 + \\lambda
        \\lVert B_{k,:F} \\rVert^2,\\quad
        \\lambda = \\rho\\,\\overline{\\operatorname{diag}}(X^\\top X)

    Args:
        x: Features, shape (N, F).
        y: Targets, shape (N, K, 2).
        ridge: ρ, the ridge relative to the features' mean squared value.

    Returns:
        The coefficients ``B``, shape (K, 2, F + 1); the last column is the
        intercept.

    Example:
        >>> x = np.arange(4.0)[:, None]
        >>> y = np.stack([2 * x + 1, 3 - x], -1)  # (4, 1, 2)
        >>> ols_fit(x, y, ridge=0).round(6).tolist()
        [[[2.0, 1.0], [-1.0, 3.0]]]
    """
    xt = with_intercept(x)  # (N, F + 1)
    y = _check_points('y', y, len(xt))
    gram = xt.T @ xt  # (F + 1, F + 1)
    _add_ridge(gram, np.arange(len(gram)) < len(gram) - 1, ridge)
    rhs = xt.T @ y.reshape(len(y), -1)  # (F + 1, 2K)
    coef = np.linalg.solve(gram, rhs)  # (F + 1, 2K)
    return coef.T.reshape(y.shape[1], 2, xt.shape[1])


def gls_fit(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    ridge: float = DEFAULT_RIDGE,
) -> np.ndarray:
    """Generalised least squares: each residual weighted by its ``W_nk``.

    .. math:: \\hat B_k = \\arg\\min_{B} \\sum_n r_{nk}^\\top W_{nk}
        r_{nk},\\quad r_{nk} = y_{nk} - B \\tilde x_n

    For each point, with ``β = vec(B_k)`` (row-major: the x row, then the
    y row), the normal equations are

    .. math:: \\Big(\\sum_n W_{nk} \\otimes \\tilde x_n \\tilde x_n^\\top
        + \\lambda P\\Big) \\beta = \\sum_n (W_{nk} y_{nk}) \\otimes
        \\tilde x_n

    solved as a 2x2 block system of ``(F + 1)``-square blocks
    ``Σ_n W_nk[a, b] x̃ x̃ᵀ``. ``P`` puts the ridge on the features of both
    rows, ``λ = ρ`` times the mean of the features' diagonal of the system,
    so that ``W = I`` gives :func:`ols_fit` exactly.

    Args:
        x: Features, shape (N, F).
        y: Targets, shape (N, K, 2).
        weights: Symmetric positive semi-definite weights (inverse noise
            covariances), shape (N, K, 2, 2).
        ridge: ρ, as in :func:`ols_fit`.

    Returns:
        The coefficients, shape (K, 2, F + 1).

    Example:
        >>> x = np.arange(4.0)[:, None]
        >>> y = np.stack([2 * x + 1, 3 - x], -1)  # (4, 1, 2)
        >>> w = np.broadcast_to(np.diag([1.0, 9.0]), (4, 1, 2, 2))
        >>> gls_fit(x, y, w, ridge=0).round(6).tolist()
        [[[2.0, 1.0], [-1.0, 3.0]]]
    """
    xt = with_intercept(x)  # (N, F + 1)
    n, p = xt.shape
    y = _check_points('y', y, n)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != y.shape + (2,):
        raise ValueError(
            f'weights must have shape {y.shape + (2,)} (N, K, 2, 2), got '
            f'{weights.shape}'
        )
    num_k = y.shape[1]
    # Σ_n W_nk[a, b] x̃ x̃ᵀ for ab = xx, xy, yy and every k.
    pairs = weights[..., [0, 0, 1], [0, 1, 1]].reshape(n, num_k * 3)
    grams = weighted_grams(xt, pairs).reshape(num_k, 3, p, p)
    wy = np.einsum('nkab,nkb->nka', weights, y)  # (N, K, 2)
    rhs = np.einsum('nf,nka->kaf', xt, wy).reshape(num_k, 2 * p)
    features = np.tile(np.arange(p) < p - 1, 2)  # (2 (F + 1),)
    systems = np.empty((num_k, 2 * p, 2 * p))
    for k in range(num_k):
        xx, xy, yy = grams[k]
        systems[k] = np.block([[xx, xy], [xy, yy]])
        _add_ridge(systems[k], features, ridge)
    coef = np.linalg.solve(systems, rhs[..., None])  # (K, 2 (F + 1), 1)
    return coef.reshape(num_k, 2, p)


def weighted_grams(
    x: np.ndarray, weights: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """Gram matrices of the rows of ``x``, one per column of weights.

    .. math:: G_m = \\sum_n w_{nm}\\, x_n x_n^\\top

    One matrix product over the upper triangles of the outer products,
    ``chunk`` rows at a time: about twice as fast as a product per ``m``.

    Args:
        x: Rows, shape (N, P).
        weights: Weights, shape (N, M).
        chunk: Rows per step (memory ``chunk · P² / 2`` floats).

    Returns:
        The symmetric matrices, shape (M, P, P).

    Example:
        >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
        >>> weighted_grams(x, np.array([[1.0], [0.0]]))[0].tolist()
        [[1.0, 2.0], [2.0, 4.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n, p = x.shape
    if weights.ndim != 2 or len(weights) != n:
        raise ValueError(
            f'weights must have shape ({n}, M), got {weights.shape}'
        )
    rows, cols = np.triu_indices(p)
    upper = np.zeros((weights.shape[1], len(rows)))
    for start in range(0, n, chunk):
        part = x[start : start + chunk]
        outer = part[:, rows] * part[:, cols]  # (chunk, P (P + 1) / 2)
        upper += weights[start : start + chunk].T @ outer
    grams = np.zeros((weights.shape[1], p, p))
    grams[:, rows, cols] = upper
    grams[:, cols, rows] = upper
    return grams


def linear_predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``B_k x̃_n`` for every face and point.

    Args:
        coef: Coefficients, shape (K, 2, F + 1).
        x: Features, shape (N, F).

    Returns:
        The predictions, shape (N, K, 2).
    """
    return np.einsum('kcf,nf->nkc', coef, with_intercept(x))


def local_frames(
    clean: np.ndarray,
    neighbours: Union[np.ndarray, torch.Tensor],
    visible: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Each point's frame: the clean curve's tangent and normal, or x/y.

    A point is a curve point when it has a tangent
    (:func:`~mmaniso.ops.tangents.curve_tangents` of the clean landmarks)
    on every face; its frame's rows are the unit tangent ``t`` and the
    normal ``n = (-t_y, t_x)``. Corners, isolated points and points that
    lose their tangent on some face keep the image axes.

    Args:
        clean: Clean landmarks, shape (N, K, 2).
        neighbours: Previous and next curve neighbour of each point, -1 for
            none, shape (2, K) (``PointTypes.neighbours()``).
        visible: Which points may steer a tangent, shape (N, K); all when
            not given.

    Returns:
        tuple:
        - frames: Rotations taking image offsets to (along, across),
          shape (N, K, 2, 2).
        - curve: Whether each point is a curve point, shape (K,), bool.

    Example:
        >>> clean = np.array([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
        >>> nb = np.array([[-1, 0, 1], [1, 2, -1]])
        >>> frames, curve = local_frames(clean, nb)
        >>> (frames[0, 1] @ [1.0, 1.0]).round(6).tolist(), curve.tolist()
        ([1.414214, 0.0], [True, True, True])
    """
    clean = _check_points('clean', clean)
    vis = None if visible is None else torch.as_tensor(np.asarray(visible))
    tangents, valid = curve_tangents(
        torch.from_numpy(clean),
        torch.as_tensor(np.asarray(neighbours), dtype=torch.long),
        vis,
    )
    curve = valid.numpy().all(0)  # (K,)
    t = tangents.numpy()  # (N, K, 2)
    normal = np.stack([-t[..., 1], t[..., 0]], -1)
    frames = np.stack([t, normal], -2)  # (N, K, 2, 2), rows t and n
    frames[:, ~curve] = np.eye(2)
    return frames, curve


def local_residuals(
    noisy: np.ndarray,
    clean: np.ndarray,
    frames: np.ndarray,
    scale: np.ndarray,
) -> np.ndarray:
    """Label offsets in each point's frame, in units of the face's scale.

    .. math:: u_{nk} = R_{nk} (y_{nk} - g_{nk}) / s_n

    Args:
        noisy: Noisy labels, shape (N, K, 2).
        clean: Clean landmarks, shape (N, K, 2).
        frames: ``R``, from :func:`local_frames`, shape (N, K, 2, 2).
        scale: ``s``, e.g. the inter-ocular distance, shape (N,).

    Returns:
        ``u`` (along, across on curves; x, y elsewhere), shape (N, K, 2).
    """
    noisy = _check_points('noisy', noisy)
    clean = _check_points('clean', clean, len(noisy))
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    if scale.shape != (len(noisy),) or not (scale > 0).all():
        raise ValueError(
            f'scale must be positive with shape ({len(noisy)},), got '
            f'shape {scale.shape}'
        )
    offsets = np.einsum('nkab,nkb->nka', frames, noisy - clean)
    return offsets / scale[:, None, None]


def noise_covariances(
    residuals: np.ndarray, min_std: float = DEFAULT_MIN_STD
) -> np.ndarray:
    """Each point's covariance of its local residuals about their mean.

    .. math:: \\Sigma_k = \\frac{1}{N} \\sum_n (u_{nk} - \\bar u_k)
        (u_{nk} - \\bar u_k)^\\top,\\ \\text{eigenvalues} \\ge
        \\text{min\\_std}^2

    The mean (the label bias) is taken out: it is a systematic offset, not
    a spread a weight can average away.

    Args:
        residuals: ``u`` from :func:`local_residuals`, shape (N, K, 2).
        min_std: Floor on each principal std, in units of the scale.

    Returns:
        The covariances, shape (K, 2, 2).

    Example:
        >>> u = np.array([[[1.0, 0.0]], [[-1.0, 0.0]]])
        >>> noise_covariances(u, min_std=0.1).round(6).tolist()
        [[[1.0, 0.0], [0.0, 0.01]]]
    """
    u = _check_points('residuals', residuals)
    centred = u - u.mean(0)
    cov = np.einsum('nka,nkb->kab', centred, centred) / len(u)  # (K, 2, 2)
    val, vec = np.linalg.eigh(cov)
    val = np.maximum(val, min_std**2)
    return np.einsum('kab,kb,kcb->kac', vec, val, vec)


def precision_weights(
    covariances: np.ndarray, frames: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """The inverse noise covariance of every label, in image axes.

    .. math:: W_{nk} = R_{nk}^\\top \\Sigma_k^{-1} R_{nk} / s_n^2

    Args:
        covariances: ``Σ`` from :func:`noise_covariances`, shape (K, 2, 2).
        frames: ``R``, from :func:`local_frames`, shape (N, K, 2, 2).
        scale: ``s``, shape (N,).

    Returns:
        ``W``, shape (N, K, 2, 2).
    """
    inv = np.linalg.inv(covariances)  # (K, 2, 2)
    w = np.einsum('nkba,kbc,nkcd->nkad', frames, inv, frames)
    return w / np.asarray(scale, dtype=np.float64)[:, None, None, None] ** 2
