"""mmaniso.ops.batch_affine: MMPose's top-down augmentation, batched."""

import math

import numpy as np
import pytest
import torch

from mmaniso.ops.batch_affine import (
    TopdownParams,
    draw_topdown_params,
    fix_aspect_ratio,
    invert_affine,
    regression_targets,
    swap_flipped,
    topdown_affine_matrix,
    topdown_augment,
    topdown_warp_matrix,
    transform_points,
    truncated_normal,
    warp_images,
)

# The paper configs' RandomBBoxTransform (MMPose's defaults otherwise).
PAPER = dict(scale_factor=(0.75, 1.25), rotate_factor=60.0)
N_DRAWS = 20000


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_truncated_normal_bounds_shape_and_errors():
    x = truncated_normal((3, 500), generator=_gen())
    assert x.shape == (3, 500) and x.dtype == torch.float32
    assert float(x.abs().max()) <= 1.0
    y = truncated_normal((1000,), low=-0.5, high=2.0, generator=_gen())
    assert -0.5 <= float(y.min()) and float(y.max()) <= 2.0
    with pytest.raises(ValueError, match='low < high'):
        truncated_normal((2,), low=1.0, high=1.0)


def test_truncated_normal_matches_scipy():
    from scipy import stats

    ours = truncated_normal((N_DRAWS,), generator=_gen(1)).numpy()
    theirs = stats.truncnorm.rvs(-1, 1, size=N_DRAWS, random_state=1)
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    # Moments of truncnorm(-1, 1): mean 0, variance 0.2911.
    assert abs(ours.mean()) < 0.01
    assert abs(ours.var() - stats.truncnorm.var(-1, 1)) < 0.01


def _mmpose_draws(n, seed, **kwargs):
    """MMPose's own draws: RandomBBoxTransform and RandomFlip."""
    from mmpose.datasets.transforms import RandomBBoxTransform, RandomFlip

    np.random.seed(seed)
    # Held in a name: the decorated method keeps only a weak reference.
    bbox = RandomBBoxTransform(**kwargs)
    offset, scale, rotate = bbox._get_transform_params(n)
    flip = RandomFlip(direction='horizontal')
    flips = [flip._choose_direction() == 'horizontal' for _ in range(n)]
    return dict(
        offset_x=offset[:, 0],
        offset_y=offset[:, 1],
        scale=scale[:, 0],
        rotation=rotate,
        flip=np.array(flips),
    )


@pytest.mark.parametrize('settings', [{}, PAPER], ids=['defaults', 'paper'])
def test_draws_follow_mmpose_distributions(settings):
    from scipy import stats

    theirs = _mmpose_draws(N_DRAWS, 0, **settings)
    p = draw_topdown_params(N_DRAWS, _gen(2), **settings)
    ours = dict(
        offset_x=p.offset[:, 0].numpy(),
        offset_y=p.offset[:, 1].numpy(),
        scale=p.scale.numpy(),
        rotation=p.rotation.numpy(),
        flip=p.flip.numpy(),
    )
    for name in ('offset_x', 'offset_y', 'scale', 'rotation'):
        a, b = ours[name], theirs[name]
        assert stats.ks_2samp(a, b).pvalue > 1e-3, name
        assert a.min() >= b.min() - 0.05 * abs(b.min()) - 1e-6, name
        assert a.max() <= b.max() + 0.05 * abs(b.max()) + 1e-6, name
    # The gates: shifted with probability 0.3 (both axes at once), rotated
    # with 0.6, flipped with 0.5; 4 standard errors.
    se = 4 * math.sqrt(0.25 / N_DRAWS)
    for prob, draws in (
        (0.3, (ours['offset_x'] != 0) & (ours['offset_y'] != 0)),
        (0.3, (theirs['offset_x'] != 0)),
        (0.6, ours['rotation'] != 0),
        (0.5, ours['flip']),
    ):
        assert abs(draws.mean() - prob) < se
    assert np.array_equal(ours['offset_x'] == 0, ours['offset_y'] == 0)


def test_draws_are_a_function_of_the_generator():
    a = draw_topdown_params(64, _gen(5), **PAPER)
    b = draw_topdown_params(64, _gen(5), **PAPER)
    c = draw_topdown_params(64, _gen(6), **PAPER)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a.rotation, c.rotation)
    # Probabilities 0 and 1 and a degenerate scale range.
    fixed = draw_topdown_params(
        32,
        _gen(),
        flip_prob=1.0,
        shift_prob=0.0,
        scale_factor=(1.2, 1.2),
        rotate_prob=0.0,
    )
    assert bool(fixed.flip.all()) and not bool(fixed.offset.any())
    assert torch.allclose(fixed.scale, torch.full((32,), 1.2))
    assert not bool(fixed.rotation.any())


def test_draw_errors():
    with pytest.raises(ValueError, match='flip_prob must be in'):
        draw_topdown_params(2, flip_prob=1.5)
    with pytest.raises(ValueError, match='rotate_prob must be in'):
        draw_topdown_params(2, rotate_prob=-0.1)
    with pytest.raises(ValueError, match='scale_factor must be'):
        draw_topdown_params(2, scale_factor=(1.5, 0.5))


def test_warp_matrix_is_mmposes():
    from mmpose.structures.bbox import get_warp_matrix

    rng = np.random.default_rng(0)
    center = rng.uniform(50, 400, (16, 2)).astype(np.float32)
    side = rng.uniform(40, 300, (16, 1)).astype(np.float32)
    scale = np.hstack([side, side * 0.75])  # input 4:3 (w, h)
    rotation = rng.uniform(-80, 80, 16).astype(np.float32)
    ours = topdown_warp_matrix(
        torch.from_numpy(center),
        torch.from_numpy(scale),
        torch.from_numpy(rotation),
        (256, 192),
    ).numpy()
    for i in range(16):
        theirs = get_warp_matrix(center[i], scale[i], rotation[i], (256, 192))
        np.testing.assert_allclose(ours[i], theirs, rtol=1e-4, atol=1e-3)


def test_fix_aspect_ratio_widens_the_short_side():
    scale = torch.tensor([[100.0, 50.0], [50.0, 100.0]])
    out = fix_aspect_ratio(scale, 1.0)
    assert out.tolist() == [[100.0, 100.0], [100.0, 100.0]]
    assert fix_aspect_ratio(scale, 2.0).tolist() == [
        [100.0, 50.0],
        [200.0, 100.0],
    ]


def _params(b, flip=False, offset=(0.0, 0.0), scale=1.0, rotation=0.0):
    return TopdownParams(
        torch.full((b,), flip),
        torch.tensor(offset).expand(b, 2),
        torch.full((b,), float(scale)),
        torch.full((b,), float(rotation)),
    )


def test_flip_is_folded_into_the_map():
    center = torch.tensor([[40.0, 30.0]])
    scale = torch.tensor([[50.0, 50.0]])
    plain = topdown_affine_matrix(center, scale, _params(1), (64, 64), 100)
    flipped = topdown_affine_matrix(
        center, scale, _params(1, flip=True), (64, 64), 100
    )
    p = torch.tensor([[[35.0, 20.0], [52.0, 41.0]]])
    # A point and its mirror about the box centre swap sides in the input.
    mirror = p.clone()
    mirror[..., 0] = 2 * center[0, 0] - p[..., 0]
    a = transform_points(p, plain)
    b = transform_points(mirror, flipped)
    assert torch.allclose(a, b, atol=1e-4)
    # The flip axis does not matter: the box moves with the image.
    other = topdown_affine_matrix(
        center, scale, _params(1, flip=True), (64, 64), 333
    )
    assert torch.allclose(
        transform_points(p, other), transform_points(p, flipped), atol=1e-3
    )


def test_invert_affine():
    rng = np.random.default_rng(1)
    m = torch.from_numpy(rng.normal(size=(8, 2, 3)))
    inv = invert_affine(m)
    p = torch.from_numpy(rng.normal(size=(8, 5, 2)))
    back = transform_points(transform_points(p, m), inv)
    assert torch.allclose(back, p, atol=1e-9)


def test_warp_images_is_cv2_warp_affine():
    import cv2

    rng = np.random.default_rng(2)
    # A smooth image: OpenCV quantises coordinates to 1/32 px.
    coarse = rng.uniform(0, 255, (8, 10, 3)).astype(np.float32)
    img = cv2.resize(coarse, (120, 90), interpolation=cv2.INTER_CUBIC)
    m = topdown_warp_matrix(
        torch.tensor([[55.0, 50.0]]),
        torch.tensor([[110.0, 110.0]]),
        torch.tensor([25.0]),
        (64, 64),
    )
    ours = warp_images(
        torch.from_numpy(img).permute(2, 0, 1)[None], m, (64, 64)
    )[0].permute(1, 2, 0)
    theirs = cv2.warpAffine(
        img, m[0].numpy(), (64, 64), flags=cv2.INTER_LINEAR
    )
    diff = np.abs(ours.numpy() - theirs)
    if int(cv2.__version__.split('.')[0]) >= 5:
        # OpenCV 5 warps float images in float (measured: 0.004 at most).
        assert np.percentile(diff, 99) < 0.05 and diff.max() < 0.5
    else:
        # OpenCV 4 snaps sample positions to 1/32 px: a fraction of a grey
        # level inside (measured with 4.10: 99th percentile 0.54, mean
        # 0.09), a few levels where the edge of the source cuts a pixel.
        assert np.percentile(diff, 99) < 1.0 and diff.mean() < 0.15
        assert diff.max() < 8
    # Outside the source: zeros in both.
    outside = theirs.max(-1) == 0
    assert outside.mean() > 0.05
    assert np.abs(ours.numpy()[outside]).mean() < 0.1


def test_warp_images_shapes_errors_and_gradient():
    m = topdown_warp_matrix(
        torch.tensor([[5.0, 5.0]] * 2),
        torch.tensor([[8.0, 8.0]] * 2),
        torch.zeros(2),
        (6, 4),
    )
    out = warp_images(torch.rand(2, 3, 10, 12), m, (6, 4))
    assert out.shape == (2, 3, 4, 6)
    with pytest.raises(TypeError, match='floating point'):
        warp_images(torch.zeros(2, 3, 10, 12, dtype=torch.uint8), m, (6, 4))
    x = torch.rand(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    mat = topdown_warp_matrix(
        torch.tensor([[2.0, 2.0]], dtype=torch.float64),
        torch.tensor([[4.0, 4.0]], dtype=torch.float64),
        torch.tensor([10.0], dtype=torch.float64),
        (3, 3),
    )
    assert torch.autograd.gradcheck(
        lambda im: warp_images(im, mat, (3, 3)), (x,)
    )


def test_swap_flipped_only_where_flipped():
    values = torch.arange(8.0).reshape(2, 4)
    index = torch.tensor([3, 2, 1, 0])
    out = swap_flipped(values, torch.tensor([True, False]), index)
    assert out.tolist() == [[3.0, 2.0, 1.0, 0.0], [4.0, 5.0, 6.0, 7.0]]
    pts = torch.arange(16.0).reshape(2, 4, 2)
    per_sample = torch.tensor([[1, 0, 2, 3], [0, 1, 3, 2]])
    out = swap_flipped(pts, torch.tensor([True, True]), per_sample)
    assert out[0, 0].tolist() == [2.0, 3.0] and out[1, 2].tolist() == [
        14.0,
        15.0,
    ]


def test_regression_targets_zero_weight_outside_and_invisible():
    kp = torch.tensor(
        [[[0.0, 0.0], [63.0, 63.0], [-0.01, 5.0], [63.5, 1.0], [10.0, 10.0]]]
    )
    vis = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.4]])
    labels, weights = regression_targets(kp, vis, (64, 64))
    assert weights.tolist() == [[1.0, 1.0, 0.0, 0.0, 0.0]]
    assert torch.allclose(labels, kp / 64)


def test_topdown_augment_shapes_and_errors():
    b, k = 3, 5
    out = topdown_augment(
        torch.rand(b, 3, 50, 50),
        torch.full((b, 2), 25.0),
        torch.full((b, 2), 30.0),
        torch.rand(b, k, 2) * 50,
        torch.ones(b, k),
        draw_topdown_params(b, _gen()),
        (32, 24),
        torch.arange(k).flip(0),
    )
    assert out.images.shape == (b, 3, 24, 32)
    assert out.keypoints.shape == out.keypoint_labels.shape == (b, k, 2)
    assert out.keypoint_weights.shape == (b, k) and out.matrix.shape == (
        b,
        2,
        3,
    )
    with pytest.raises(ValueError, match='expected images'):
        topdown_augment(
            torch.rand(3, 50, 50),
            torch.zeros(1, 2),
            torch.ones(1, 2),
            torch.zeros(1, k, 2),
            torch.ones(1, k),
            draw_topdown_params(1),
            (32, 32),
            torch.arange(k),
        )


def _naive_keypoints(kp, vis, center, scale, params, size, width, index):
    """Per-sample MMPose order: flip, shift/scale, fix aspect, warp."""
    from mmpose.structures.bbox import get_warp_matrix

    out = []
    for i in range(len(kp)):
        p, v = kp[i].copy(), vis[i].copy()
        c, s = center[i].copy(), scale[i].copy()
        if params.flip[i]:
            p, v = p[index], v[index]
            p[:, 0] = width - 1 - p[:, 0]
            c[0] = width - 1 - c[0]
        c = c + params.offset[i].numpy() * s
        s = s * float(params.scale[i])
        w, h = size
        s = (
            np.array([s[0], s[0] / (w / h)])
            if s[0] > s[1] * w / h
            else np.array([s[1] * w / h, s[1]])
        )
        m = get_warp_matrix(c, s, float(params.rotation[i]), size)
        out.append(p @ m[:, :2].T + m[:, 2])
    return np.stack(out)


def test_keypoints_against_a_per_sample_loop():
    rng = np.random.default_rng(3)
    b, k, width = 16, 6, 200
    kp = rng.uniform(20, 180, (b, k, 2)).astype(np.float32)
    vis = np.ones((b, k), np.float32)
    center = rng.uniform(80, 120, (b, 2)).astype(np.float32)
    scale = rng.uniform(60, 100, (b, 2)).astype(np.float32)
    index = np.array([5, 4, 3, 2, 1, 0])
    params = draw_topdown_params(b, _gen(7))
    out = topdown_augment(
        torch.zeros(b, 1, width, width),
        torch.from_numpy(center),
        torch.from_numpy(scale),
        torch.from_numpy(kp),
        torch.from_numpy(vis),
        params,
        (64, 48),
        torch.from_numpy(index),
    )
    naive = _naive_keypoints(
        kp, vis, center, scale, params, (64, 48), width, index
    )
    assert np.abs(out.keypoints.numpy() - naive).max() < 1e-3
