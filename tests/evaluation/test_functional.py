"""NME, CED, AUC and FR against hand-computed values and a slow reference."""

import numpy as np
import pytest

from mmaniso.evaluation.functional import (
    auc,
    box_distances,
    ced_curve,
    curve_error_components,
    failure_rate,
    keypoint_distances,
    masked_per_image_nme,
    norm_indices_for,
    per_image_nme,
    summarise,
)

# Four images of three points; points 0 and 1 are 10 px apart (the
# normalising pair), and every point of image n is moved by the same vector
# of length 10 * NMES[n], so image n's NME is NMES[n] exactly.
NMES = np.array([0.02, 0.05, 0.09, 0.12])


def hand_example():
    gt = np.array([[[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]]] * 4)
    gt += np.arange(4)[:, None, None] * 7.0  # different places per image
    angles = np.array([0.0, 0.5, 1.0, 2.0])
    shift = 10 * NMES[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
    return gt + shift[:, None, :], gt


def slow_auc(nme, t, step=1e-6):
    """Trapezoid rule on a fine grid, one image at a time."""
    grid = np.linspace(0, t, int(round(t / step)) + 1)
    ced = np.zeros_like(grid)
    for e in nme:
        ced += grid >= e
    ced /= len(nme)
    return float(np.sum((ced[1:] + ced[:-1]) / 2 * np.diff(grid)) / t)


def test_hand_computed_values():
    pred, gt = hand_example()
    d = keypoint_distances(gt, (0, 1))
    np.testing.assert_allclose(d, 10.0)
    nme = per_image_nme(pred, gt, d)
    np.testing.assert_allclose(nme, NMES, atol=1e-12)

    out = summarise(nme, (0.08, 0.10))
    assert out['NME'] == pytest.approx(7.0)  # (2 + 5 + 9 + 12) / 4
    assert out['FR@0.1'] == 25.0  # only 0.12 > 0.10
    assert out['FR@0.08'] == 50.0  # 0.09 and 0.12
    # AUC@t = mean(max(t - e, 0)) / t: (0.08 + 0.05 + 0.01 + 0) / 4 / 0.1
    # and (0.06 + 0.03 + 0 + 0) / 4 / 0.08. Simpson's rule on a step
    # function is off by O(step).
    assert out['AUC@0.1'] == pytest.approx(0.35, abs=5e-4)
    assert out['AUC@0.08'] == pytest.approx(0.28125, abs=5e-4)
    assert list(out) == ['NME', 'FR@0.08', 'AUC@0.08', 'FR@0.1', 'AUC@0.1']


def test_auc_matches_slow_trapezoid_reference():
    rng = np.random.default_rng(0)
    nme = np.abs(rng.normal(0.045, 0.03, 300))
    for t in (0.05, 0.08, 0.1):
        assert auc(nme, t) == pytest.approx(slow_auc(nme, t), abs=2e-4)
    assert auc(NMES, 0.1) == pytest.approx(slow_auc(NMES, 0.1), abs=5e-4)


def test_ced_grid_ends_at_threshold():
    grid, ced = ced_curve(NMES, 0.05)
    assert len(grid) == 501
    assert grid[-1] == 0.05  # np.arange would end at 0.0501
    assert ced[0] == 0 and ced[-1] == 0.5
    # CED counts errors at or below each grid point.
    grid, ced = ced_curve(np.array([0.05]), 0.1, step=0.05)
    np.testing.assert_array_equal(ced, [0, 1, 1])


def test_failure_rate_is_strict():
    assert failure_rate(np.array([0.1, 0.1000001]), 0.1) == 0.5


def test_inter_pupil_uses_eye_centres():
    gt = np.zeros((1, 68, 2))
    # Eye corners 36/39 and 42/45 on the line y = 1, centres (2, 1), (12, 1).
    gt[0, 36:42] = [[0, 1], [1, 0], [3, 0], [4, 1], [3, 2], [1, 2]]
    gt[0, 42:48] = gt[0, 36:42] + [10, 0]
    # Moving the outer corner 45 by 6 moves the eye centre by 6 / 6.
    gt[0, 45] += [6, 0]
    pupil = norm_indices_for('inter_pupil', '300w')
    ocular = norm_indices_for('inter_ocular', '300w')
    np.testing.assert_allclose(keypoint_distances(gt, pupil), [11.0])
    np.testing.assert_allclose(keypoint_distances(gt, ocular), [20.0])


def test_lookup_tables():
    assert norm_indices_for('inter_ocular', 'wflw') == (60, 72)
    assert norm_indices_for('inter_ocular', 'cofw') == (8, 9)
    assert norm_indices_for('inter_pupil', 'wflw') == (96, 97)
    assert norm_indices_for('inter_pupil', 'cofw') == (16, 17)
    assert norm_indices_for(
        'inter_ocular', 'coco_wholebody_face'
    ) == norm_indices_for('inter_ocular', '300w')
    assert norm_indices_for('bbox', 'aflw') is None


def test_box_distances():
    boxes = np.array([[0.0, 0.0, 4.0, 9.0], [1.0, 1.0, 3.0, 3.0]])
    np.testing.assert_allclose(box_distances(boxes), [6.0, 2.0])


def test_errors():
    pred, gt = hand_example()
    with pytest.raises(ValueError, match="norm must be one of .* 'iod'"):
        norm_indices_for('iod', 'wflw')
    with pytest.raises(ValueError, match='unknown_set.*give norm_indices'):
        norm_indices_for('inter_ocular', 'unknown_set')
    with pytest.raises(ValueError, match="use norm='bbox'"):
        norm_indices_for('inter_ocular', 'aflw')
    with pytest.raises(ValueError, match=r'out of range for 3 keypoints'):
        keypoint_distances(gt, (60, 72))
    d = keypoint_distances(gt, (0, 1))
    d[2] = 0.0
    with pytest.raises(ValueError, match=r"image 'c': normalisation distance"):
        per_image_nme(pred, gt, d, ids=['a', 'b', 'c', 'd'])
    gt2 = gt.copy()
    gt2[1, 0] = gt2[1, 1]  # the normalising points coincide
    with pytest.raises(ValueError, match='image #1: normalisation distance'):
        per_image_nme(pred, gt2, keypoint_distances(gt2, (0, 1)))
    bad = pred.copy()
    bad[3, 2, 0] = np.nan
    with pytest.raises(ValueError, match='image #3: the prediction has non'):
        per_image_nme(bad, gt, np.full(4, 10.0))
    with pytest.raises(ValueError, match='must both have shape'):
        per_image_nme(pred[:, :2], gt, np.full(4, 10.0))
    with pytest.raises(ValueError, match='empty set'):
        auc(np.array([]), 0.1)
    with pytest.raises(ValueError, match='threshold must be positive'):
        auc(NMES, 0.0)


def test_curve_error_components_by_hand():
    # An open curve 0-1-2 along the x axis bending up at 2, and point 3 on
    # no curve. Tangents: 0 and 2 one-sided, 1 central.
    gt = np.array([[[0.0, 0.0], [2.0, 0.0], [4.0, 2.0], [9.0, 9.0]]])
    neighbours = np.array([[-1, 0, 1, -1], [1, 2, -1, -1]])
    r = np.array([[[3.0, 4.0], [1.0, -2.0], [2.0, 0.0], [5.0, 5.0]]])
    along, across, valid = curve_error_components(gt + r, gt, neighbours)
    s = 1 / np.sqrt(2)
    c = 4 / np.sqrt(20)  # point 1: (4, 2) / |(4, 2)|
    np.testing.assert_allclose(along[0], [3, abs(c * 1 - c / 2 * 2), 2 * s, 0])
    np.testing.assert_allclose(
        across[0], [4, abs(c * -2 - c / 2 * 1), 2 * s, 0]
    )
    assert valid.tolist() == [[True, True, True, False]]
    np.testing.assert_allclose(
        np.hypot(along, across)[valid], np.linalg.norm(r, axis=-1)[valid]
    )
    # Point 1 invisible: excluded, and it no longer steers 0 and 2, which
    # have no other neighbour.
    along, across, valid = curve_error_components(
        gt + r, gt, neighbours, visible=np.array([[1, 0, 1, 1]])
    )
    assert valid.tolist() == [[False, False, False, False]]
    assert not along.any() and not across.any()


def test_curve_error_components_ignore_what_is_invisible():
    gt = np.array([[[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [6.0, 0.0]]])
    neighbours = np.array([[-1, 0, 1, 2], [1, 2, 3, -1]])
    pred = gt + [0.0, 1.0]
    gt_bad = gt.copy()
    gt_bad[0, 1] = np.nan  # an unlabelled point
    pred[0, 1] = np.inf
    along, across, valid = curve_error_components(
        pred, gt_bad, neighbours, visible=np.array([[1, 0, 1, 1]])
    )
    assert valid.tolist() == [[False, False, True, True]]
    np.testing.assert_array_equal(along, 0.0)
    np.testing.assert_array_equal(across, [[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r'visible must have shape \(1, 4\)'):
        curve_error_components(pred, gt, neighbours, visible=np.ones(4))
    with pytest.raises(ValueError, match='both have shape'):
        curve_error_components(pred[:, :3], gt, neighbours)


def test_masked_per_image_nme():
    errors = np.array([[1.0, 3.0, 100.0], [2.0, 2.0, 2.0]])
    mask = np.array([[True, True, False], [False, False, False]])
    out = masked_per_image_nme(errors, mask, np.array([4.0, 1.0]))
    assert out[0] == 0.5 and np.isnan(out[1])
    with pytest.raises(ValueError, match='both have shape'):
        masked_per_image_nme(errors, mask[:, :2], np.ones(2))
