"""Curve neighbours and ground-truth tangents (mmaniso.ops.tangents)."""

import math

import pytest
import torch

from mmaniso.ops.tangents import (
    curve_differences,
    curve_neighbours,
    curve_tangents,
)


def naive_tangents(kpts, curves, corners, visible, min_length=1e-6):
    """The documented rule, one point at a time."""
    batch, num, _ = kpts.shape
    tangents = torch.zeros_like(kpts)
    valid = torch.zeros(batch, num, dtype=torch.bool)
    for b in range(batch):
        for indices, closed in curves:
            n = len(indices)
            for j, i in enumerate(indices):
                if i in corners:
                    continue
                p = indices[j - 1] if (closed or j > 0) else None
                q = indices[(j + 1) % n] if (closed or j < n - 1) else None
                p_ok = p is not None and bool(visible[b, p])
                q_ok = q is not None and bool(visible[b, q])
                # As test_anisotropic_loss.py's loop: each file keeps its own
                # reference.
                if p_ok and q_ok:
                    d = kpts[b, q] - kpts[b, p]
                elif q_ok:
                    d = kpts[b, q] - kpts[b, i]
                elif p_ok:
                    d = kpts[b, i] - kpts[b, p]
                else:
                    continue
                length = math.hypot(float(d[0]), float(d[1]))
                if length > min_length:
                    tangents[b, i] = d / length
                    valid[b, i] = True
    return tangents, valid


def test_neighbours_of_open_closed_and_corner_points():
    neighbours = curve_neighbours(
        7, [([0, 1, 2], False), ([3, 4, 5, 6], True)], corners=[3]
    )
    assert neighbours.shape == (2, 7)
    prev, nxt = neighbours
    assert prev.tolist() == [-1, 0, 1, -1, 3, 4, 5]
    assert nxt.tolist() == [1, 2, -1, -1, 5, 6, 3]
    assert prev.dtype == torch.long


def test_neighbours_reject_bad_input():
    with pytest.raises(ValueError, match='index 5, out of range for 4'):
        curve_neighbours(4, [([0, 5], False)])
    with pytest.raises(ValueError, match='keypoint 1 is on curves #0 and #1'):
        curve_neighbours(4, [([0, 1], False), ([1, 2], False)])
    # A corner may be shared.
    curve_neighbours(4, [([0, 1], False), ([1, 2], False)], corners=[1])


def test_hand_computed_tangents():
    # An open curve 0-1-2 and a closed square 3-4-5-6.
    kpts = torch.tensor(
        [
            [[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]
            + [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
        ]
    )
    nbrs = curve_neighbours(7, [([0, 1, 2], False), ([3, 4, 5, 6], True)])
    t, valid = curve_tangents(kpts, nbrs)
    s = 1 / math.sqrt(2)
    expected = [
        [s, s],  # one-sided at the open start: x1 - x0
        [1.0, 0.0],  # central: x2 - x0
        [s, -s],  # one-sided at the open end: x2 - x1
        [s, -s],  # wraps: x4 - x6
        [s, s],
        [-s, s],
        [-s, -s],
    ]
    assert torch.allclose(t[0], torch.tensor(expected), atol=1e-6)
    assert valid.all()


def test_invisible_neighbour_gives_one_sided_or_no_tangent():
    kpts = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 5.0]]]).repeat(3, 1, 1)
    nbrs = curve_neighbours(3, [([0, 1, 2], False)])
    visible = torch.tensor(
        [[True, True, False], [False, True, True], [False, True, False]]
    )
    # The invisible point is moved far away: it must not matter.
    kpts[0, 2] = torch.tensor([100.0, -70.0])
    t, valid = curve_tangents(kpts, nbrs, visible)
    assert torch.allclose(t[0, 1], torch.tensor([1.0, 0.0]))  # x1 - x0
    assert torch.allclose(t[1, 1], torch.tensor([0.0, 1.0]))  # x2 - x1
    assert not valid[2, 1] and torch.equal(t[2, 1], torch.zeros(2))


def test_zero_length_and_isolated_points_have_no_tangent():
    kpts = torch.tensor([[[3.0, 3.0], [3.0, 3.0], [1.0, 1.0]]])
    nbrs = curve_neighbours(3, [([0, 1], False)])
    t, valid = curve_tangents(kpts, nbrs)
    assert valid.tolist() == [[False, False, False]]
    assert torch.equal(t, torch.zeros_like(t))


@pytest.mark.parametrize('shape', [(1, 5), (3, 12), (7, 30)])
def test_matches_naive_rule_on_random_curves(shape):
    batch, num = shape
    gen = torch.Generator().manual_seed(num)
    curves = [(list(range(0, num // 2)), False)]
    curves.append((list(range(num // 2, num - 1)), True))
    corners = {num // 2}
    kpts = torch.rand(batch, num, 2, generator=gen, dtype=torch.float64)
    visible = torch.rand(batch, num, generator=gen) > 0.3
    nbrs = curve_neighbours(num, curves, corners)
    t, valid = curve_tangents(kpts, nbrs, visible)
    t_ref, valid_ref = naive_tangents(kpts, curves, corners, visible)
    assert t.shape == (batch, num, 2) and valid.shape == (batch, num)
    assert torch.equal(valid, valid_ref)
    assert torch.allclose(t, t_ref, atol=1e-12)
    norms = t.norm(dim=-1)
    assert torch.allclose(norms[valid], torch.ones_like(norms[valid]))
    # A float weight works like a mask.
    t_w, valid_w = curve_tangents(kpts, nbrs, visible.double() * 0.5)
    assert torch.equal(valid_w, valid) and torch.allclose(t_w, t)


def test_gradcheck_and_finite_gradients_at_degenerate_points():
    nbrs = curve_neighbours(5, [([0, 1, 2, 3, 4], True)])
    kpts = torch.rand(2, 5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda k: curve_tangents(k, nbrs)[0], (kpts,)
    )
    # Coincident neighbours: no NaN in values or gradients.
    flat = torch.zeros(1, 5, 2, requires_grad=True)
    t, valid = curve_tangents(flat, nbrs)
    (t.sum() + t.square().sum()).backward()
    assert not valid.any()
    assert torch.isfinite(flat.grad).all()


def test_shape_errors():
    nbrs = curve_neighbours(3, [([0, 1, 2], False)])
    with pytest.raises(ValueError, match=r'kpts must have shape \(B, K, 2\)'):
        curve_tangents(torch.zeros(3, 2), nbrs)
    with pytest.raises(ValueError, match=r'must have shape \(2, 4\)'):
        curve_tangents(torch.zeros(1, 4, 2), nbrs)
    with pytest.raises(ValueError, match=r'visible must have shape \(1, 3\)'):
        curve_tangents(torch.zeros(1, 3, 2), nbrs, torch.ones(3))


def test_differences_scale_and_units():
    gen = torch.Generator().manual_seed(3)
    kpts = torch.rand(2, 6, 2, generator=gen)
    nbrs = curve_neighbours(6, [([0, 1, 2, 3, 4, 5], True)])
    size = torch.tensor([64.0, 48.0])
    scaled = curve_differences(kpts, nbrs, scale=size)
    assert torch.allclose(scaled, curve_differences(kpts * size, nbrs))
    assert torch.allclose(scaled[:, 1], (kpts[:, 2] - kpts[:, 0]) * size)
    # Tangents in pixels of a non-square input differ from normalised ones.
    t_pix, _ = curve_tangents(kpts, nbrs, scale=size)
    t_norm, _ = curve_tangents(kpts, nbrs)
    assert not torch.allclose(t_pix, t_norm)


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf, 1e38])
def test_invisible_point_with_non_finite_coordinates_steers_nothing(bad):
    # An open curve 0-1-2-3 and a closed loop 4-5-6-7; points with no
    # neighbour read point 0's slot, so point 0 is the nastiest to spoil.
    nbrs = curve_neighbours(8, [([0, 1, 2, 3], False), ([4, 5, 6, 7], True)])
    gen = torch.Generator().manual_seed(4)
    kpts = torch.rand(2, 8, 2, generator=gen)
    visible = torch.ones(2, 8, dtype=torch.bool)
    visible[0, 0] = visible[1, 5] = False
    finite_diff = curve_differences(kpts, nbrs, visible)
    finite_t, finite_valid = curve_tangents(kpts, nbrs, visible)
    spoiled = kpts.clone()
    spoiled[0, 0] = bad
    spoiled[1, 5] = bad
    spoiled.requires_grad_(True)
    others = visible  # every point but the spoiled ones
    diff = curve_differences(spoiled, nbrs, visible)
    assert torch.equal(diff[others], finite_diff[others])
    # The gradient of the others' differences never touches the spoiled
    # points, nor turns NaN through them.
    diff[others].square().sum().backward()
    assert torch.isfinite(spoiled.grad).all()
    assert torch.count_nonzero(spoiled.grad[~visible]) == 0
    expected = kpts.clone().requires_grad_(True)
    expected_diff = curve_differences(expected, nbrs, visible)
    expected_diff[others].square().sum().backward()
    assert torch.equal(spoiled.grad, expected.grad)
    with torch.no_grad():
        t, valid = curve_tangents(spoiled, nbrs, visible)
    assert torch.equal(t[others], finite_t[others])
    assert torch.equal(valid[others], finite_valid[others])
