"""AnisotropicLoss with learned scales: the likelihood, its gradient, the
fixed family unchanged, refusals, non-finite stops, optimiser and logs."""

import math

import pytest
import torch
from torch import nn
from toy_point_types import CUSTOM

from mmaniso.models.losses import AnisotropicLoss, NonFiniteLikelihoodError
from mmaniso.ops.cost import anisotropic_cost

# Previous and next curve neighbour of each toy point, written out by hand
# (None: no neighbour). Point 3 is a corner.
NEIGHBOURS = {
    0: (None, 1),
    1: (0, 2),
    2: (1, 3),
    3: (None, None),
    4: (3, 5),
    5: (4, 6),
    6: (5, 3),
}
SIZE = (64.0, 64.0)
LEARNED = dict(scales='learned', weighting='normalised', input_size=SIZE)


def _toy_shape(gen, batch):
    """A toy face per sample: a fixed shape, randomly rotated about its
    centre (so tangents differ per sample), in normalised coordinates."""
    base = torch.tensor(
        [
            [10.0, 20.0],
            [20.0, 23.0],
            [30.0, 24.0],
            [40.0, 22.0],
            [46.0, 30.0],
            [40.0, 38.0],
            [34.0, 30.0],
        ],
        dtype=torch.float64,
    )
    angle = torch.rand(batch, generator=gen, dtype=torch.float64) * 6.28
    c, s = angle.cos()[:, None], angle.sin()[:, None]
    centred = base - base.mean(0)
    x = c * centred[:, 0] - s * centred[:, 1] + 32.0
    y = s * centred[:, 0] + c * centred[:, 1] + 32.0
    return torch.stack([x, y], -1) / torch.tensor(SIZE, dtype=torch.float64)


def _hand_tangent(pixels, i, visible=None):
    """Unit tangent of toy point i in one sample, or None."""
    prev, nxt = NEIGHBOURS[i]

    def ok(j):
        return j is not None and (visible is None or visible[j])

    p = prev if ok(prev) else i
    n = nxt if ok(nxt) else i
    d = pixels[n] - pixels[p]
    length = math.hypot(float(d[0]), float(d[1]))
    return None if length <= 1e-6 else d / length


def _draw(gen, family, along, across, pixels):
    """Residuals in pixels from the known density along known tangents."""
    batch, num = pixels.shape[:2]
    if family == 'squared':
        u = torch.randn(batch, num, 2, generator=gen, dtype=torch.float64)
    else:
        # Laplace-like exp(-|u|)/(2 pi): radius Gamma(2, 1), uniform angle.
        e = torch.rand(batch, num, 2, generator=gen, dtype=torch.float64)
        rho = -e.log().sum(-1)
        phi = torch.rand(batch, num, generator=gen, dtype=torch.float64)
        phi = phi * 2 * math.pi
        u = torch.stack([rho * phi.cos(), rho * phi.sin()], -1)
    r = torch.zeros(batch, num, 2, dtype=torch.float64)
    for n in range(batch):
        for i in range(num):
            t = _hand_tangent(pixels[n], i)
            if t is None:  # the corner: isotropic, its scale is 'across'
                r[n, i] = u[n, i] * across[i]
            else:
                normal = torch.stack([-t[1], t[0]])
                r[n, i] = u[n, i, 0] * along[i] * t + (
                    u[n, i, 1] * across[i] * normal
                )
    return r


@pytest.mark.parametrize('family', ['squared', 'mahalanobis'])
def test_fitting_only_the_scales_recovers_known_scales(family):
    gen = torch.Generator().manual_seed(3)
    batch = 3000
    along = [4.0, 6.0, 3.5, 2.0, 4.5, 2.5, 5.5]
    across = [1.5, 2.0, 1.2, 2.0, 2.5, 1.1, 1.8]
    target = _toy_shape(gen, batch)
    pixels = target * torch.tensor(SIZE, dtype=torch.float64)
    r = _draw(gen, family, along, across, pixels)
    output = (target + r / torch.tensor(SIZE, dtype=torch.float64)).float()
    loss = AnisotropicLoss(CUSTOM, distance=family, **LEARNED)
    optimizer = torch.optim.Adam([loss.scale_params], lr=0.05)
    for _ in range(500):
        optimizer.zero_grad()
        loss(output, target.float()).backward()
        optimizer.step()
    got_along, got_across = loss.learned_scales()
    for i in range(7):
        if i != 3:
            assert got_along[i].item() == pytest.approx(along[i], rel=0.05)
        assert got_across[i].item() == pytest.approx(across[i], rel=0.05)


def naive_learned_loss(output, target, weight, params, distance, min_scale):
    """The mean NLL point by point, from the hand-written neighbours
    (float64 torch scalars, so autograd gives the reference gradient)."""
    size = torch.tensor(SIZE, dtype=torch.float64)
    batch, num = output.shape[:2]
    total = output.new_zeros(())
    for n in range(batch):
        visible = [bool(weight[n, i] > 0) for i in range(num)]
        pixels = target[n].detach() * size
        for i in range(num):
            if not visible[i]:
                continue
            scale = min_scale + params[i].exp()
            a, b = scale[0], scale[1]
            t = _hand_tangent(pixels, i, visible) if i != 3 else None
            if t is None:
                a = b = (a * b).sqrt() if i != 3 else b
                t = torch.tensor([1.0, 0.0], dtype=torch.float64)
            r = (output[n, i] - target[n, i]) * size
            u = (t[0] * r[0] + t[1] * r[1]) / a
            v = (t[0] * r[1] - t[1] * r[0]) / b
            q = u * u + v * v
            if distance == 'squared':
                e = q / 2
            else:
                e = (q + 1e-6).sqrt() - math.sqrt(1e-6)
            total = total + (e + (2 * math.pi * a * b).log()) * weight[n, i]
    return total / (batch * num)


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_gradient_matches_naive_float64_loop_and_gradcheck(distance):
    gen = torch.Generator().manual_seed(4)
    target = _toy_shape(gen, 3)
    output = target + 0.05 * torch.randn(
        3, 7, 2, generator=gen, dtype=torch.float64
    )
    weight = torch.ones(3, 7, dtype=torch.float64)
    weight[1, 2] = 0.0  # steers no tangent, costs 0
    loss = AnisotropicLoss(
        CUSTOM, distance=distance, use_target_weight=True, **LEARNED
    ).double()
    with torch.no_grad():
        loss.scale_params.add_(
            0.3 * torch.randn(7, 2, generator=gen, dtype=torch.float64)
        )
    params = loss.scale_params.detach().clone().requires_grad_(True)
    out = output.clone().requires_grad_(True)

    def fn(o, p):
        return torch.func.functional_call(
            loss, {'scale_params': p}, (o, target, weight)
        )

    got = fn(out, params)
    got_go, got_gp = torch.autograd.grad(got, (out, params))
    out2 = output.clone().requires_grad_(True)
    params2 = params.detach().clone().requires_grad_(True)
    want = naive_learned_loss(
        out2, target, weight, params2, distance, loss.min_scale
    )
    want_go, want_gp = torch.autograd.grad(want, (out2, params2))
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    assert torch.allclose(got_go, want_go, rtol=1e-9, atol=1e-12)
    assert torch.allclose(got_gp, want_gp, rtol=1e-9, atol=1e-12)
    assert torch.autograd.gradcheck(fn, (out, params))


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_learned_isotropic_and_tied_forms(distance):
    gen = torch.Generator().manual_seed(5)
    target = _toy_shape(gen, 2).float()
    output = target + 0.05 * torch.randn(2, 7, 2, generator=gen)
    iso = AnisotropicLoss(
        CUSTOM, distance=distance, **dict(LEARNED, scales='learned_isotropic')
    )
    assert tuple(iso.scale_params.shape) == (7, 1)
    along, across = iso.learned_scales()
    assert along.tolist() == pytest.approx([3.0] * 7)  # b everywhere
    # Isotropic: the value is that of 'learned' with a = b.
    aniso = AnisotropicLoss(CUSTOM, distance=distance, a=3.0, **LEARNED)
    assert iso(output, target).item() == pytest.approx(
        aniso(output, target).item(), rel=1e-6
    )
    tied = AnisotropicLoss(
        CUSTOM, distance=distance, tie_scales='curve', **LEARNED
    )
    # arc (0-2), loop (4-6), the corner: three groups.
    assert tuple(tied.scale_params.shape) == (3, 2)
    assert tied.scale_group.tolist() == [0, 0, 0, 2, 1, 1, 1]
    untied = AnisotropicLoss(CUSTOM, distance=distance, **LEARNED)
    assert tied(output, target).item() == pytest.approx(
        untied(output, target).item(), rel=1e-6
    )


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_learned_start_is_the_normalised_family_up_to_constants(distance):
    # At the start (a=5, b=3 along/across, b at the corner) the NLL minus
    # its normaliser is the normalised fixed cost / b (L1) or / 2b^2 (L2).
    # Set up as the test above, with its own seed and batch.
    gen = torch.Generator().manual_seed(6)
    target = _toy_shape(gen, 4).float()
    output = target + 0.05 * torch.randn(4, 7, 2, generator=gen)
    fixed = AnisotropicLoss(
        CUSTOM,
        distance=distance,
        weighting='normalised',
        input_size=SIZE,
        reduction='none',
    )(output, target)
    nll = AnisotropicLoss(
        CUSTOM, distance=distance, reduction='none', **LEARNED
    )(output, target)
    # The corner (3) starts at scale b as well: log(2 pi b^2) there.
    constant = torch.full((7,), math.log(2 * math.pi * 15.0))
    constant[3] = math.log(2 * math.pi * 9.0)
    shifted = nll - constant
    if distance == 'squared':
        expected = fixed / (2 * 9.0)
        assert torch.allclose(shifted, expected, rtol=1e-4, atol=1e-6)
    else:
        # m is taken as sqrt(q + eps) - sqrt(eps) in each one's own unit.
        assert torch.allclose(shifted, fixed / 3.0, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    'distance', ['squared', 'mahalanobis', 'softwing', 'wing']
)
@pytest.mark.parametrize('weighting', ['paper', 'normalised'])
def test_fixed_scales_bit_identical_to_the_formula_path(distance, weighting):
    gen = torch.Generator().manual_seed(7)
    target = torch.rand(3, 98, 2, generator=gen)
    output = target + 0.02 * torch.randn(3, 98, 2, generator=gen)
    weight = (torch.rand(3, 98, 1, generator=gen) > 0.2).float()
    loss = AnisotropicLoss(
        'wflw',
        distance=distance,
        weighting=weighting,
        use_target_weight=True,
        scales='fixed',
    )
    assert not list(loss.parameters())
    out1 = output.clone().requires_grad_(True)
    value = loss(out1, target, weight)
    value.backward()
    w = weight.reshape(3, 98)
    out2 = output.clone().requires_grad_(True)
    want = anisotropic_cost(
        out2,
        target,
        loss.neighbours,
        5.0,
        3.0,
        (256.0, 256.0),
        visible=w,
        ignore=w == 0,
        point_factor=w * (1.0 / (3 * 98)),
        distance=distance,
        weighting=weighting,
        wing_params=loss.wing_params or None,
    ).sum()
    want.backward()
    assert torch.equal(value, want)
    assert torch.equal(out1.grad, out2.grad)
    default = AnisotropicLoss(
        'wflw', distance=distance, weighting=weighting, use_target_weight=True
    )
    assert torch.equal(default(output, target, weight), want.detach())
    assert 'scale_params' not in default.state_dict()


@pytest.mark.parametrize(
    'options, match',
    [
        (dict(scales='learnt'), r"scales must be one of .*'learnt'"),
        (
            dict(scales='learned', distance='softwing'),
            r"distance='softwing'.*use distance='mahalanobis'",
        ),
        (
            dict(scales='learned', distance='wing'),
            r"log-density.*distance='wing'",
        ),
        (
            dict(scales='learned', distance='mahalanobis'),
            r"weighting='paper'; set weighting='normalised'",
        ),
        (dict(tie_scales='curve'), r"tie_scales='curve'.*scales='fixed'"),
        (dict(tie_scales='eye', scales='learned'), 'tie_scales must be'),
        (
            dict(scales='learned', weighting='normalised', min_scale=3.0),
            r'min_scale=3.0 must be >= 0 and below',
        ),
        (
            dict(scales='predicted', tie_scales='curve'),
            r"tie_scales='curve' ties learned scales",
        ),
    ],
)
def test_unserviceable_options_are_refused_at_build(options, match):
    with pytest.raises(ValueError, match=match):
        AnisotropicLoss('wflw', **options)
    with pytest.raises(TypeError, match='min_scale must be a number'):
        AnisotropicLoss('wflw', min_scale='0.3')


def test_learned_scales_are_parameters_in_the_state_dict():
    loss = AnisotropicLoss('wflw', **dict(LEARNED, input_size=None))
    assert [n for n, _ in loss.named_parameters()] == ['scale_params']
    state = loss.state_dict()
    assert tuple(state['scale_params'].shape) == (98, 2)
    other = AnisotropicLoss('wflw', **dict(LEARNED, input_size=None))
    with torch.no_grad():
        loss.scale_params.add_(0.5)
    other.load_state_dict(loss.state_dict())
    assert torch.equal(other.learned_scales()[0], loss.learned_scales()[0])


def test_scales_never_fall_below_the_floor():
    loss = AnisotropicLoss(CUSTOM, min_scale=0.5, **LEARNED)
    with torch.no_grad():
        loss.scale_params.fill_(-1e4)  # what a collapse would reach
    along, across = loss.learned_scales()
    assert bool((along >= 0.5).all()) and bool((across >= 0.5).all())
    target = torch.full((1, 7, 2), 0.5)
    assert torch.isfinite(loss(target, target))


def test_overflowing_scale_stops_naming_the_landmark():
    loss = AnisotropicLoss(CUSTOM, **LEARNED)
    with torch.no_grad():
        loss.scale_params[5, 1] = 200.0  # exp(200) overflows float32
    gen = torch.Generator().manual_seed(8)
    target = _toy_shape(gen, 2).float()
    with pytest.raises(
        NonFiniteLikelihoodError, match=r"landmark 5 \(curve 'loop'\)"
    ):
        loss(target + 0.01, target)


def test_non_finite_prediction_stops_naming_the_landmark():
    loss = AnisotropicLoss(CUSTOM, distance='mahalanobis', **LEARNED)
    gen = torch.Generator().manual_seed(9)
    target = _toy_shape(gen, 2).float()
    output = target.clone()
    output[1, 3, 0] = math.nan
    with pytest.raises(
        NonFiniteLikelihoodError, match=r'landmark 3 \(corner\) in sample 1'
    ):
        loss(output, target)
    # A masked point may hold NaN: it costs 0, nothing is raised.
    masked = AnisotropicLoss(
        CUSTOM, distance='mahalanobis', use_target_weight=True, **LEARNED
    )
    weight = torch.ones(2, 7, 1)
    weight[1, 3] = 0
    assert torch.isfinite(masked(output, target, weight))


def test_scale_params_only_with_predicted_scales():
    loss = AnisotropicLoss(CUSTOM, **LEARNED)
    target = torch.rand(2, 7, 2)
    with pytest.raises(ValueError, match="scales='predicted'"):
        loss(target, target, scale_params=torch.zeros(2, 7, 2))
    predicted = AnisotropicLoss(CUSTOM, **dict(LEARNED, scales='predicted'))
    with pytest.raises(ValueError, match="scales='predicted'"):
        predicted(target, target)
    with pytest.raises(ValueError, match=r'\(B, K, 2\) or \(B, K, 1\)'):
        predicted(target, target, scale_params=torch.zeros(2, 7, 3))


def test_optimizer_constructor_gives_scales_zero_weight_decay():
    from mmengine.registry import init_default_scope
    from mmpose.registry import OPTIM_WRAPPER_CONSTRUCTORS

    import mmaniso  # noqa: F401  (registers the constructor)

    init_default_scope('mmpose')

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(4, 4)
            self.head = nn.Module()
            self.head.loss_module = AnisotropicLoss(
                'wflw', **dict(LEARNED, input_size=None)
            )

    model = Model()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LearnedScalesOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            ),
        )
    )
    groups = constructor(model).optimizer.param_groups
    scale = model.head.loss_module.scale_params
    for group in groups:
        is_scale = any(p is scale for p in group['params'])
        assert group['weight_decay'] == (0.0 if is_scale else 0.05)
    assert any(any(p is scale for p in g['params']) for g in groups)


def test_optimizer_constructor_without_weight_decay_builds():
    from mmengine.registry import init_default_scope
    from mmpose.registry import OPTIM_WRAPPER_CONSTRUCTORS

    import mmaniso  # noqa: F401

    init_default_scope('mmpose')
    loss = AnisotropicLoss('wflw', **dict(LEARNED, input_size=None))
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LearnedScalesOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3)
            ),
            paramwise_cfg=dict(
                custom_keys={'.scale_params': dict(lr_mult=10.0)}
            ),
        )
    )
    model = nn.Module()
    model.loss_module = loss
    (group,) = constructor(model).optimizer.param_groups
    assert group['lr'] == pytest.approx(1e-2)
    assert group['weight_decay'] == 0
