"""Tests of mmaniso.ops.pose: weighted PCA, pose bins, balanced mean."""

import doctest
import warnings

import numpy as np
import pytest
import torch
from posed_shapes import posed, turned_faces

from mmaniso.ops import pose
from mmaniso.ops.pose import mean_of_bin_means, pose_bins, weighted_pca


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
