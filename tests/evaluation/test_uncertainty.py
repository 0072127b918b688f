"""Uncertainty measures against slow, independent references."""

import math

import numpy as np
import pytest

from mmaniso.evaluation import FaceLandmarkMetric
from mmaniso.evaluation.uncertainty import (
    auroc,
    ellipse_coverage,
    expected_coverage,
    failure_detection,
    mean_scale,
    normalised_radius,
    reliability_curve,
    spearman,
)


def _covariance(a, b, angle):
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([a * a, b * b]) @ rot.T


def _draw(rng, ellipses, distance):
    """Errors from the density of each ellipse (the calibrated case)."""
    n, k = ellipses.shape[:2]
    if distance == 'squared':
        u = rng.standard_normal((n, k, 2))
    else:
        rho = rng.gamma(2.0, 1.0, (n, k))
        phi = rng.uniform(0, 2 * math.pi, (n, k))
        u = np.stack([rho * np.cos(phi), rho * np.sin(phi)], -1)
    errors = np.zeros((n, k, 2))
    for i in range(n):
        for j in range(k):
            a, b, angle = ellipses[i, j]
            c, s = math.cos(angle), math.sin(angle)
            t, nrm = np.array([c, s]), np.array([-s, c])
            errors[i, j] = u[i, j, 0] * a * t + u[i, j, 1] * b * nrm
    return errors


def _ellipses(rng, n, k):
    a = rng.uniform(1, 5, (n, k))
    b = rng.uniform(0.5, 3, (n, k))
    angle = rng.uniform(-math.pi, math.pi, (n, k))
    return np.stack([a, b, angle], -1)


def test_normalised_radius_matches_inverse_covariance_loop():
    rng = np.random.default_rng(0)
    ellipses = _ellipses(rng, 4, 6)
    errors = rng.standard_normal((4, 6, 2)) * 3
    got = normalised_radius(errors, ellipses)
    for i in range(4):
        for j in range(6):
            cov = _covariance(*ellipses[i, j])
            r = errors[i, j]
            want = math.sqrt(r @ np.linalg.inv(cov) @ r)
            assert got[i, j] == pytest.approx(want, rel=1e-10)
    with pytest.raises(ValueError, match='must match'):
        normalised_radius(errors, ellipses[:, :5])


def test_coverage_matches_counting_loop():
    rng = np.random.default_rng(1)
    rho = rng.uniform(0, 4, (5, 7))
    visible = rng.uniform(size=(5, 7)) > 0.3
    got = ellipse_coverage(rho, (1, 2, 3), visible)
    for k in (1, 2, 3):
        inside = total = 0
        for i in range(5):
            for j in range(7):
                if visible[i, j]:
                    total += 1
                    inside += rho[i, j] <= k
        assert got[k] == pytest.approx(inside / total)


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_calibrated_draws_hit_the_expected_coverage(distance):
    rng = np.random.default_rng(2)
    ellipses = _ellipses(rng, 400, 50)
    errors = _draw(rng, ellipses, distance)
    rho = normalised_radius(errors, ellipses)
    got = ellipse_coverage(rho)
    want = expected_coverage(distance)
    for k in (1.0, 2.0, 3.0):
        assert got[k] == pytest.approx(want[k], abs=0.01)
    levels, observed = reliability_curve(rho, distance)
    assert np.abs(observed - levels).max() < 0.01
    # Over-confident ellipses (errors twice as large): below the diagonal.
    _, observed = reliability_curve(rho * 2, distance)
    assert np.all(observed < levels)


def slow_auroc(scores, positives):
    pos = [s for s, p in zip(scores, positives) if p]
    neg = [s for s, p in zip(scores, positives) if not p]
    wins = sum(
        1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg
    )
    return wins / (len(pos) * len(neg))


def test_auroc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    positives = rng.uniform(size=60) > 0.6
    assert auroc(scores, positives) == pytest.approx(
        slow_auroc(scores, positives)
    )
    assert math.isnan(auroc(scores, np.zeros(60, bool)))
    assert auroc([1, 2, 3], [False, False, True]) == 1.0


def slow_spearman(x, y):
    def ranks(v):
        return [
            sum(w < u for w in v) + (sum(w == u for w in v) + 1) / 2
            for u in v
        ]

    return float(np.corrcoef(ranks(list(x)), ranks(list(y)))[0, 1])


def test_spearman_matches_slow_ranks_with_ties():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 8, 50).astype(float)
    y = x + rng.integers(0, 5, 50)
    assert spearman(x, y) == pytest.approx(slow_spearman(x, y))
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_failure_detection_and_mean_scale():
    ellipses = np.ones((4, 3, 3))
    ellipses[..., 0] = [[4], [1], [9], [1]]  # a; b = 1: sqrt(ab) = 2,1,3,1
    norm = np.array([1.0, 1.0, 1.0, 2.0])
    scale = mean_scale(ellipses, norm)
    assert scale.tolist() == pytest.approx([2.0, 1.0, 3.0, 0.5])
    nme = np.array([0.09, 0.03, 0.12, 0.02])
    out = failure_detection(scale, nme)
    assert out['AUROC@8'] == 1.0 and out['AUROC@10'] == 1.0
    assert out['Spearman'] == pytest.approx(1.0)


def test_metric_reports_uncertainty_from_predicted_ellipses():
    rng = np.random.default_rng(5)
    n, k = 40, 4
    gt = rng.uniform(20, 80, (n, k, 2))
    ellipses = _ellipses(rng, n, k)
    pred = gt + _draw(rng, ellipses, 'squared')
    metric = FaceLandmarkMetric(norm_indices=(0, 1), save_outputs=False)
    metric.dataset_meta = dict(dataset_name='custom')
    metric.process(
        [],
        [
            dict(
                id=i,
                img_path=f'{i}.png',
                pred_instances=dict(
                    keypoints=pred[i : i + 1],
                    keypoint_ellipses=ellipses[i : i + 1],
                ),
                gt_instances=dict(keypoints=gt[i : i + 1]),
            )
            for i in range(n)
        ],
    )
    res = metric.compute_metrics(metric.results)
    rho = normalised_radius(pred - gt, ellipses)
    assert res['Cover@1'] == pytest.approx(np.mean(rho <= 1))
    assert res['Cover@3'] == pytest.approx(np.mean(rho <= 3))
    assert 'AUROC@8' in res and 'Spearman_scale' in res
