"""Tests of mmaniso.ops.procrustes: similarity fits, GPA, PCA, pose bins."""

import ast
import doctest
import math
import os.path as osp
import warnings

import numpy as np
import pytest
import torch

from mmaniso.ops import procrustes
from mmaniso.ops.procrustes import (
    SimilarityTransform,
    apply_similarity,
    balanced_mean_shape,
    generalized_procrustes,
    pose_bins,
    procrustes_align,
    weighted_pca,
)


def rotation_2d(angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices, shape (B, 2, 2), for angles (B,)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def random_rotation(batch: int, dim: int, gen) -> torch.Tensor:
    """Proper rotations, shape (B, D, D), from QR of Gaussian matrices."""
    q, r = torch.linalg.qr(
        torch.randn(batch, dim, dim, generator=gen, dtype=torch.float64)
    )
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None]
    det = torch.linalg.det(q)
    q[:, :, 0] *= det[:, None]  # make det +1
    return q


def naive_align(source, target, weights):
    """Per-shape Umeyama fit with numpy SVD: the reference loop."""
    rots, trans, scales = [], [], []
    for x, y, w in zip(source, target, weights):
        w = w / w.sum()
        mx, my = w @ x, w @ y
        xc, yc = x - mx, y - my
        cov = (w[:, None] * yc).T @ xc
        u, sv, vt = np.linalg.svd(cov)
        e = np.ones(len(sv))
        e[-1] = np.sign(np.linalg.det(u @ vt))
        rot = u @ np.diag(e) @ vt
        scale = (sv * e).sum() / (w * (xc**2).sum(1)).sum()
        rots.append(rot)
        scales.append(scale)
        trans.append(my - scale * rot @ mx)
    return np.array(rots), np.array(trans), np.array(scales)


@pytest.mark.parametrize('dim', [2, 3])
def test_recovers_random_similarity(dim):
    gen = torch.Generator().manual_seed(dim)
    batch, num = 6, 12
    x = torch.randn(batch, num, dim, generator=gen, dtype=torch.float64)
    rot = random_rotation(batch, dim, gen)
    scale = torch.rand(batch, generator=gen, dtype=torch.float64) * 3 + 0.2
    trans = torch.randn(batch, dim, generator=gen, dtype=torch.float64) * 5
    y = scale[:, None, None] * x @ rot.transpose(1, 2) + trans[:, None]

    fit = procrustes_align(x, y)

    assert fit.R.shape == (batch, dim, dim)
    assert fit.t.shape == (batch, dim)
    assert fit.s.shape == (batch,)
    torch.testing.assert_close(fit.R, rot)
    torch.testing.assert_close(fit.s, scale)
    torch.testing.assert_close(fit.t, trans)
    torch.testing.assert_close(apply_similarity(x, fit), y)


def test_zero_weight_points_are_ignored():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 10, 2, generator=gen, dtype=torch.float64)
    rot = rotation_2d(torch.tensor([0.3, -1.0, 2.5], dtype=torch.float64))
    y = 2 * x @ rot.transpose(1, 2) + 1
    weights = torch.ones(3, 10, dtype=torch.float64)
    weights[:, :3] = 0
    y_bad = y.clone()
    y_bad[:, :3] += 100.0  # invisible points far off

    fit = procrustes_align(x, y_bad, weights)

    torch.testing.assert_close(fit.R, rot)
    torch.testing.assert_close(fit.s, torch.full((3,), 2.0).double())
    # Without the weights the outliers pull the fit away.
    assert not torch.allclose(procrustes_align(x, y_bad).R, rot, atol=1e-3)


@pytest.mark.parametrize('dim', [2, 3])
def test_refuses_reflections(dim):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(4, 15, dim, generator=gen, dtype=torch.float64)
    mirror = torch.ones(dim, dtype=torch.float64)
    mirror[0] = -1
    y = x * mirror  # a pure reflection of every shape

    fit = procrustes_align(x, y)
    det = torch.linalg.det(fit.R)
    torch.testing.assert_close(det, torch.ones(4, dtype=torch.float64))
    residual = (apply_similarity(x, fit) - y).norm(dim=-1).mean()
    assert residual > 0.1  # a rotation cannot reproduce a mirror image

    fit_r = procrustes_align(x, y, allow_reflection=True)
    torch.testing.assert_close(
        torch.linalg.det(fit_r.R), -torch.ones(4, dtype=torch.float64)
    )
    torch.testing.assert_close(apply_similarity(x, fit_r), y)


def test_rigid_fit_keeps_unit_scale():
    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    fit = procrustes_align(x, 3 * x, estimate_scale=False)
    assert fit.s.tolist() == [1.0]
    torch.testing.assert_close(fit.R[0], torch.eye(2))


def test_matches_naive_per_shape_loop():
    rng = np.random.default_rng(3)
    source = rng.normal(size=(20, 9, 2))
    target = rng.normal(size=(20, 9, 2))
    weights = rng.uniform(0.1, 1.0, size=(20, 9))

    fit = procrustes_align(source, target, weights)
    rot, trans, scale = naive_align(source, target, weights)

    np.testing.assert_allclose(fit.R.numpy(), rot, atol=1e-10)
    np.testing.assert_allclose(fit.t.numpy(), trans, atol=1e-10)
    np.testing.assert_allclose(fit.s.numpy(), scale, atol=1e-10)


def test_shared_target_broadcasts():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 2, generator=gen, dtype=torch.float64)
    target = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    shared = procrustes_align(x, target)
    tiled = procrustes_align(x, target.expand(5, 6, 2))
    torch.testing.assert_close(shared.R, tiled.R)


def test_degenerate_source_warns_and_translates():
    x = torch.ones(2, 5, 2)
    x[1] = torch.randn(5, 2)
    y = torch.randn(2, 5, 2)
    with pytest.warns(UserWarning, match='1 of 2 shapes are degenerate'):
        fit = procrustes_align(x, y)
    torch.testing.assert_close(fit.R[0], torch.eye(2))
    assert fit.s[0] == 1
    torch.testing.assert_close(fit.t[0], y[0].mean(0) - 1)


def test_invalid_input_is_refused():
    with pytest.raises(ValueError, match=r'shape \(B, K, D\)'):
        procrustes_align(torch.zeros(5, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match='does not match'):
        procrustes_align(torch.zeros(2, 5, 2), torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match='non-negative'):
        procrustes_align(
            torch.randn(1, 4, 2), torch.randn(1, 4, 2), -torch.ones(1, 4)
        )
    with pytest.raises(ValueError, match='weights of shape'):
        procrustes_align(
            torch.randn(1, 4, 2), torch.randn(1, 4, 2), torch.ones(3)
        )


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 5, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 5, 2, generator=gen, dtype=torch.float64)
    x.requires_grad_(True)

    def aligned(points):
        return apply_similarity(points, procrustes_align(points, y))

    assert torch.autograd.gradcheck(aligned, (x,))


def posed(base: np.ndarray, rng, num: int) -> np.ndarray:
    """Copies of ``base`` (K, 2) under random similarities, (num, K, 2)."""
    angle = rng.uniform(-math.pi, math.pi, num)
    rot = rotation_2d(torch.as_tensor(angle)).numpy()
    scale = rng.uniform(0.5, 50, num)
    shift = rng.uniform(-100, 100, (num, 1, 2))
    return scale[:, None, None] * base @ rot.transpose(0, 2, 1) + shift


def test_generalized_procrustes_aligns_similar_shapes():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 2))
    shapes = posed(base, rng, 30)

    gpa = generalized_procrustes(shapes)

    assert gpa.aligned.shape == (30, 10, 2)
    assert gpa.valid.all()
    spread = (gpa.aligned - gpa.aligned.mean(0)).abs().max()
    assert spread < 1e-8
    # The mean is the base up to a similarity, centred, unit RMS radius.
    torch.testing.assert_close(gpa.mean.mean(0), torch.zeros(2).double())
    radius = gpa.mean.pow(2).sum(-1).mean().sqrt()
    assert abs(float(radius) - 1) < 1e-9
    fit = procrustes_align(base[None], gpa.mean)
    assert torch.allclose(
        apply_similarity(base[None], fit)[0], gpa.mean, atol=1e-8
    )
    # The returned transform maps each input on its aligned copy.
    torch.testing.assert_close(
        apply_similarity(shapes, gpa.transform), gpa.aligned
    )


def test_generalized_procrustes_in_3d():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(8, 3))
    rot = random_rotation(12, 3, torch.Generator().manual_seed(0))
    shapes = torch.as_tensor(base) @ rot.transpose(1, 2) * 2 + 1
    gpa = generalized_procrustes(shapes)
    assert (gpa.aligned - gpa.aligned[0]).abs().max() < 1e-8
    assert torch.linalg.det(gpa.transform.R).min() > 0


def test_planar_and_general_gpa_agree():
    # 2-D shapes take the complex-number path; the SVD path must agree.
    rng = np.random.default_rng(11)
    shapes = torch.as_tensor(turned_faces(rng.uniform(-40, 40, 25), rng))
    weights = torch.as_tensor(rng.uniform(0, 1, (25, 98)) > 0.1).double()
    planar = generalized_procrustes(shapes, weights, tol=1e-12)
    general = procrustes._gpa_general(shapes, weights, 30, 1e-12)
    torch.testing.assert_close(planar.mean, general.mean)
    torch.testing.assert_close(planar.aligned, general.aligned)
    torch.testing.assert_close(planar.transform.R, general.transform.R)
    torch.testing.assert_close(planar.transform.s, general.transform.s)
    torch.testing.assert_close(planar.transform.t, general.transform.t)


def test_generalized_procrustes_with_missing_points():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(12, 2))
    shapes = posed(base, rng, 20)
    weights = np.ones((20, 12))
    weights[np.arange(20), rng.integers(0, 12, 20)] = 0
    shapes[weights == 0] = 1e4  # garbage where invisible

    gpa = generalized_procrustes(shapes, weights)

    visible = torch.as_tensor(weights) > 0
    aligned0 = gpa.aligned[0]
    for i in range(1, 20):
        both = visible[0] & visible[i]
        assert (gpa.aligned[i][both] - aligned0[both]).abs().max() < 1e-8


def test_generalized_procrustes_warns_on_unalignable_shape():
    rng = np.random.default_rng(4)
    shapes = posed(rng.normal(size=(6, 2)), rng, 5)
    weights = np.ones((5, 6))
    weights[2] = 0
    weights[2, 0] = 1  # a single visible point fixes no similarity
    with pytest.warns(UserWarning, match='1 of 5 shapes have fewer than two'):
        gpa = generalized_procrustes(shapes, weights)
    assert gpa.valid.tolist() == [True, True, False, True, True]


def test_generalized_procrustes_refuses_landmark_never_visible():
    weights = np.ones((4, 5))
    weights[:, 3] = 0
    with pytest.raises(ValueError, match=r'landmarks \[3\]'):
        generalized_procrustes(np.random.rand(4, 5, 2), weights)


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


def turned_faces(yaws_deg, rng, noise=0.01):
    """A 3-D face turned by each yaw, projected, then moved at random."""
    from mmaniso.datasets.face_template import mean_face

    face = mean_face(98)
    z = 0.7 * np.sqrt(np.clip(1 - face[:, 0] ** 2, 0, None))
    z[51:55] += np.linspace(0.1, 0.45, 4)
    yaw = np.deg2rad(np.asarray(yaws_deg, dtype=float))
    xr = np.cos(yaw)[:, None] * face[:, 0] + np.sin(yaw)[:, None] * z
    flat = np.stack([xr, np.broadcast_to(face[:, 1], xr.shape)], -1)
    flat = flat + rng.normal(0, noise, flat.shape)
    out = np.empty_like(flat)
    for i, shape in enumerate(flat):
        out[i] = posed(shape, rng, 1)[0]
    return out


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
    mean = balanced_mean_shape(shapes, ids, num_bins=3)  # bin 1 is empty
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
    mean = balanced_mean_shape(shapes, ids, weights)
    # Point 0: bins (1+3)/2 = 2 and 2 -> 2. Point 1: bin 0 has only 5,
    # bin 1 has 7 -> 6.
    torch.testing.assert_close(mean, torch.tensor([[2.0, 2.0], [6.0, 6.0]]))


def test_balanced_mean_shape_validates():
    with pytest.raises(ValueError, match='bin_ids must have shape'):
        balanced_mean_shape(torch.zeros(3, 2, 2), torch.zeros(2).long())
    with pytest.raises(ValueError, match='out of range'):
        balanced_mean_shape(
            torch.zeros(2, 2, 2), torch.tensor([0, 3]), num_bins=2
        )


def test_similarity_transform_is_a_named_tuple():
    fit = procrustes_align(torch.randn(1, 3, 2), torch.randn(1, 3, 2))
    assert isinstance(fit, SimilarityTransform)
    rot, trans, scale = fit
    assert rot is fit.R and trans is fit.t and scale is fit.s


def test_examples_in_docstrings_run():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = doctest.testmod(procrustes, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 5
    assert result.failed == 0


def test_no_mmengine_or_mmpose_import():
    tree = ast.parse(open(procrustes.__file__).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or '')
    roots = {n.split('.')[0] for n in names}
    assert roots <= {'warnings', 'typing', 'numpy', 'torch'}, roots
    assert osp.basename(procrustes.__file__) == 'procrustes.py'
