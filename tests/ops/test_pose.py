"""Tests of mmaniso.ops.pose: weighted PCA, pose bins, balanced mean."""

import doctest
import warnings

import numpy as np
import pytest
import torch
from posed_shapes import posed, rotation_2d, turned_faces

from mmaniso.ops import pose
from mmaniso.ops.pose import (
    mean_of_bin_means,
    pose_bins,
    shape_outliers,
    weighted_pca,
)


def test_weighted_pca_matches_svd_and_ignores_missing():
    rng = np.random.default_rng(5)
    data = rng.normal(size=(200, 4)) * [5.0, 2.0, 1.0, 0.5]
    pca = weighted_pca(data, num_components=2)
    centred = data - data.mean(0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    for c in range(2):
        assert abs(abs(float(pca.components[c].numpy() @ vt[c])) - 1) < 1e-10
    np.testing.assert_allclose(
        pca.variances.numpy(), sv[:2] ** 2 / 199, rtol=1e-10
    )
    # A missing entry (weight 0, wild value) adds no variance.
    weights = np.ones_like(data)
    data[0, 0] = 1e6
    weights[0, 0] = 0
    missing = weighted_pca(data, weights)
    assert float(missing.variances[0]) < 40
    assert abs(float(missing.components[0, 0])) > 0.99


def test_weighted_pca_sign_is_deterministic():
    t = torch.linspace(-1, 1, 21)[:, None]
    pca_a = weighted_pca(torch.cat([3 * t, -t], 1))
    pca_b = weighted_pca(torch.cat([-3 * t, t], 1))
    assert pca_a.components[0, 0] > 0
    torch.testing.assert_close(pca_a.components, pca_b.components)


def test_pose_bins_recover_a_known_pose_mix():
    rng = np.random.default_rng(6)
    groups = {-30: 30, 0: 100, 30: 20}
    yaws = np.concatenate(
        [np.full(n, y) + rng.normal(0, 2, n) for y, n in groups.items()]
    )
    labels = np.repeat(np.arange(3), list(groups.values()))
    shapes = turned_faces(yaws, rng)

    bins = pose_bins(shapes, num_bins=3)

    assert bins.ids.shape == (150,)
    assert bins.edges.shape == (4,)
    assert bins.counts.sum() == 150
    # Each pose group falls in one bin of its own, and the bins are
    # ordered along yaw (one way or the other).
    group_bins = [set(bins.ids[labels == g].tolist()) for g in range(3)]
    assert all(len(b) == 1 for b in group_bins)
    order = [b.pop() for b in group_bins]
    assert order in ([0, 1, 2], [2, 1, 0])
    assert sorted(bins.counts.tolist()) == [20, 30, 100]
    # The scores follow yaw.
    corr = np.corrcoef(bins.scores.numpy(), np.sin(np.deg2rad(yaws)))[0, 1]
    assert abs(corr) > 0.98


def test_pose_bins_ignore_similarity_of_the_input():
    rng = np.random.default_rng(7)
    shapes = turned_faces(rng.uniform(-60, 60, 80), rng)
    moved = np.stack([posed(s, rng, 1)[0] for s in shapes])
    ids = pose_bins(shapes, num_bins=5).ids
    moved_ids = pose_bins(moved, num_bins=5).ids
    assert (ids == moved_ids).float().mean() > 0.97


def test_pose_bins_of_identical_shapes_warn_and_use_one_bin():
    rng = np.random.default_rng(8)
    shapes = posed(rng.normal(size=(10, 2)), rng, 12)  # one shape, moved
    with pytest.warns(UserWarning, match='do not vary in pose'):
        bins = pose_bins(shapes, num_bins=4)
    assert bins.counts.tolist() == [12, 0, 0, 0]
    assert bins.ids.eq(0).all()


def test_pose_bins_with_fewer_shapes_than_bins_warn():
    rng = np.random.default_rng(9)
    shapes = turned_faces([-40, 0, 40], rng)
    with pytest.warns(UserWarning, match='3 shapes for 9 bins'):
        bins = pose_bins(shapes, num_bins=9)
    assert bins.counts.sum() == 3
    assert (bins.counts > 0).sum() == 3


def test_pose_bins_validate_arguments():
    with pytest.raises(ValueError, match='num_bins must be >= 1'):
        pose_bins(np.random.rand(5, 4, 2), num_bins=0)
    with pytest.raises(TypeError, match='num_bins must be an int'):
        pose_bins(np.random.rand(5, 4, 2), num_bins=2.5)
    with pytest.raises(ValueError, match='N >= 1'):
        pose_bins(np.zeros((0, 4, 2)))


def test_balanced_mean_shape_weights_bins_equally():
    shapes = torch.tensor(
        [[[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]], [[4.0, 8.0]]]
    )
    ids = torch.tensor([0, 0, 0, 2])
    mean = mean_of_bin_means(shapes, ids, num_bins=3)  # bin 1 is empty
    torch.testing.assert_close(mean, torch.tensor([[2.0, 4.0]]))
    # Not the plain mean over shapes.
    assert not torch.allclose(mean, shapes.mean(0))


def test_balanced_mean_shape_with_invisible_points():
    shapes = torch.tensor(
        [
            [[1.0, 1.0], [9.0, 9.0]],
            [[3.0, 3.0], [5.0, 5.0]],
            [[2.0, 2.0], [7.0, 7.0]],
        ]
    )
    weights = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    ids = torch.tensor([0, 0, 1])
    mean = mean_of_bin_means(shapes, ids, weights)
    # Point 0: bins (1+3)/2 = 2 and 2 -> 2. Point 1: bin 0 has only 5,
    # bin 1 has 7 -> 6.
    torch.testing.assert_close(mean, torch.tensor([[2.0, 2.0], [6.0, 6.0]]))


def test_balanced_mean_shape_validates():
    with pytest.raises(ValueError, match='bin_ids must have shape'):
        mean_of_bin_means(torch.zeros(3, 2, 2), torch.zeros(2).long())
    with pytest.raises(ValueError, match='out of range'):
        mean_of_bin_means(
            torch.zeros(2, 2, 2), torch.tensor([0, 3]), num_bins=2
        )


def test_examples_in_docstrings_run():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = doctest.testmod(pose, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3
    assert result.failed == 0


def _faces(num=40, seed=0):
    """Noisy copies of one face, mildly rolled and scaled, in one frame."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(12, 2))
    shapes = base + rng.normal(0, 0.05, (num, 12, 2))
    angle = torch.as_tensor(rng.normal(0, 0.1, num))
    rot = rotation_2d(angle).numpy()
    scale = rng.uniform(0.9, 1.1, num)[:, None, None]
    return torch.as_tensor(scale * shapes @ rot.transpose(0, 2, 1))


@pytest.mark.parametrize(
    'attack, test',
    [
        (lambda s: s + 6.0, 'offset'),  # keypoints away from the others
        (lambda s: 3.0 * s, 'size'),  # out of scale with the frame
        (lambda s: s.flip(0), 'shape'),  # landmarks in another order
    ],
)
def test_shape_outliers_finds_one_wrong_shape_and_says_why(attack, test):
    shapes = _faces()
    clean = shape_outliers(shapes)
    assert not clean.mask.any()  # the bulk: nothing left out
    shapes[11] = attack(shapes[11])
    found = shape_outliers(shapes)
    assert torch.nonzero(found.mask).flatten().tolist() == [11]
    assert found.reasons(11).startswith(test)
    assert found.scores.shape == (40, 3) and found.reference.shape == (12, 2)


def test_shape_outliers_ignore_invisible_and_unalignable_shapes():
    shapes = _faces()
    weights = torch.ones(40, 12, dtype=shapes.dtype)
    shapes[3, :4] = 1e6  # wrong, but invisible: not counted
    weights[3, :4] = 0
    shapes[5, 1:] = 1e6  # one visible point: cannot be aligned
    weights[5, 1:] = 0
    found = shape_outliers(shapes, weights)
    assert not found.mask.any()
    assert torch.isfinite(found.scores).all()
    with pytest.raises(ValueError, match='shapes must have shape'):
        shape_outliers(torch.zeros(3, 4))


def test_pose_bins_excluded_shapes_steer_nothing():
    rng = np.random.default_rng(1)
    shapes = torch.as_tensor(turned_faces(np.linspace(-50, 50, 30), rng))
    garbled = shapes.clone()
    garbled[4] = garbled[4].flip(0)  # landmarks in reverse order
    exclude = torch.zeros(30, dtype=torch.bool)
    exclude[4] = True
    robust = pose_bins(garbled, num_bins=5, exclude=exclude)
    without = pose_bins(shapes[~exclude], num_bins=5)
    # The fit is that of the other shapes alone, which keep their bins...
    torch.testing.assert_close(robust.edges, without.edges)
    assert robust.ids[~exclude].tolist() == without.ids.tolist()
    # ...and the excluded shape is still binned, within the edges' bins.
    assert 0 <= int(robust.ids[4]) < 5 and robust.counts.sum() == 30
    # Included, the garbled shape takes the principal axis for itself.
    plain = pose_bins(garbled, num_bins=5)
    assert plain.ids[~exclude].tolist() != without.ids.tolist()
    with pytest.raises(ValueError, match='exclude must have shape'):
        pose_bins(shapes, num_bins=5, exclude=exclude[:3])
