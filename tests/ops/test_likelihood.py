"""The elliptical likelihood of learned scales, against naive references."""

import math

import pytest
import torch

from mmaniso.ops.likelihood import (
    # The names ops/__init__.py exports too: a list, not logic.
    coverage_probability,
    coverage_radius,
    ellipse_axes,
    elliptical_nll,
    floored_scales,
    map_ellipses,
    scale_params_for,
)


def naive_nll(r, t, valid, a, b, distance):
    """One point: the density's negative log, from its definition."""
    if not valid:
        a = b = math.sqrt(a * b)
        t = (1.0, 0.0)
    along = t[0] * r[0] + t[1] * r[1]
    across = t[0] * r[1] - t[1] * r[0]
    q = (along / a) ** 2 + (across / b) ** 2
    if distance == 'squared':
        exponent = q / 2
    else:
        exponent = math.sqrt(q + 1e-6) - math.sqrt(1e-6)
    return exponent + math.log(2 * math.pi * a * b)


def _inputs(gen, batch=3, num=5, dtype=torch.float64):
    r = torch.randn(batch, num, 2, generator=gen, dtype=dtype) * 3
    angle = torch.rand(batch, num, generator=gen, dtype=dtype) * 6.3
    t = torch.stack([angle.cos(), angle.sin()], -1)
    valid = torch.rand(batch, num, generator=gen) > 0.3
    t = torch.where(valid[..., None], t, 0.0)
    a = 1 + 4 * torch.rand(batch, num, generator=gen, dtype=dtype)
    b = 1 + 2 * torch.rand(batch, num, generator=gen, dtype=dtype)
    return r, t, valid, a, b


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_nll_matches_naive_per_point_loop(distance):
    gen = torch.Generator().manual_seed(0)
    r, t, valid, a, b = _inputs(gen)
    got = elliptical_nll(r, t, valid, a, b, distance)
    for n in range(r.shape[0]):
        for k in range(r.shape[1]):
            want = naive_nll(
                r[n, k].tolist(),
                t[n, k].tolist(),
                bool(valid[n, k]),
                a[n, k].item(),
                b[n, k].item(),
                distance,
            )
            assert got[n, k].item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_nll_gradcheck(distance):
    gen = torch.Generator().manual_seed(1)
    r, t, valid, a, b = _inputs(gen, batch=2, num=4)
    r.requires_grad_(True)
    a.requires_grad_(True)
    b.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda r, a, b: elliptical_nll(r, t, valid, a, b, distance),
        (r, a, b),
    )


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_density_integrates_to_one(distance):
    # exp(-nll) over a grid covering the ellipse's mass sums to 1.
    a, b, angle = 3.0, 1.2, 0.7
    t = torch.tensor([[[math.cos(angle), math.sin(angle)]]], dtype=float)
    xs = torch.linspace(-60, 60, 1201, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing='ij')
    r = torch.stack([gx, gy], -1).reshape(1, -1, 2)
    num = r.shape[1]
    nll = elliptical_nll(
        r,
        t.expand(1, num, 2),
        torch.ones(1, num, dtype=torch.bool),
        torch.full((num,), a, dtype=torch.float64),
        torch.full((num,), b, dtype=torch.float64),
        distance,
    )
    step = (xs[1] - xs[0]).item()
    assert (nll.neg().exp().sum() * step * step).item() == pytest.approx(
        1.0, abs=2e-3
    )


def test_nll_ignores_nan_points_with_zero_gradient():
    r = torch.tensor([[[1.0, 2.0], [math.nan, math.inf]]], requires_grad=True)
    t = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    valid = torch.ones(1, 2, dtype=torch.bool)
    one = torch.ones(2, requires_grad=True)
    ignore = torch.tensor([[False, True]])
    nll = elliptical_nll(r, t, valid, one, one, 'mahalanobis', ignore)
    assert nll[0, 1].item() == 0.0
    nll.sum().backward()
    assert torch.isfinite(r.grad).all() and r.grad[0, 1].abs().sum() == 0
    assert torch.isfinite(one.grad).all()


def test_nll_refuses_a_wing_distance():
    one = torch.ones(1)
    with pytest.raises(ValueError, match='likelihood'):
        elliptical_nll(
            torch.zeros(1, 1, 2),
            torch.zeros(1, 1, 2),
            torch.zeros(1, 1, dtype=torch.bool),
            one,
            one,
            'softwing',
        )


def test_floored_scales_never_below_floor_and_invert():
    p = torch.tensor([-1e4, -3.0, 0.0, 2.0])
    s = floored_scales(p, 0.3)
    assert bool((s >= 0.3).all())
    back = scale_params_for(torch.tensor([0.5, 3.0]), 0.3)
    assert floored_scales(back, 0.3).tolist() == pytest.approx([0.5, 3.0])
    with pytest.raises(ValueError, match='min_scale'):
        scale_params_for(torch.tensor([0.2]), 0.3)


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_coverage_matches_monte_carlo(distance):
    gen = torch.Generator().manual_seed(2)
    n = 200_000
    if distance == 'squared':
        rho = torch.randn(n, 2, generator=gen, dtype=torch.float64).norm(
            dim=-1
        )
    else:
        # Gamma(2, 1): the sum of two unit exponentials.
        e = torch.rand(n, 2, generator=gen, dtype=torch.float64)
        rho = -e.log().sum(-1)
    for k in (1.0, 2.0, 3.0):
        share = (rho <= k).double().mean().item()
        assert share == pytest.approx(
            coverage_probability(k, distance), abs=4e-3
        )
        p = coverage_probability(k, distance)
        assert coverage_radius(p, distance) == pytest.approx(k, abs=1e-9)


def test_ellipse_axes_iso_rule():
    t = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, False]])
    e = ellipse_axes(
        t, valid, torch.tensor([[4.0, 4.0]]), torch.tensor([[1.0, 1.0]])
    )
    assert e[0, 0].tolist() == pytest.approx([4.0, 1.0, math.pi / 2])
    assert e[0, 1].tolist() == pytest.approx([2.0, 2.0, 0.0])


def _hand_map(a, b, angle, sx, sy):
    """Semi-axes and angle of diag(sx, sy) applied to an ellipse, from the
    extreme points of its image sampled finely (no SVD)."""
    phi = torch.linspace(0, 2 * math.pi, 200_001, dtype=torch.float64)
    c, s = math.cos(angle), math.sin(angle)
    x = a * phi.cos() * c - b * phi.sin() * s
    y = a * phi.cos() * s + b * phi.sin() * c
    px, py = sx * x, sy * y
    radius = (px**2 + py**2).sqrt()
    i = int(radius.argmax())
    major, minor = radius.max().item(), radius.min().item()
    major_angle = math.atan2(py[i].item(), px[i].item())
    return major, minor, major_angle


def test_map_ellipses_uniform_and_non_uniform_by_hand():
    e = torch.tensor([[[4.0, 1.0, 0.5], [2.0, 3.0, -1.0]]])
    out = map_ellipses(e, torch.tensor([[2.5, 2.5]]))
    assert out[0].tolist() == [
        pytest.approx([10.0, 2.5, 0.5]),
        pytest.approx([5.0, 7.5, -1.0]),
    ]
    out = map_ellipses(
        e.double(), torch.tensor([[2.0, 0.5]], dtype=torch.float64)
    )
    major, minor, angle = _hand_map(4.0, 1.0, 0.5, 2.0, 0.5)
    a, b, got_angle = out[0, 0].tolist()
    assert (a, b) == (
        pytest.approx(major, rel=1e-6),
        pytest.approx(minor, rel=1e-6),
    )
    # Axes are lines: compare angles modulo pi.
    diff = (got_angle - angle) % math.pi
    assert min(diff, math.pi - diff) < 1e-3
