"""SynthFace's annotation models: each one's statistics on many draws of the
clean mean face, the default left bit for bit as it was, the record in the
JSON, the model names."""

import hashlib
import json

import numpy as np
import pytest
from conftest import load_tool

from mmaniso.datasets.point_types import get_point_types
from mmaniso.synthface import synth_sample, write_synthface
from mmaniso.synthface.face_template import mean_face, wflw_mean_face
from mmaniso.synthface.noise import (
    NOISE_MODELS,
    RESIDUALS_300W,
    SIGMA_C,
    SIGMA_N,
    SIGMA_T,
    SIGMAS_300W,
    annotation_noise,
    arc_lengths,
    catmull_rom,
    clean_tangents,
    curve_groups,
    describe_noise,
    interocular_distance,
    point_at_arc_length,
    resampling_key_points,
    robust_spread,
    second_difference_residuals,
    sigmas_300w,
)

LAYOUTS = ('wflw', '300w')


def _clean(layout: str) -> np.ndarray:
    """The mean face of a layout, inter-ocular distance about 59 px."""
    face = wflw_mean_face() if layout == 'wflw' else mean_face(68)
    return face * 50.0 + 64.0


def _draws(layout, noise, num, seed=0, **kwargs):
    pt = get_point_types(layout)
    clean = _clean(layout)
    rng = np.random.default_rng(seed)
    noisy = np.stack(
        [
            annotation_noise(clean, pt, rng, noise=noise, **kwargs)
            for _ in range(num)
        ]
    )
    return clean, noisy, interocular_distance(clean, pt)


def _frames(layout):
    """Unit tangent and normal of the clean curve at each point, and which
    points have them."""
    t, valid = clean_tangents(_clean(layout), layout)
    return t, np.stack([-t[:, 1], t[:, 0]], 1), valid


# ------------------------------------------------------------ arc: as it was
def _arc_reference(
    points,
    point_types,
    rng,
    interocular=None,
    sigma_t=SIGMA_T,
    sigma_n=SIGMA_N,
    sigma_c=SIGMA_C,
):
    """``annotation_noise`` as it was before the models could be chosen
    (commit 9fb8709), frozen here: the default must keep its output."""
    pt = get_point_types(point_types)
    points = np.asarray(points, dtype=np.float64)
    d = (
        interocular_distance(points, pt)
        if interocular is None
        else float(interocular)
    )
    # A frozen copy of noise.py's arc body, kept apart on purpose: it pins
    # that output.
    out = points.copy()
    corners = set(pt.corners)
    for curve in pt.curves:
        idx = np.array(curve.indices)
        moving = np.array([i not in corners for i in idx])
        if not moving.any():
            continue
        poly = points[idx]
        arc = arc_lengths(poly, curve.closed)[moving]
        arc = arc + rng.normal(0.0, sigma_t * d, len(arc))
        pos, normal = point_at_arc_length(poly, curve.closed, arc)
        across = rng.normal(0.0, sigma_n * d, len(arc))
        out[idx[moving]] = pos + across[:, None] * normal
    still = sorted(corners | set(pt.isolated))
    if still:
        out[still] += rng.normal(0.0, sigma_c * d, (len(still), 2))
    return out


@pytest.mark.parametrize('layout', LAYOUTS)
def test_default_is_the_old_arc_model_bit_for_bit(layout):
    clean = _clean(layout)
    for seed in range(5):
        ref = _arc_reference(clean, layout, np.random.default_rng(seed))
        default = annotation_noise(clean, layout, np.random.default_rng(seed))
        arc = annotation_noise(
            clean, layout, np.random.default_rng(seed), noise='arc'
        )
        assert ref.tobytes() == default.tobytes() == arc.tobytes()
    ref = _arc_reference(
        clean, layout, np.random.default_rng(9), 30.0, 0.1, 0.02, 0.03
    )
    new = annotation_noise(
        clean, layout, np.random.default_rng(9), 30.0, 0.1, 0.02, 0.03
    )
    assert ref.tobytes() == new.tobytes()


def test_default_output_matches_hashes_of_the_code_before_the_models():
    # Computed with commit 9fb8709 (numpy 2.4.6), before noise= existed.
    h = hashlib.sha256()
    for layout in LAYOUTS:
        clean = wflw_mean_face() if layout == 'wflw' else mean_face(68)
        rng = np.random.default_rng(2020)
        for _ in range(5):
            noisy = annotation_noise(clean * 50 + 64, layout, rng)
            h.update(np.round(noisy, 9).tobytes())
    assert h.hexdigest() == (
        '38596127fa21b75761499df0e87c57d0a6f85c2b614b53325479ff1854727e8d'
    )
    h = hashlib.sha256()
    for layout in LAYOUTS:
        for i in range(3):
            _, ann = synth_sample(7, 'train', i, size=48, layout=layout)
            h.update(json.dumps(ann['keypoints']).encode())
    assert h.hexdigest() == (
        'b30725095bf998269887aaf255443e21c9207cb38ef55e02586a0dfe69506ed0'
    )


# ------------------------------------------------------ tangent: zero-mean
def test_tangent_is_zero_mean_where_arc_is_pulled_into_the_bends():
    t, n, valid = _frames('wflw')
    num = 2000
    means = {}
    for noise in ('arc', 'tangent'):
        clean, noisy, d = _draws('wflw', noise, num)
        off = (noisy.mean(0) - clean) / d  # (K, 2)
        means[noise] = (
            (off * t).sum(1)[valid],
            (off * n).sum(1)[valid],
        )
    # Across the curve the sampling error is sigma_n / sqrt(N) = 0.02 % d:
    # arc's bias into the bends is tens of times that, tangent's is none.
    arc_n, tan_n = np.abs(means['arc'][1]), np.abs(means['tangent'][1])
    assert arc_n.max() > 0.01 and arc_n.mean() > 0.003
    assert tan_n.max() < 0.0015 and tan_n.mean() < 0.0005
    # Along it, within 4.5 standard errors everywhere.
    assert np.abs(means['tangent'][0]).max() < 4.5 * SIGMA_T / np.sqrt(num)


def test_tangent_moves_along_the_tangent_line_by_sigma_t():
    t, n, valid = _frames('wflw')
    clean, noisy, d = _draws('wflw', 'tangent', 1500, seed=1)
    delta = (noisy - clean) / d  # (N, K, 2)
    along = (delta * t).sum(-1)[:, valid]
    across = (delta * n).sum(-1)[:, valid]
    assert abs(along.std() - SIGMA_T) < 0.05 * SIGMA_T
    assert abs(across.std() - SIGMA_N) < 0.05 * SIGMA_N
    assert abs(np.corrcoef(along.ravel(), across.ravel())[0, 1]) < 0.05
    still = ~valid
    assert still.sum() == 10  # 8 corners, 2 pupils
    iso = delta[:, still]
    for axis in (0, 1):
        assert abs(iso[..., axis].std() - SIGMA_C) < 0.08 * SIGMA_C


# ------------------------------------------ resampled: shared along-curve
@pytest.mark.parametrize('layout', LAYOUTS)
def test_resampled_shares_the_error_between_moving_key_points(layout):
    pt = get_point_types(layout)
    clean, noisy, d = _draws(layout, 'resampled', 300, seed=2)
    along, _, idx = second_difference_residuals(noisy, pt)
    along_clean, _, _ = second_difference_residuals(clean[None], pt)
    # What the noise adds to the second difference along the curve.
    added = along - along_clean
    keys = set(resampling_key_points(pt))
    nonkey = np.array([i not in keys for i in idx])
    groups = curve_groups(pt)
    # Moderate curvature (jaw, brows): the points between key points move
    # together, to < 0.1 % of d of a straight interpolation.
    moderate = np.isin(idx, np.concatenate([groups['jaw'], groups['brow']]))
    shared = np.abs(added[:, nonkey & moderate])
    assert np.quantile(shared, 0.99) < 0.001 and shared.max() < 0.002
    # Everywhere (short, bent strokes of eyes and lips included) far below
    # what iid tangent noise adds (its spread is sqrt(1.5) sigma_t).
    _, tangent, _ = _draws(layout, 'tangent', 300, seed=2)
    along_t, _, _ = second_difference_residuals(tangent, pt)
    assert robust_spread(along_t[:, nonkey]) > 0.06
    iid = np.quantile(np.abs(along_t - along_clean)[:, nonkey], 0.99)
    assert np.quantile(np.abs(added[:, nonkey]), 0.99) < 0.2 * iid
    # The key points move: along the curve by sigma_t (ends, anchors) ...
    t, _, valid = _frames(layout)
    key = np.array(sorted(keys))
    key_curve = key[valid[key]]
    along_key = ((noisy - clean)[:, key_curve] * t[key_curve]).sum(-1) / d
    assert abs(along_key.std() - SIGMA_T) < 0.12 * SIGMA_T
    # ... corners in x and y by sigma_c; and the points between them move
    # along the curve too (their share of the key points' motion).
    corners = (noisy - clean)[:, list(pt.corners)] / d
    assert abs(corners.std() - SIGMA_C) < 0.1 * SIGMA_C
    between = np.array([i for i in range(len(clean)) if valid[i]
                        and i not in keys])  # fmt: skip
    moved = ((noisy - clean)[:, between] * t[between]).sum(-1) / d
    assert 0.2 * SIGMA_T < moved.std() < SIGMA_T


def _distance_to_spline(points, dense):
    """Each point's distance to the nearest dense spline point."""
    gaps = np.linalg.norm(points[..., None, :] - dense, axis=-1)
    return gaps.min(-1)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_resampled_points_between_key_points_stay_on_the_curve(layout):
    # With sigma_n = sigma_c = 0 the key points only slide along their
    # tangent lines, so every other curve point must stay on the clean
    # curve: the along-curve error must not leak across it where two key
    # points' tangents differ (the jaw's ends and the chin). Interpolating
    # the key points' x/y shifts put the middle of the jaw 2-3 % of d off.
    pt = get_point_types(layout)
    clean, noisy, d = _draws(
        layout, 'resampled', 60, seed=4, sigma_n=0.0, sigma_c=0.0
    )
    jaw = next(c for c in pt.curves if c.name == 'jaw')
    dense = catmull_rom(clean[list(jaw.indices)], samples=64)
    # An end key point slides along its tangent line, past the curve's end
    # too, and the points next to it follow: the curve goes on straight.
    steps = np.linspace(0.0, 0.5 * d, 200)[:, None]
    start = dense[0] - dense[1]
    end = dense[-1] - dense[-2]
    dense = np.concatenate(
        [
            dense[0] + steps * start / np.linalg.norm(start),
            dense,
            dense[-1] + steps * end / np.linalg.norm(end),
        ]
    )
    keys = set(resampling_key_points(pt))
    inner = [i for i in jaw.indices if i not in keys]
    off = _distance_to_spline(noisy[:, inner], dense) / d
    assert np.sqrt((off**2).mean()) < 0.003 and off.max() < 0.03
    # They still move along it: their share of the key points' slide.
    t, _, _ = _frames(layout)
    along = ((noisy - clean)[:, inner] * t[inner]).sum(-1) / d
    assert along.std() > 0.3 * SIGMA_T


@pytest.mark.parametrize('layout', LAYOUTS)
def test_resampled_moves_key_points_across_by_sigma_n_alone(layout):
    # Key points move as tangent_noise moves them (the smooth normal field
    # is pinned to 0 there, also at the chin and the other anchors in the
    # middle of a stroke); points between them by about sigma_n, at most
    # the key points' share plus the field.
    pt = get_point_types(layout)
    clean, noisy, d = _draws(layout, 'resampled', 600, seed=5)
    _, n, valid = _frames(layout)
    across = ((noisy - clean) * n).sum(-1) / d  # (draws, K)
    keys = set(resampling_key_points(pt))
    key = [i for i in sorted(keys) if valid[i] and i not in pt.corners]
    np.testing.assert_allclose(across[:, key].std(0), SIGMA_N, rtol=0.15)
    jaw = next(c for c in pt.curves if c.name == 'jaw')
    inner = [i for i in jaw.indices if i not in keys]
    spread = across[:, inner].std(0)
    assert spread.max() < 1.6 * SIGMA_N and spread.min() > 0.5 * SIGMA_N


@pytest.mark.parametrize('layout', LAYOUTS)
def test_resampled_without_noise_gives_the_clean_points(layout):
    pt = get_point_types(layout)
    clean = _clean(layout)
    out = annotation_noise(
        clean,
        pt,
        np.random.default_rng(0),
        sigma_t=0,
        sigma_n=0,
        sigma_c=0,
        noise='resampled',
    )
    np.testing.assert_allclose(out, clean, atol=1e-6)


def test_resampled_is_zero_mean_to_first_order():
    # Unlike arc, no systematic offset beyond what bending the spline and
    # sampling error explain (mean over curve points, % of d).
    t, n, valid = _frames('wflw')
    clean, noisy, d = _draws('wflw', 'resampled', 1000, seed=3)
    off = (noisy.mean(0) - clean) / d
    assert np.linalg.norm(off[valid], axis=1).mean() < 0.004


def test_catmull_rom_passes_through_its_points_and_closes():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    dense = catmull_rom(square, closed=True, samples=8)
    assert dense.shape == (33, 2)
    np.testing.assert_allclose(dense[::8], square[[0, 1, 2, 3, 0]])
    line = np.stack([np.linspace(0, 3, 4), np.zeros(4)], 1)
    dense = catmull_rom(line, samples=10)
    np.testing.assert_allclose(dense[:, 1], 0.0, atol=1e-12)
    assert np.all(np.diff(dense[:, 0]) > 0)


# ------------------------------------------------ 300w: calibrated residuals
def test_300w_reproduces_the_real_residuals_it_was_calibrated_on():
    pt = get_point_types('300w')
    _, noisy, _ = _draws('300w', '300w', 3000, seed=3)
    along, across, idx = second_difference_residuals(noisy, pt)
    groups = dict(curve_groups(pt), all=idx)
    for group, members in groups.items():
        cols = np.isin(idx, members)
        for got, want in zip(
            (robust_spread(along[:, cols]), robust_spread(across[:, cols])),
            RESIDUALS_300W[group],
        ):
            assert abs(got - want) < 0.08 * want, group


def test_300w_sigmas_by_curve_group_in_both_layouts():
    for layout in LAYOUTS:
        pt = get_point_types(layout)
        sig_t, sig_n = sigmas_300w(pt)
        groups = curve_groups(pt)
        assert set(groups) == set(SIGMAS_300W) - {'all'}
        for group, members in groups.items():
            np.testing.assert_array_equal(
                sig_t[members], SIGMAS_300W[group][0]
            )
            np.testing.assert_array_equal(
                sig_n[members], SIGMAS_300W[group][1]
            )
        assert np.all(sig_t[list(pt.corners)] == 0)
    custom = dict(num_keypoints=3, curves=[dict(name='c', indices=[0, 1, 2])])
    assert sigmas_300w(custom)[0].tolist() == [SIGMAS_300W['all'][0]] * 3


def test_300w_refuses_sigmas_of_its_own():
    with pytest.raises(ValueError, match="noise='tangent'"):
        annotation_noise(
            _clean('wflw'),
            'wflw',
            np.random.default_rng(0),
            sigma_t=0.02,
            noise='300w',
        )


def test_second_difference_residuals_by_hand():
    # A right angle 0 -> 1 -> 2 bent at 1, and a straight, uneven run.
    pts = np.array(
        [
            [0.0, 0.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [0.0, 5.0],
            [0.0, 6.0],
            [0.0, 9.0],
        ]
    )
    pt = dict(
        num_keypoints=6,
        curves=[
            dict(name='a', indices=[0, 1, 2]),
            dict(name='b', indices=[3, 4, 5]),
        ],
    )
    along, across, idx = second_difference_residuals(pts, pt, 2.0)
    assert idx.tolist() == [1, 4]
    # r_1 = (0.5, -0.5), t = (1, 1)/sqrt 2: along 0, across -sqrt(0.5).
    np.testing.assert_allclose(along, [0.0, -1.0 / 2.0], atol=1e-12)
    np.testing.assert_allclose(across, [-np.sqrt(0.5) / 2.0, 0.0], atol=1e-12)


# ------------------------------------------------------ names, the record
def test_unknown_model_names_the_choices():
    for call in (
        lambda: annotation_noise(
            _clean('wflw'), 'wflw', np.random.default_rng(0), noise='iid'
        ),
        lambda: describe_noise('Arc'),
        lambda: write_synthface(
            '/nonexistent', dict(train=1), noise='wflw', progress=False
        ),
    ):
        with pytest.raises(ValueError, match='arc, tangent, resampled, 300w'):
            call()


@pytest.mark.parametrize('noise', NOISE_MODELS)
def test_every_model_runs_on_both_layouts(noise):
    for layout in LAYOUTS:
        clean = _clean(layout)
        rng = np.random.default_rng(4)
        out = annotation_noise(clean, layout, rng, noise=noise)
        assert out.shape == clean.shape and np.isfinite(out).all()
        err = np.linalg.norm(out - clean, axis=1) / 59.0
        assert 0.001 < np.median(err) < 0.2


def test_writer_and_tool_record_the_model(tmp_path):
    paths = write_synthface(
        str(tmp_path / 'tan'),
        dict(train=2),
        size=32,
        noise='tangent',
        progress=False,
    )
    with open(paths['train']) as f:
        tan = json.load(f)
    info = tan['info']['noise']
    assert info['name'] == 'tangent'
    assert (info['sigma_t'], info['sigma_n']) == (SIGMA_T, SIGMA_N)
    arc, ann_tan = synth_sample(0, 'train', 0, size=32), tan['annotations']
    assert arc[1]['keypoints_clean'] == ann_tan[0]['keypoints_clean']
    assert arc[1]['keypoints'] != ann_tan[0]['keypoints']

    module = load_tool('tools', 'dataset_converters', 'make_synthface.py')
    paths = module.main(
        [
            str(tmp_path / 'w300'),
            '--num-train',
            '2',
            '--num-test',
            '0',
            '--size',
            '32',
            '--workers',
            '1',
            '--layout',
            '300w',
            '--noise',
            '300w',
        ]
    )
    with open(paths['train']) as f:
        info = json.load(f)['info']['noise']
    assert info['name'] == '300w'
    assert info['sigma_t'] == {g: s[0] for g, s in SIGMAS_300W.items()}
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / 'bad'), '--noise', 'gauss'])
    with pytest.raises(SystemExit, match='noise=.tangent.'):
        module.main(
            [str(tmp_path / 'bad'), '--noise', '300w', '--sigma-t', '0.02']
        )


@pytest.mark.parametrize('bad', [float('nan'), 0.0, -59.0, float('inf')])
def test_a_scale_that_is_not_a_positive_number_is_refused(bad):
    with pytest.raises(ValueError, match='interocular'):
        annotation_noise(
            _clean('wflw'), 'wflw', np.random.default_rng(0),
            interocular=bad, noise='tangent',
        )  # fmt: skip
