"""AnisotropicLoss against a naive reference of the paper's equations."""

import math

import numpy as np
import pytest
import torch
from mmpose.registry import MODELS
from toy_point_types import CUSTOM

from mmaniso.datasets.point_types import get_point_types
from mmaniso.models.losses import AnisotropicLoss
from mmaniso.ops.tangents import curve_tangents
from mmaniso.ops.weights import anisotropic_quadratic_form
from mmaniso.synthface.face_template import mean_face


def reference_loss(
    output,
    target,
    weight,
    point_types,
    a=5.0,
    b=3.0,
    size=(256, 256),
    use_target_weight=False,
    reduction='mean',
    distance='squared',
    loss_weight=1.0,
    weighting='paper',
    wing_params=None,
):
    """The paper's cost and its family, point by point, from the curves."""
    pt = get_point_types(point_types)
    out = output.detach().double().numpy() * np.array(size)
    gt = target.detach().double().numpy() * np.array(size)
    batch, num = out.shape[:2]
    w = None if weight is None else weight.reshape(batch, num).double()
    visible = np.ones((batch, num), bool) if w is None else w.numpy() > 0
    costs = np.zeros((batch, num))
    # The tangent rule again, as tests/ops/test_tangents.py's reference
    # writes it: each test file keeps its own naive loop (STYLE.md).
    for n in range(batch):
        for i in range(num):
            tangent = None
            for curve in pt.curves:
                if i in pt.corners or i not in curve.indices:
                    continue
                idx, j = list(curve.indices), list(curve.indices).index(i)
                p = idx[j - 1] if (j > 0 or curve.closed) else None
                q = idx[(j + 1) % len(idx)]
                q = q if (j < len(idx) - 1 or curve.closed) else None
                p_ok = p is not None and visible[n, p]
                q_ok = q is not None and visible[n, q]
                if p_ok and q_ok:
                    d = gt[n, q] - gt[n, p]
                elif q_ok:
                    d = gt[n, q] - gt[n, i]
                elif p_ok:
                    d = gt[n, i] - gt[n, p]
                else:
                    d = np.zeros(2)
                if np.linalg.norm(d) > 1e-6:
                    tangent = d / np.linalg.norm(d)
            if tangent is None:
                weight_matrix = np.eye(2)
            elif weighting == 'normalised':
                tt = np.outer(tangent, tangent)
                weight_matrix = (np.eye(2) - tt) + (b / a) ** 2 * tt
            else:
                tt = np.outer(tangent, tangent)
                weight_matrix = tt / a**2 + (np.eye(2) - tt) / b**2
            r = out[n, i] - gt[n, i]
            cost = r @ weight_matrix @ r
            if distance != 'squared':
                cost = math.sqrt(cost)
            if distance == 'softwing':
                p = dict(omega1=2.0, omega2=20.0, epsilon=0.5)
                p.update(wing_params or {})
                big = p['omega2'] * math.log(1 + cost / p['epsilon'])
                big += p['omega1'] - p['omega2'] * math.log(
                    1 + p['omega1'] / p['epsilon']
                )
                cost = cost if cost < p['omega1'] else big
            elif distance == 'wing':
                p = dict(omega=10.0, epsilon=2.0)
                p.update(wing_params or {})
                c = p['omega'] - p['omega'] * math.log(
                    1 + p['omega'] / p['epsilon']
                )
                small = p['omega'] * math.log(1 + cost / p['epsilon'])
                cost = small if cost < p['omega'] else cost - c
            if use_target_weight:
                cost *= float(w[n, i])
            costs[n, i] = cost
    if reduction == 'mean':
        return costs.sum() / costs.size * loss_weight
    if reduction == 'sum':
        return costs.sum() * loss_weight
    return costs * loss_weight


def random_batch(num, batch=3, seed=0, dtype=torch.float32):
    """Face-like targets (template faces when K is 68 or 98), predictions
    a few pixels off, weights with some zeros."""
    gen = torch.Generator().manual_seed(seed)
    if num in (68, 98):
        face = torch.as_tensor(mean_face(num), dtype=dtype) * 0.3 + 0.5
        target = face + 0.01 * torch.randn(batch, num, 2, generator=gen)
    else:
        target = torch.rand(batch, num, 2, generator=gen, dtype=dtype)
    output = target + 0.02 * torch.randn(
        batch, num, 2, generator=gen, dtype=dtype
    )
    weight = (torch.rand(batch, num, 1, generator=gen) > 0.25).to(dtype)
    return output, target, weight


@pytest.mark.parametrize(
    'point_types, options',
    [
        ('wflw', dict()),
        ('300w', dict(use_target_weight=True, reduction='sum')),
        ('aflw', dict(use_target_weight=True, input_size=(192, 256))),
        ('cofw', dict(reduction='none', loss_weight=2.0)),
        (CUSTOM, dict(use_target_weight=True, a=4.0, b=1.5)),
        ('wflw', dict(distance='mahalanobis', use_target_weight=True)),
        ('wflw', dict(weighting='normalised', use_target_weight=True)),
        ('300w', dict(weighting='normalised', distance='mahalanobis')),
        ('wflw', dict(weighting='normalised', distance='softwing')),
        ('300w', dict(distance='softwing', use_target_weight=True)),
        ('wflw', dict(weighting='normalised', distance='wing')),
        (
            'aflw',
            dict(
                distance='wing',
                wing_params=dict(omega=4.0),
                input_size=(192, 256),
            ),
        ),
    ],
)
def test_matches_naive_reference(point_types, options):
    num = get_point_types(point_types).num_keypoints
    output, target, weight = random_batch(num, batch=2, seed=num)
    loss = AnisotropicLoss(point_types, **options)
    ref_options = dict(options)
    ref_options['size'] = ref_options.pop('input_size', (256, 256))
    expected = reference_loss(
        output, target, weight, point_types, **ref_options
    )
    got = loss(output, target, weight)
    # sqrt(q + eps) - sqrt(eps) differs from sqrt(q) by at most 1e-3 px.
    tol = 2e-3 if options.get('distance', 'squared') != 'squared' else 0
    np.testing.assert_allclose(
        got.detach().double().numpy(), expected, rtol=1e-4, atol=tol
    )


def test_equals_ops_functions_in_pixels():
    output, target, weight = random_batch(98, seed=5)
    loss = AnisotropicLoss(
        'wflw', input_size=(64, 48), reduction='none', use_target_weight=True
    )
    size = torch.tensor([64.0, 48.0])
    tangents, valid = curve_tangents(
        target * size, loss.neighbours, weight[..., 0]
    )
    expected = (
        anisotropic_quadratic_form(
            (output - target) * size, tangents, 5.0, 3.0, valid
        )
        * weight[..., 0]
    )
    assert torch.allclose(loss(output, target, weight), expected, rtol=1e-5)


def test_a_equals_b_equals_one_is_squared_pixel_l2():
    output, target, weight = random_batch(68, seed=1)
    loss = AnisotropicLoss('300w', a=1.0, b=1.0, input_size=(128, 128))
    expected = (((output - target) * 128) ** 2).sum(-1).mean()
    assert torch.allclose(loss(output, target, weight), expected)


def test_tangential_error_costs_b_over_a_squared_of_normal_error():
    face = torch.as_tensor(mean_face(98), dtype=torch.float64)[None]
    target = face * 0.3 + 0.5
    loss = AnisotropicLoss('wflw', reduction='none', input_size=(100, 100))
    tangents, valid = curve_tangents(target * 100, loss.neighbours)
    i = 20  # a jaw point
    assert valid[0, i]
    t = tangents[0, i] / 100  # one pixel along the tangent
    n = torch.stack([-t[1], t[0]])
    along, across = target.clone(), target.clone()
    along[0, i] += 2 * t
    across[0, i] += 2 * n
    ratio = loss(along, target)[0, i] / loss(across, target)[0, i]
    assert ratio.item() == pytest.approx((3.0 / 5.0) ** 2)
    assert loss(along, target)[0, i].item() == pytest.approx(4 / 25)
    # Corners cost the plain squared pixel error.
    corner = target.clone()
    corner[0, 60, 0] += 0.02
    assert loss(corner, target)[0, 60].item() == pytest.approx(4.0)


def test_rotation_invariance_and_zero_at_target():
    output, target, weight = random_batch(98, seed=2, dtype=torch.float64)
    loss = AnisotropicLoss('wflw', use_target_weight=True)
    angle = 0.7
    rot = torch.tensor(
        [
            [math.cos(angle), -math.sin(angle)],
            [math.sin(angle), math.cos(angle)],
        ],
        dtype=torch.float64,
    )

    def rotate(x):
        return (x - 0.5) @ rot.T + 0.5

    before = loss(output, target, weight)
    after = loss(rotate(output), rotate(target), weight)
    assert after.item() == pytest.approx(before.item(), rel=1e-9)
    # Anisotropy matters: the loss differs from the isotropic one.
    iso = AnisotropicLoss('wflw', a=1.0, b=1.0, use_target_weight=True)
    assert abs(iso(output, target, weight) - before) > 1e-3 * before
    target.requires_grad_(False)
    at_target = target.clone().requires_grad_(True)
    zero = loss(at_target, target, weight)
    zero.backward()
    assert zero.item() == 0.0
    assert torch.count_nonzero(at_target.grad) == 0


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
def test_gradcheck(distance):
    output, target, weight = random_batch(
        19, batch=2, seed=3, dtype=torch.float64
    )
    loss = AnisotropicLoss(
        'aflw', distance=distance, use_target_weight=True, input_size=(8, 8)
    )
    output.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: loss(x, target, weight), (output,)
    )


def test_mahalanobis_gradient_finite_at_zero_residual():
    _, target, weight = random_batch(98, seed=4)
    loss = AnisotropicLoss('wflw', distance='mahalanobis')
    output = target.clone().requires_grad_(True)
    value = loss(output, target, weight)
    value.backward()
    assert value.item() == 0.0
    assert torch.isfinite(output.grad).all()


def test_masked_points_do_not_change_the_loss():
    output, target, weight = random_batch(98, seed=6)
    loss = AnisotropicLoss('wflw', use_target_weight=True)
    before = loss(output, target, weight)
    masked = weight[..., 0] == 0
    assert masked.any()
    moved_out, moved_gt = output.clone(), target.clone()
    moved_out[masked] += 0.3
    # An invisible ground-truth point does not steer its neighbours either.
    moved_gt[masked] -= 0.2
    moved_out[masked] -= 0.2
    after = loss(moved_out, moved_gt, weight)
    assert torch.allclose(after, before)
    # Without masking the same change does matter.
    plain = AnisotropicLoss('wflw')
    assert not torch.allclose(
        plain(moved_out, target, weight), plain(output, target, weight)
    )


def test_nothing_visible_gives_zero_with_graph():
    output, target, _ = random_batch(98, seed=7)
    output.requires_grad_(True)
    loss = AnisotropicLoss('wflw', use_target_weight=True)
    value = loss(output, target, torch.zeros(3, 98))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.equal(output.grad, torch.zeros_like(output))
    empty = torch.zeros(0, 98, 2, requires_grad=True)
    value = loss(empty, empty.detach(), torch.zeros(0, 98))
    value.backward()
    assert value.item() == 0.0


def test_weight_shapes_and_reductions():
    output, target, weight = random_batch(98, seed=8)
    per_point = AnisotropicLoss('wflw', reduction='none')(
        output, target, weight
    )
    assert per_point.shape == (3, 98)
    total = AnisotropicLoss('wflw', reduction='sum')(output, target, weight)
    mean = AnisotropicLoss('wflw')(output, target, weight[..., 0])
    assert torch.allclose(total, per_point.sum())
    assert torch.allclose(mean, per_point.sum() / (3 * 98))
    twice = AnisotropicLoss('wflw', loss_weight=2.0)(output, target, weight)
    assert torch.allclose(twice, 2 * mean)


def test_float32_under_autocast_and_float64_kept():
    output, target, weight = random_batch(98, seed=9)
    loss = AnisotropicLoss('wflw', use_target_weight=True)
    expected = loss(output, target, weight)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = loss(output.bfloat16(), target.bfloat16(), weight.bfloat16())
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=0.05)
    double = loss(output.double(), target.double(), weight.double())
    assert double.dtype == torch.float64


def test_buffers_follow_the_module_and_are_not_saved():
    loss = AnisotropicLoss('wflw')
    assert loss.state_dict() == {}
    assert loss.neighbours.shape == (2, 98)
    assert 'neighbours' in dict(loss.named_buffers())


def test_clear_errors():
    with pytest.raises(
        ValueError,
        match="output has 68 keypoints but point types 'wflw' have 98",
    ):
        AnisotropicLoss('wflw')(torch.zeros(2, 68, 2), torch.zeros(2, 68, 2))
    with pytest.raises(ValueError, match="unknown point types 'wflw_98'"):
        AnisotropicLoss('wflw_98')
    with pytest.raises(ValueError, match="curve 'arc' has index 9"):
        AnisotropicLoss(
            dict(CUSTOM, curves=[dict(name='arc', indices=[0, 9])])
        )
    with pytest.raises(ValueError, match=r'target_weight must have shape'):
        AnisotropicLoss('aflw')(
            torch.zeros(1, 19, 2), torch.zeros(1, 19, 2), torch.zeros(1, 19, 2)
        )
    with pytest.raises(ValueError, match='needs a target_weight'):
        AnisotropicLoss('aflw', use_target_weight=True)(
            torch.zeros(1, 19, 2), torch.zeros(1, 19, 2)
        )
    with pytest.raises(ValueError, match='distance must be one of'):
        AnisotropicLoss('aflw', distance='l1')
    with pytest.raises(ValueError, match='reduction must be one of'):
        AnisotropicLoss('aflw', reduction='max')
    with pytest.raises(ValueError, match='input_size must be'):
        AnisotropicLoss('aflw', input_size=256)
    with pytest.raises(ValueError, match='a and b must be positive'):
        AnisotropicLoss('aflw', b=0)


def test_drop_in_regression_head():
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample

    head = MODELS.build(
        dict(
            type='RegressionHead',
            in_channels=16,
            num_joints=98,
            loss=dict(
                type='AnisotropicLoss', point_types='wflw', input_size=(64, 64)
            ),
            decoder=dict(type='RegressionLabel', input_size=(64, 64)),
        )
    )
    assert isinstance(head.loss_module, AnisotropicLoss)
    _, target, weight = random_batch(98, batch=2, seed=10)
    samples = []
    for n in range(2):
        sample = PoseDataSample()
        sample.gt_instance_labels = InstanceData(
            keypoint_labels=target[n : n + 1],
            keypoint_weights=weight[n : n + 1, :, 0],
        )
        samples.append(sample)
    feats = (torch.randn(2, 16),)  # after the neck's pooling
    losses = head.loss(feats, samples)
    assert losses['loss_kpt'].item() > 0
    losses['loss_kpt'].backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    output, target, weight = random_batch(98, seed=11)
    loss = AnisotropicLoss('wflw', use_target_weight=True)
    expected = loss(output, target, weight)
    got = loss.cuda()(output.cuda(), target.cuda(), weight.cuda())
    assert torch.allclose(got.cpu(), expected, rtol=1e-5)


# Masked points that other points read: 0 (the slot that points with no
# neighbour index), 20 (mid-jaw, neighbours 19 and 21), 50 (an eyebrow).
MASKED = ((0, 0), (0, 20), (1, 50))


def spoiled_batches(bad, place):
    """A batch with weight 0 at ``MASKED`` twice: once with ``bad``
    coordinates there (in ``place``: target, output or both), once with
    arbitrary finite ones."""
    output, target, weight = random_batch(98, seed=12)
    for n, i in MASKED:
        weight[n, i] = 0
    spoiled, finite = (output.clone(), target.clone()), (output, target)
    for n, i in MASKED:
        for k, name in enumerate(('output', 'target')):
            if place in (name, 'both'):
                spoiled[k][n, i] = bad
                finite[k][n, i] = torch.tensor([0.77, 0.13])
    return spoiled, finite, weight


def masked_mask(weight):
    return weight[..., 0] == 0


NON_FINITE_CASES = [
    (distance, bad, place)
    for distance in ('squared', 'mahalanobis')
    for bad in (math.nan, math.inf, -math.inf)
    for place in ('target', 'output', 'both')
] + [
    # A huge finite residual overflows the Mahalanobis form (whose W is
    # not scaled by the weight) to inf, and inf * 0 is NaN.
    ('mahalanobis', 1e30, 'target'),
    ('mahalanobis', 1e30, 'output'),
]


@pytest.mark.parametrize('distance, bad, place', NON_FINITE_CASES)
def test_masked_non_finite_point_costs_exactly_zero(distance, bad, place):
    spoiled, finite, weight = spoiled_batches(bad, place)
    masked = masked_mask(weight)
    for reduction in ('none', 'sum', 'mean'):
        loss = AnisotropicLoss(
            'wflw',
            distance=distance,
            reduction=reduction,
            use_target_weight=True,
        )
        results = []
        for output, target in (spoiled, finite):
            output = output.clone().requires_grad_(True)
            value = loss(output, target, weight)
            value.sum().backward()
            results.append((value.detach(), output.grad))
        (value, grad), (expected, expected_grad) = results
        assert torch.isfinite(value).all(), reduction
        assert torch.equal(value, expected), reduction
        assert torch.isfinite(grad).all(), reduction
        assert torch.count_nonzero(grad[masked]) == 0, reduction
        assert torch.equal(grad, expected_grad), reduction
        if reduction == 'none':
            # Its own cost is 0, its neighbours' are untouched.
            assert torch.count_nonzero(value[masked]) == 0
            assert torch.count_nonzero(value[~masked]) > 0


@pytest.mark.parametrize('distance', ['squared', 'mahalanobis'])
@pytest.mark.parametrize('bad', [math.nan, math.inf])
@pytest.mark.parametrize('place', ['target', 'both'])
def test_masked_non_finite_point_spares_neighbours_without_weighting(
    distance, bad, place
):
    # use_target_weight=False: every point counts, the masked one's own cost
    # is its own business, but it must not steer or spoil its neighbours.
    spoiled, finite, weight = spoiled_batches(bad, place)
    others = ~masked_mask(weight)
    loss = AnisotropicLoss('wflw', distance=distance, reduction='none')
    output = spoiled[0].clone().requires_grad_(True)
    value = loss(output, spoiled[1], weight)
    expected = loss(*finite, weight)
    assert torch.isfinite(value[others]).all()
    assert torch.equal(value[others], expected[others])
    value[others].sum().backward()
    assert torch.isfinite(output.grad[others]).all()


def _costs(point_types, output, target, weight, **options):
    loss = AnisotropicLoss(
        point_types, reduction='none', use_target_weight=True, **options
    )
    return loss(output, target, weight).detach()


def test_normalised_squared_is_b_squared_times_paper_on_curves():
    output, target, weight = random_batch(98, seed=11)
    pt = get_point_types('wflw')
    paper = _costs('wflw', output, target, weight)
    normalised = _costs('wflw', output, target, weight, weighting='normalised')
    corners = torch.zeros(98, dtype=torch.bool)
    corners[list(pt.corners)] = True
    on_curve = torch.zeros(98, dtype=torch.bool)
    for curve in pt.curves:
        on_curve[list(curve.indices)] = True
    curve_only = on_curve & ~corners
    assert curve_only.sum() > 50 and corners.sum() >= 8
    # Points with a tangent (a visible neighbour): b^2 = 9 times the
    # paper's; curve points without one have W = I in both.
    from mmaniso.ops.tangents import curve_differences

    w = weight[..., 0]
    has_tangent = (
        curve_differences(target, pt.neighbours(), w).norm(dim=-1) > 0
    )
    steered = curve_only[None] & has_tangent & (w > 0)
    assert steered.sum() > 100
    torch.testing.assert_close(
        normalised[steered], 9 * paper[steered], rtol=1e-4, atol=1e-6
    )
    lone = curve_only[None] & ~has_tangent & (w > 0)
    torch.testing.assert_close(normalised[lone], paper[lone])
    torch.testing.assert_close(
        normalised[:, corners], paper[:, corners], rtol=1e-6, atol=0
    )


@pytest.mark.parametrize('distance', ['softwing', 'wing'])
def test_isotropic_normalised_wing_forms_are_wing_of_pixel_error(distance):
    output, target, weight = random_batch(68, seed=12)
    got = _costs(
        '300w', output, target, weight, a=3.0, b=3.0,
        weighting='normalised', distance=distance,
    )  # fmt: skip
    error = ((output - target) * 256).norm(dim=-1).double()  # pixels
    # The documented m: sqrt(q + eps) - sqrt(eps), eps = 1e-6 px^2.
    error = (error.square() + 1e-6).sqrt() - 1e-3
    if distance == 'softwing':
        expected = torch.where(
            error < 2, error, 20 * torch.log1p(error / 0.5) + 2
            - 20 * math.log(1 + 2 / 0.5),
        )  # fmt: skip
    else:
        expected = torch.where(
            error < 10, 10 * torch.log1p(error / 2),
            error - (10 - 10 * math.log(1 + 10 / 2)),
        )  # fmt: skip
    expected = expected * weight[..., 0]
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)


def test_module_equals_the_ops_function():
    from mmaniso.ops.cost import anisotropic_cost

    output, target, weight = random_batch(98, seed=13)
    for options in (
        dict(),
        dict(distance='softwing', weighting='normalised'),
        dict(distance='mahalanobis', input_size=(64, 48)),
    ):
        loss = AnisotropicLoss(
            'wflw', reduction='none', use_target_weight=True, **options
        )
        w = weight[..., 0]
        expected = anisotropic_cost(
            output,
            target,
            get_point_types('wflw').neighbours(),
            5.0,
            3.0,
            options.get('input_size', (256, 256)),
            visible=w,
            ignore=w == 0,
            point_factor=w,
            distance=options.get('distance', 'squared'),
            weighting=options.get('weighting', 'paper'),
        )
        assert torch.equal(loss(output, target, weight), expected)


def test_family_options_are_validated():
    with pytest.raises(ValueError, match='weighting must be one of'):
        AnisotropicLoss('wflw', weighting='unit')
    with pytest.raises(ValueError, match='distance must be one of'):
        AnisotropicLoss('wflw', distance='huber')
    with pytest.raises(ValueError, match="do not apply to distance='wing'"):
        AnisotropicLoss('wflw', distance='wing', wing_params=dict(omega1=2))
    with pytest.raises(ValueError, match='do not apply'):
        AnisotropicLoss('wflw', wing_params=dict(omega=2))
