"""Measures of predicted landmark uncertainty (numpy only).

A prediction's ellipse per landmark is ``(a, b, angle)``: semi-axes along
and across (image pixels) and the angle of the along axis. An error ``r``
lies inside the ``k``-scale ellipse when its normalised radius

.. math::
    \\rho = \\sqrt{(t \\cdot r / a)^2 + (n \\cdot r / b)^2} \\le k,
    \\quad t = (\\cos\\theta, \\sin\\theta)

Calibration compares the share of errors inside the 1-, 2- and 3-scale
ellipses with what the training density gives
(:func:`mmaniso.ops.likelihood.coverage_probability`); failure detection
asks whether the per-image mean predicted scale ranks the failed faces
first (AUROC) and follows the per-image NME (Spearman).
"""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from mmaniso.ops.likelihood import coverage_probability, coverage_radius


def normalised_radius(errors: np.ndarray, ellipses: np.ndarray) -> np.ndarray:
    """The error of each landmark in units of its ellipse.

    Args:
        errors: Prediction minus ground truth, shape (N, K, 2).
        ellipses: ``(a, b, angle)`` per landmark, shape (N, K, 3), in the
            unit of ``errors``.

    Returns:
        ndarray: ``rho``, shape (N, K).
    """
    errors = np.asarray(errors, np.float64)
    ellipses = np.asarray(ellipses, np.float64)
    if errors.shape[:-1] != ellipses.shape[:-1] or ellipses.shape[-1] != 3:
        raise ValueError(
            f'errors (N, K, 2) and ellipses (N, K, 3) must match, got '
            f'{errors.shape} and {ellipses.shape}'
        )
    a, b, angle = np.moveaxis(ellipses, -1, 0)
    if not (np.all(a > 0) and np.all(b > 0)):
        raise ValueError('every ellipse needs positive semi-axes')
    c, s = np.cos(angle), np.sin(angle)
    along = c * errors[..., 0] + s * errors[..., 1]
    across = c * errors[..., 1] - s * errors[..., 0]
    return np.sqrt((along / a) ** 2 + (across / b) ** 2)


def ellipse_coverage(
    rho: np.ndarray,
    ks: Sequence[float] = (1.0, 2.0, 3.0),
    visible: Optional[np.ndarray] = None,
) -> Dict[float, float]:
    """Share of (visible) landmarks inside the ``k``-scale ellipses.

    Args:
        rho: Normalised radii, shape (N, K) (:func:`normalised_radius`).
        ks: The ``k`` values.
        visible: Which landmarks count, shape (N, K), bool; all if None.

    Returns:
        dict: ``{k: share}``.
    """
    rho = np.asarray(rho, np.float64)
    keep = np.ones(rho.shape, bool) if visible is None else visible > 0
    values = rho[keep]
    if values.size == 0:
        raise ValueError('no visible landmark to measure coverage on')
    return {float(k): float(np.mean(values <= k)) for k in ks}


def expected_coverage(
    distance: str, ks: Sequence[float] = (1.0, 2.0, 3.0)
) -> Dict[float, float]:
    """What the training density puts inside the ``k``-scale ellipses:
    ``1 - exp(-k^2/2)`` (``'squared'``, Gaussian) or ``1 - (1 + k) e^-k``
    (``'mahalanobis'``, Laplace-like)."""
    return {float(k): coverage_probability(float(k), distance) for k in ks}


def reliability_curve(
    rho: np.ndarray,
    distance: str,
    levels: Sequence[float] = tuple(np.linspace(0.05, 0.95, 19)),
    visible: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Expected against observed coverage over probability levels.

    For each level ``p`` the radius ``k_p`` that the density fills to
    ``p`` is found, and the share of errors within ``k_p`` observed; a
    calibrated model lies on the diagonal.

    Returns:
        tuple: ``(levels (L,), observed (L,))``.
    """
    rho = np.asarray(rho, np.float64)
    keep = np.ones(rho.shape, bool) if visible is None else visible > 0
    values = rho[keep]
    levels = np.asarray(levels, np.float64)
    radii = np.array([coverage_radius(float(p), distance) for p in levels])
    observed = np.array([np.mean(values <= k) for k in radii])
    return levels, observed


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their mean rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind='mergesort')
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = 0.5 * (start + end) + 1.0
        start = end + 1
    return ranks


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``positives``.

    The Mann-Whitney statistic: the chance that a random positive scores
    above a random negative, ties counting one half. NaN when either class
    is empty.

    Args:
        scores: Higher means more likely positive, shape (N,).
        positives: Shape (N,), bool.

    Returns:
        float: AUROC in [0, 1], or NaN.
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    positives = np.asarray(positives, bool).reshape(-1)
    if scores.shape != positives.shape:
        raise ValueError(
            f'scores and positives must have one value per image, got '
            f'{scores.shape} and {positives.shape}'
        )
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    ranks = _ranks(scores)
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties: mean ranks); NaN if either is
    constant."""
    rx, ry = _ranks(np.ravel(x)), _ranks(np.ravel(y))
    if rx.shape != ry.shape:
        raise ValueError(f'x and y differ in length: {rx.shape}, {ry.shape}')
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float('nan') if denom == 0 else float((rx * ry).sum() / denom)


def mean_scale(ellipses: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Per-image mean predicted scale ``sqrt(a b)`` over the landmarks,
    divided by the image's normalising distance (as the NME is).

    Args:
        ellipses: Shape (N, K, 3).
        norm: Normalising distances, shape (N,).

    Returns:
        ndarray: Shape (N,).
    """
    ellipses = np.asarray(ellipses, np.float64)
    geo = np.sqrt(ellipses[..., 0] * ellipses[..., 1])
    return geo.mean(-1) / np.asarray(norm, np.float64).reshape(-1)


def failure_detection(
    scale: np.ndarray,
    nme: np.ndarray,
    thresholds: Sequence[float] = (0.08, 0.10),
) -> Dict[str, float]:
    """How well a per-image scale flags failed faces.

    Args:
        scale: Per-image mean predicted scale (:func:`mean_scale`), (N,).
        nme: Per-image NME as a fraction, (N,).
        thresholds: A face fails when its NME exceeds the threshold.

    Returns:
        dict: ``AUROC@<100 t>`` per threshold (NaN when no face, or every
        face, fails) and ``Spearman`` between scale and NME.
    """
    nme = np.asarray(nme, np.float64).reshape(-1)
    out = {f'AUROC@{100 * t:g}': auroc(scale, nme > t) for t in thresholds}
    out['Spearman'] = spearman(scale, nme)
    return out
