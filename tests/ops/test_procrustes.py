"""Tests of mmaniso.ops.procrustes: similarity fits and GPA."""

import doctest
import warnings
from typing import Tuple

import numpy as np
import pytest
import torch
from posed_shapes import posed, rotation_2d, turned_faces
from torch import Tensor

from mmaniso.ops import procrustes
from mmaniso.ops.procrustes import (
    SimilarityTransform,
    apply_similarity,
    generalized_procrustes,
    procrustes_align,
)


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


def planar_reference(
    x: Tensor, w: Tensor, max_iters: int, tol: float
) -> procrustes.GeneralizedProcrustes:
    """An independent 2-D GPA, with points as complex numbers (the formula
    mmaniso used before the one real-valued path).

    A similarity without reflection is ``z -> a z + b`` with complex ``a``
    (scale and rotation) and ``b``; the best ``a`` for a centred shape
    ``z`` and a mean ``m`` is ``sum_k w_k conj(z_k) m_k / sum_k w_k |z_k|^2``
    (the centroid of ``m`` drops out as ``sum_k w_k z_k = 0``). Each round
    is then two complex matrix-vector products over all shapes.
    """
    num, num_kpts, _ = x.shape
    tiny = torch.finfo(x.dtype).eps
    z = torch.view_as_complex(x.contiguous())  # (N, K)
    total = w.sum(1)  # (N,)
    wn = w / total.clamp_min(tiny)[:, None]  # (N, K), rows sum to 1
    mu = (wn * z).sum(1)  # (N,) weighted centroids
    zc = z - mu[:, None]  # (N, K)
    sq = zc.real * zc.real + zc.imag * zc.imag  # (N, K)
    var = (wn * sq).sum(1)  # (N,)
    spread = mu.real * mu.real + mu.imag * mu.imag + var
    degenerate = (total <= tiny) | (var <= 1e3 * tiny * tiny * spread)
    valid = (~degenerate) & ((w > 0).sum(1) >= 2)
    v = procrustes._check_alignable(valid, w)  # (N, K)
    v_total = v.sum(0)  # (K,)
    wz = wn * zc.conj()  # (N, K)
    vz = v * zc  # (N, K)
    inv_var = torch.where(valid, 1 / var.clamp_min(tiny), 0.0)

    def complex_matvec(real: Tensor, vec: Tensor) -> Tensor:
        return torch.complex(real @ vec.real, real @ vec.imag)

    def fit_to(mean: Tensor) -> Tuple[Tensor, Tensor]:
        """Scale-rotations a (N,) and target centroids (N,), complex."""
        a = (wz @ mean) * inv_var
        a = torch.where(valid, a, torch.ones_like(a))
        return a, complex_matvec(wn, mean)

    def normalise(mean: Tensor) -> Tensor:
        mean = mean - mean.mean()
        radius = mean.abs().pow(2).mean().sqrt()
        return mean / radius.clamp_min(tiny)

    seed = int(torch.argmax(v.sum(1)))
    # The reference may itself miss landmarks: those come from the
    # per-landmark mean of the unaligned, centred shapes.
    filled = vz.sum(0) / v_total
    reference = normalise(torch.where(w[seed] > 0, zc[seed], filled))
    mean = reference
    num_iters = 0
    while num_iters < max_iters:
        num_iters += 1
        a, target_mu = fit_to(mean)
        # Per landmark: sum over shapes of v * (a zc + target_mu).
        summed = vz.T @ a + complex_matvec(v.T, target_mu)
        new_mean = normalise(summed / v_total)
        # Fix the gauge: rotate the new mean onto the reference.
        turn = (new_mean.conj() * reference).sum()
        new_mean = new_mean * (turn / turn.abs().clamp_min(tiny))
        change = float((new_mean - mean).abs().max())
        mean = new_mean
        if change < tol:
            break
    a, target_mu = fit_to(mean)
    aligned = torch.view_as_real(a[:, None] * zc + target_mu[:, None])
    scale = a.abs()
    unit = a / scale.clamp_min(tiny)
    rot = torch.stack(
        [
            torch.stack([unit.real, -unit.imag], -1),
            torch.stack([unit.imag, unit.real], -1),
        ],
        -2,
    )  # (N, 2, 2)
    trans = torch.view_as_real(target_mu - a * mu)
    fit = SimilarityTransform(rot, trans, scale)
    return procrustes.GeneralizedProcrustes(
        aligned, torch.view_as_real(mean), fit, valid, num_iters
    )


def test_gpa_agrees_with_a_complex_number_reference():
    rng = np.random.default_rng(11)
    shapes = torch.as_tensor(turned_faces(rng.uniform(-40, 40, 25), rng))
    weights = torch.as_tensor(rng.uniform(0, 1, (25, 98)) > 0.1).double()
    general = generalized_procrustes(shapes, weights, tol=1e-12)
    planar = planar_reference(shapes, weights, 30, 1e-12)
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
