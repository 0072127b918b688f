"""tools/misc/mechanism_check.py and mmaniso.evaluation.mechanism:
OLS vs inverse-noise-covariance WLS read-outs of frozen features.

The solver is checked against explicit normal equations built face by
face; the statistics on a synthetic linear problem with known
coefficients; the tool end to end on a tiny generated SynthFace with a
randomly initialised model.
"""

import contextlib
import io
import json
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool

from mmaniso.evaluation.mechanism import (
    # The names the tool imports too: a list, not logic.
    gls_fit,
    linear_predict,
    local_frames,
    local_residuals,
    noise_covariances,
    ols_fit,
    precision_weights,
    weighted_grams,
    with_intercept,
)

CONFIG = osp.join(
    REPO, 'configs', 'synthface', 'res18_l1-meanhead_synthface.py'
)


def _random_spd(rng, shape):
    a = rng.normal(size=shape + (2, 2))
    return a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(2)


def _gls_reference(x, y, weights, ridge):
    """Normal equations Σ_n (W ⊗ x̃x̃ᵀ) β = Σ_n (W y) ⊗ x̃, one face and
    one point at a time, with the ridge of gls_fit."""
    n, num_k = y.shape[:2]
    p = x.shape[1] + 1
    coef = np.zeros((num_k, 2, p))
    for k in range(num_k):
        system = np.zeros((2 * p, 2 * p))
        rhs = np.zeros(2 * p)
        for i in range(n):
            xt = np.append(x[i], 1.0)
            system += np.kron(weights[i, k], np.outer(xt, xt))
            rhs += np.kron(weights[i, k] @ y[i, k], xt)
        features = [j for j in range(2 * p) if j % p != p - 1]
        lam = ridge * np.mean([system[j, j] for j in features])
        for j in features:
            system[j, j] += lam
        coef[k] = np.linalg.solve(system, rhs).reshape(2, p)
    return coef


@pytest.mark.parametrize('ridge', [0.0, 1e-2])
def test_gls_matches_the_face_by_face_normal_equations(ridge):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 4))
    y = rng.normal(size=(25, 3, 2))
    weights = _random_spd(rng, (25, 3))
    np.testing.assert_allclose(
        gls_fit(x, y, weights, ridge),
        _gls_reference(x, y, weights, ridge),
        rtol=1e-8,
        atol=1e-10,
    )


def test_weighted_grams_match_a_loop():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(11, 5)), rng.normal(size=(11, 3))
    want = np.stack(
        [sum(w[n, m] * np.outer(x[n], x[n]) for n in range(11))
         for m in range(3)]
    )  # fmt: skip
    np.testing.assert_allclose(weighted_grams(x, w, chunk=4), want)


@pytest.mark.parametrize('ridge', [0.0, 1e-3])
def test_identity_weights_give_ols(ridge):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 5, 2))
    eye = np.broadcast_to(np.eye(2), (40, 5, 2, 2))
    np.testing.assert_allclose(
        gls_fit(x, y, eye, ridge), ols_fit(x, y, ridge), atol=1e-12
    )


def test_one_weight_per_point_gives_ols():
    # The same regressors for x and y: GLS with a W_k shared by all faces
    # is OLS (seemingly unrelated regressions), anisotropic or not.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 5, 2))
    weights = np.broadcast_to(_random_spd(rng, (5,)), (40, 5, 2, 2))
    np.testing.assert_allclose(
        gls_fit(x, y, weights, 0.0), ols_fit(x, y, 0.0), atol=1e-10
    )


def test_ols_is_exact_on_noise_free_data_and_checks_shapes():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 3))
    coef = rng.normal(size=(2, 2, 4))
    y = linear_predict(coef, x)
    np.testing.assert_allclose(ols_fit(x, y, 0.0), coef, atol=1e-10)
    assert with_intercept(x).shape == (30, 4)
    with pytest.raises(ValueError, match='N, K, 2'):
        ols_fit(x, y[..., :1])
    with pytest.raises(ValueError, match='30 faces'):
        ols_fit(x[:20], y)
    with pytest.raises(ValueError, match='weights must have shape'):
        gls_fit(x, y, np.ones((30, 2, 2)))
    with pytest.raises(ValueError, match='ridge'):
        ols_fit(x, y, -1.0)


def _rotations(theta):
    """Frames with rows t = (cos, sin) and n = (-sin, cos), (N, 2, 2)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)


def _synthetic(rng, n=120, f=4, sigma=(0.5, 0.05), bias=0.0):
    """Labels of one point: a linear function of x plus noise of std
    sigma along and across a tangent whose direction varies per face,
    and ``bias`` across it."""
    x = rng.normal(size=(n, f))
    coef = rng.normal(size=(1, 2, f + 1))
    frames = _rotations(rng.uniform(0, np.pi, n))[:, None]  # (N, 1, 2, 2)
    local = rng.normal(size=(n, 1, 2)) * sigma + [0.0, bias]
    noise = np.einsum('nkba,nkb->nka', frames, local)  # Rᵀ u
    cov = np.diag(np.square(sigma))[None]  # (1, 2, 2)
    weights = precision_weights(cov, frames, np.ones(n))
    return x, coef, linear_predict(coef, x) + noise, frames, weights


def test_wls_estimates_the_coefficients_better_under_anisotropic_noise():
    rng = np.random.default_rng(5)
    errors = []
    for _ in range(30):
        x, coef, y, _, weights = _synthetic(rng)
        errors.append(
            [
                np.linalg.norm(ols_fit(x, y, 0.0) - coef),
                np.linalg.norm(gls_fit(x, y, weights, 0.0) - coef),
            ]
        )
    ols, wls = np.mean(errors, 0)
    assert wls <= ols
    assert wls < 0.6 * ols  # σ_t / σ_n = 10: a large gain


def test_biased_labels_are_learnt_by_both():
    # A constant offset c across the curve in every face's frame is
    # learnt, not averaged away: OLS's read-out is off by the mean offset,
    # WLS's by the W-weighted mean (Σ W)⁻¹ Σ W Rᵀ (0, c).
    rng = np.random.default_rng(6)
    x, coef, y, frames, weights = _synthetic(rng, n=2000, bias=0.3)
    offset = np.einsum('nkba,b->nka', frames, [0.0, 0.3])  # (N, 1, 2)
    weighted = np.linalg.solve(
        weights.sum(0), np.einsum('nkab,nkb->ka', weights, offset)[..., None]
    )[..., 0]
    # Normals (-sin θ, cos θ), θ ~ U(0, π): mean 0.3 (-2/π, 0) = (-0.19,
    # 0); W nearly projects on them: weighted 0.3 (-4/π, 0) = (-0.38, 0).
    np.testing.assert_allclose(offset.mean(0), [[-0.19, 0.0]], atol=0.02)
    np.testing.assert_allclose(weighted, [[-0.38, 0.0]], atol=0.03)
    for fit, want in (
        (ols_fit(x, y, 0.0), offset.mean(0)),
        (gls_fit(x, y, weights, 0.0), weighted),
    ):
        error = linear_predict(fit, x) - linear_predict(coef, x)
        np.testing.assert_allclose(error.mean(0), want, atol=0.03)


def test_noise_model_is_recovered_in_the_local_frame():
    # A circle of 16 points (a closed curve) on 300 faces, each rotated;
    # labels move 0.06 along the tangent and 0.01 across it.
    rng = np.random.default_rng(7)
    k, n = 16, 300
    angle = np.arange(k) / k * 2 * np.pi
    circle = np.stack([np.cos(angle), np.sin(angle)], -1)
    roll = _rotations(rng.uniform(-0.5, 0.5, n))  # (N, 2, 2)
    clean = np.einsum('nab,kb->nka', roll, circle) * 2.0  # radius 2
    neighbours = np.stack(
        [np.roll(np.arange(k), 1), np.roll(np.arange(k), -1)]
    )
    frames, curve = local_frames(clean, neighbours)
    assert curve.all()
    t = frames[..., 0, :]
    tangent = np.stack([-clean[..., 1], clean[..., 0]], -1) / 2.0
    np.testing.assert_allclose(np.abs((t * tangent).sum(-1)), 1.0, atol=0.01)
    scale = rng.uniform(1.0, 2.0, n)
    local = rng.normal(size=(n, k, 2)) * [0.06, 0.01] * scale[:, None, None]
    noisy = clean + np.einsum('nkba,nkb->nka', frames, local)
    residuals = local_residuals(noisy, clean, frames, scale)
    cov = noise_covariances(residuals, min_std=1e-4)
    std = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))  # (K, 2)
    np.testing.assert_allclose(std.mean(0), [0.06, 0.01], rtol=0.05)
    # W weighs a tangential offset of one σ_t as one σ_n across: both 1.
    weights = precision_weights(cov, frames, scale)
    along = t[0, 0] * 0.06 * scale[0]
    across = frames[0, 0, 1] * 0.01 * scale[0]
    assert along @ weights[0, 0] @ along == pytest.approx(1.0, rel=0.1)
    assert across @ weights[0, 0] @ across == pytest.approx(1.0, rel=0.1)


# ------------------------------------------------------------------- tool
def _tool():
    return load_tool('tools', 'misc', 'mechanism_check.py')


def test_pipeline_drops_the_random_transforms():
    from mmengine.config import Config

    pipeline = Config.fromfile(CONFIG).train_dataloader.dataset.pipeline
    kept = [t['type'] for t in _tool().deterministic_pipeline(pipeline)]
    assert kept == [
        'LoadImage',
        'GetBBoxCenterScale',
        'TopdownAffine',
        'GenerateTarget',
        'PackPoseInputs',
    ]
    with pytest.raises(ValueError, match='GenerateTarget'):
        _tool().deterministic_pipeline(pipeline[:5])


@pytest.fixture(scope='module')
def tiny_synthface(tmp_path_factory):
    """16 training and 6 test faces under 'arc', the training faces under
    'tangent' too, and the clean test file."""
    from mmaniso.synthface import write_synthface

    root = tmp_path_factory.mktemp('synthface')
    splits = dict(train=16, test=6)
    write_synthface(str(root), splits, size=64, progress=False)
    other = tmp_path_factory.mktemp('tangent')
    written = write_synthface(
        str(other), dict(train=16), size=64, progress=False, noise='tangent'
    )
    ann = root / 'annotations'
    shutil.copyfile(
        written['train'], ann / 'face_landmarks_wflw_train_tangent.json'
    )
    with open(ann / 'face_landmarks_wflw_test.json') as f:
        data = json.load(f)
    for a in data['annotations']:
        a['keypoints'] = a['keypoints_clean']
    with open(ann / 'face_landmarks_wflw_test_clean.json', 'w') as f:
        json.dump(data, f)
    return root


@pytest.fixture(scope='module')
def random_checkpoint(tmp_path_factory):
    """The config's model with random weights and a mean shape."""
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmpose.apis import init_model

    import mmaniso  # noqa: F401

    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = init_model(cfg, None, device='cpu')
    model.head.set_mean_shape(
        np.random.default_rng(0).uniform(0.3, 0.7, (98, 2))
    )
    path = tmp_path_factory.mktemp('ckpt') / 'random.pth'
    save_checkpoint(dict(state_dict=model.state_dict()), str(path))
    return path


def _run(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        results = _tool().main([str(a) for a in argv])
    return results, out.getvalue()


@pytest.mark.slow
def test_tool_end_to_end_on_a_tiny_synthface(
    tiny_synthface, random_checkpoint, tmp_path
):
    out_json = tmp_path / 'mechanism.json'
    results, printed = _run(
        CONFIG, random_checkpoint, '--data-root', tiny_synthface,
        '--noise', 'arc', 'tangent', '--out-json', out_json,
        '--batch-size', 8,
    )  # fmt: skip
    assert results['num_train'] == 16 and results['num_test'] == 6
    assert results['num_features'] == 256
    assert list(results['noise']) == ['arc', 'tangent']
    for row in results['noise'].values():
        for key in ('ols', 'wls', 'wls_residual'):
            assert set(row[key]) == {'NME', 'NME_along', 'NME_across'}
            assert all(np.isfinite(v) and v > 0 for v in row[key].values())
        assert row['scale'] == 'annotation interocular'
        # Along-curve noise: the estimated along std is the larger.
        assert row['noise_std_along'] > 2 * row['noise_std_across']
    assert set(results['reference']) == {
        'trained head (no flip test)',
        'clean labels, OLS',
    }
    assert (
        json.loads(out_json.read_text())['noise']['arc']
        == (results['noise']['arc'])
    )
    assert '| arc |' in printed and '| tangent |' in printed
    assert 'WLS − OLS' in printed


@pytest.mark.slow
def test_tool_refuses_labels_of_other_images(
    tiny_synthface, random_checkpoint, tmp_path
):
    root = tmp_path / 'root'
    shutil.copytree(tiny_synthface, root)
    path = root / 'annotations' / 'face_landmarks_wflw_train_tangent.json'
    data = json.loads(path.read_text())
    data['annotations'] = data['annotations'][1:]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='same images'):
        _run(
            CONFIG, random_checkpoint, '--data-root', root,
            '--noise', 'tangent', '--batch-size', 8,
        )  # fmt: skip
