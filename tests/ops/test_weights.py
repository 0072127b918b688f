"""Anisotropic weights and quadratic forms (mmaniso.ops.weights)."""

import math

import pytest
import torch

from mmaniso.ops.weights import (
    anisotropic_quadratic_form,
    anisotropic_weight_entries,
    anisotropic_weight_matrices,
    quadratic_form,
    symmetric_quadratic_form,
)


def random_unit(shape, gen, dtype=torch.float64):
    angle = torch.rand(shape, generator=gen, dtype=dtype) * 2 * math.pi
    return torch.stack([angle.cos(), angle.sin()], -1)


def test_matrix_eigenvectors_are_tangent_and_normal():
    t = torch.tensor([[[0.6, 0.8]]], dtype=torch.float64)
    n = torch.tensor([-0.8, 0.6], dtype=torch.float64)
    w = anisotropic_weight_matrices(t, 5.0, 3.0)[0, 0]
    assert torch.allclose(w @ t[0, 0], t[0, 0] / 25)
    assert torch.allclose(w @ n, n / 9)
    assert torch.allclose(w, w.T)


def test_invalid_points_get_identity():
    t = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, False]])
    w = anisotropic_weight_matrices(t, 5.0, 3.0, valid)
    assert torch.allclose(w[0, 1], torch.eye(2))
    assert torch.allclose(w[0, 0], torch.diag(torch.tensor([1 / 25, 1 / 9])))
    # The compact entries take the zero vector as "no tangent".
    w00, w01, w11 = anisotropic_weight_entries(t, 5.0, 3.0)
    assert (w00[0, 1], w01[0, 1], w11[0, 1]) == (1.0, 0.0, 1.0)


@pytest.mark.parametrize('shape', [(1, 1), (4, 19), (3, 98)])
def test_all_forms_agree(shape):
    gen = torch.Generator().manual_seed(shape[1])
    t = random_unit(shape, gen)
    r = torch.randn(shape + (2,), generator=gen, dtype=torch.float64)
    valid = torch.rand(shape, generator=gen) > 0.3
    w = anisotropic_weight_matrices(t, 5.0, 3.0, valid)
    reference = quadratic_form(r, w)
    assert reference.shape == shape
    # Entries take directions of any length; zero ones mean no tangent.
    lengths = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1
    directions = t * (lengths * valid)[..., None]
    entries = anisotropic_weight_entries(directions, 5.0, 3.0)
    assert torch.allclose(entries[0], w[..., 0, 0])
    assert torch.allclose(entries[1], w[..., 0, 1])
    assert torch.allclose(entries[2], w[..., 1, 1])
    projected = anisotropic_quadratic_form(r, t, 5.0, 3.0, valid)
    assert torch.allclose(projected, reference)
    assert torch.allclose(symmetric_quadratic_form(r, *entries), reference)
    assert (projected >= 0).all()


def test_tangential_error_costs_b_over_a_squared_of_normal_error():
    t = torch.tensor([[[0.6, 0.8]]], dtype=torch.float64)
    n = torch.tensor([[[-0.8, 0.6]]], dtype=torch.float64)
    along = anisotropic_quadratic_form(2.0 * t, t, 5.0, 3.0)
    across = anisotropic_quadratic_form(2.0 * n, t, 5.0, 3.0)
    assert (along / across).item() == pytest.approx((3.0 / 5.0) ** 2)
    # a = b = 1 is the squared Euclidean length.
    r = torch.tensor([[[3.0, 4.0]]])
    assert anisotropic_quadratic_form(r, t.float(), 1.0, 1.0).item() == (
        pytest.approx(25.0)
    )


def test_gradcheck():
    gen = torch.Generator().manual_seed(0)
    t = random_unit((2, 6), gen)
    r = torch.randn(2, 6, 2, generator=gen, dtype=torch.float64)
    valid = torch.rand(2, 6, generator=gen) > 0.3
    entries = anisotropic_weight_entries(t * valid[..., None], 5.0, 3.0)
    # The fused path: gradient with respect to the residuals only.
    r.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: symmetric_quadratic_form(x, *entries), (r,)
    )
    # Entries that require grad take the plain path: all gradients.
    leaves = [e.clone().requires_grad_(True) for e in entries]
    assert torch.autograd.gradcheck(symmetric_quadratic_form, (r, *leaves))
    t.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, y: anisotropic_quadratic_form(x, y, 5.0, 3.0, valid),
        (r, t),
    )


def test_fused_gradient_is_two_w_r():
    gen = torch.Generator().manual_seed(1)
    t = random_unit((3, 4), gen)
    r = torch.randn(3, 4, 2, generator=gen, dtype=torch.float64)
    r.requires_grad_(True)
    w = anisotropic_weight_matrices(t, 5.0, 3.0)
    symmetric_quadratic_form(
        r, *anisotropic_weight_entries(t, 5.0, 3.0)
    ).sum().backward()
    expected = 2 * (w @ r.detach()[..., None])[..., 0]
    assert torch.allclose(r.grad, expected)


def test_entries_scale_and_min_length():
    d = torch.tensor([[[0.0, 2.0], [0.0, 1e-7]]])
    w00, w01, w11 = anisotropic_weight_entries(
        d, 2.0, 1.0, scale=torch.tensor([[3.0, 5.0]])
    )
    assert w00.tolist() == [[3.0, 5.0]]  # 3 / b^2; W = I below min_length
    assert w01.tolist() == [[0.0, 0.0]]
    assert w11.tolist() == [[0.75, 5.0]]  # 3 / a^2
    w00, _, _ = anisotropic_weight_entries(d, 2.0, 1.0, min_length=1e-8)
    assert w00.tolist() == [[1.0, 1.0]]
    assert anisotropic_weight_entries(d, 2.0, 1.0, scale=2.0)[2][0, 0] == 0.5


def test_entries_gradients_are_finite_for_zero_directions():
    d = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [1e-9, 0.0]]])
    d.requires_grad_(True)
    w00, w01, w11 = anisotropic_weight_entries(d, 5.0, 3.0)
    (w00 + w01 + w11).sum().backward()
    assert torch.isfinite(d.grad).all()
    assert torch.equal(d.grad[0, 0], torch.zeros(2))


def test_non_positive_axes_are_rejected():
    t = torch.zeros(1, 1, 2)
    with pytest.raises(ValueError, match='must be positive, got a=0'):
        anisotropic_weight_matrices(t, 0.0, 3.0)
    with pytest.raises(ValueError, match='b=-1'):
        anisotropic_weight_entries(t, 5.0, -1.0)


@pytest.mark.parametrize('bad', [math.nan, math.inf, 1e200])
@pytest.mark.parametrize('weights_need_grad', [False, True])
def test_ignored_points_cost_zero_whatever_their_inputs(
    bad, weights_need_grad
):
    # The fast path (constant weights) and the plain one (weights with
    # gradients) both give ignored points an exact 0 and zero gradients.
    gen = torch.Generator().manual_seed(7)
    t = random_unit((2, 5), gen)
    r = torch.randn(2, 5, 2, generator=gen, dtype=torch.float64)
    ignore = torch.zeros(2, 5, dtype=torch.bool)
    ignore[0, 1] = ignore[1, 4] = True

    def run(residuals, directions):
        residuals = residuals.clone().requires_grad_(True)
        entries = [
            w.requires_grad_(weights_need_grad)
            for w in anisotropic_weight_entries(directions, 5.0, 3.0)
        ]
        cost = symmetric_quadratic_form(residuals, *entries, ignore)
        cost.sum().backward()
        grads = torch.stack([w.grad if w.grad is not None else w * 0
                             for w in entries])  # fmt: skip
        return cost.detach(), residuals.grad, grads

    cost, grad, weight_grads = run(r, t)
    spoiled_r, spoiled_t = r.clone(), t.clone()
    spoiled_r[ignore] = bad
    spoiled_t[ignore] = bad
    got, got_grad, got_weight_grads = run(spoiled_r, spoiled_t)
    assert torch.equal(got, cost)
    assert torch.count_nonzero(got[ignore]) == 0
    assert torch.isfinite(got_grad).all()
    assert torch.equal(got_grad, grad)
    assert torch.count_nonzero(got_grad[ignore]) == 0
    if weights_need_grad:
        assert torch.isfinite(got_weight_grads).all()
        assert torch.count_nonzero(got_weight_grads[:, ignore]) == 0
        assert torch.equal(got_weight_grads, weight_grads)
    # The other points cost what they cost without ignore.
    plain = symmetric_quadratic_form(
        r, *anisotropic_weight_entries(t, 5.0, 3.0)
    )
    assert torch.allclose(got[~ignore], plain[~ignore])
