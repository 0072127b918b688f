"""MeanShapeRegressionHead with predicted scales, and the learned scales'
logging: shapes, the fixed start, ellipses in image pixels, scores."""

import math

import numpy as np
import pytest
import torch

import mmaniso  # noqa: F401  (registers)
from mmaniso.models.losses import AnisotropicLoss
from mmaniso.synthface.face_template import mean_face

INPUT_SIZE = (64, 64)
IN_CHANNELS = 16
LOSS = dict(
    type='AnisotropicLoss',
    point_types='wflw',
    weighting='normalised',
    distance='mahalanobis',
    use_target_weight=True,
)


def face() -> torch.Tensor:
    shape = mean_face(98) * 0.3
    shape[:, 0] += 0.5
    shape[:, 1] += 0.45
    return torch.as_tensor(shape, dtype=torch.float32)


def build_head(predict_scales='anisotropic', scales='predicted', **kw):
    from mmpose.registry import MODELS

    head = MODELS.build(
        dict(
            type='MeanShapeRegressionHead',
            in_channels=IN_CHANNELS,
            num_joints=98,
            decoder=dict(type='RegressionLabel', input_size=INPUT_SIZE),
            loss=dict(LOSS, scales=scales),
            mean_shape=face().tolist(),
            predict_scales=predict_scales,
            **kw,
        )
    )
    head.init_weights()
    return head


def train_samples(batch, seed=0):
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample

    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        labels = face() + 0.01 * torch.randn(98, 2, generator=gen)
        sample = PoseDataSample(metainfo=dict(input_size=INPUT_SIZE))
        sample.gt_instance_labels = InstanceData(
            keypoint_labels=labels[None],
            keypoint_weights=torch.ones(1, 98),
        )
        samples.append(sample)
    return samples


def test_scale_output_shapes():
    feats = (torch.randn(3, IN_CHANNELS),)
    aniso = build_head('anisotropic')
    assert tuple(aniso.forward_scales(feats).shape) == (3, 98, 2)
    assert tuple(aniso.forward(feats).shape) == (3, 98, 2)
    iso = build_head('isotropic')
    assert tuple(iso.forward_scales(feats).shape) == (3, 98, 1)
    assert 'scale_fc.weight' in aniso.state_dict()


@pytest.mark.parametrize('predict', ['anisotropic', 'isotropic'])
def test_start_equals_the_fixed_scales_loss(predict):
    head = build_head(predict)
    feats = (torch.randn(4, IN_CHANNELS),)
    samples = train_samples(4)
    losses = head.loss(feats, samples)
    # The same likelihood with the loss's own fixed start (a=5, b=3 px;
    # isotropic: b), i.e. the learned form before any step.
    fixed = AnisotropicLoss(
        'wflw',
        weighting='normalised',
        distance='mahalanobis',
        use_target_weight=True,
        scales='learned' if predict == 'anisotropic' else 'learned_isotropic',
        input_size=INPUT_SIZE,
    )
    labels = torch.cat([s.gt_instance_labels.keypoint_labels for s in samples])
    want = fixed(head.forward(feats), labels, torch.ones(4, 98, 1))
    assert losses['loss_kpt'].item() == pytest.approx(want.item(), rel=1e-6)
    losses['loss_kpt'].backward()
    assert head.scale_fc.weight.grad.abs().sum() > 0
    if predict == 'anisotropic':
        assert losses['scale_along'].item() == pytest.approx(5.0, rel=1e-5)
        assert losses['scale_across'].item() == pytest.approx(3.0, rel=1e-5)
    else:
        assert losses['scale_iso'].item() == pytest.approx(3.0, rel=1e-5)


def test_learned_scales_are_logged_by_the_head():
    head = build_head(None, scales='learned')
    losses = head.loss((torch.randn(2, IN_CHANNELS),), train_samples(2))
    assert losses['scale_along'].item() == pytest.approx(5.0, rel=1e-5)
    assert losses['scale_across'].item() == pytest.approx(3.0, rel=1e-5)
    assert not losses['scale_along'].requires_grad
    # MMEngine sums only the keys holding 'loss'.
    assert not any('loss' in k for k in losses if k.startswith('scale'))


def _hand_ellipse(a, b, t, sx, sy):
    """Semi-axes (major, minor) and major-axis angle of the image ellipse,
    from the 2x2 covariance-like matrix D (a^2 t t' + b^2 n n') D."""
    n = (-t[1], t[0])
    s = np.zeros((2, 2))
    for vec, length in ((t, a), (n, b)):
        v = np.array([sx * vec[0], sy * vec[1]])
        s += length**2 * np.outer(v, v)
    half = (s[0, 0] + s[1, 1]) / 2
    det = s[0, 0] * s[1, 1] - s[0, 1] ** 2
    root = math.sqrt(half**2 - det)
    major, minor = math.sqrt(half + root), math.sqrt(half - root)
    angle = 0.5 * math.atan2(2 * s[0, 1], s[0, 0] - s[1, 1])
    return major, minor, angle


def _predict_samples(bbox_scale):
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample

    sample = PoseDataSample(metainfo=dict(input_size=INPUT_SIZE))
    sample.gt_instances = InstanceData(
        bbox_scales=np.array([bbox_scale], np.float32),
        bbox_centers=np.array([[100.0, 80.0]], np.float32),
    )
    return [sample]


@pytest.mark.parametrize('bbox_scale', [(128.0, 128.0), (128.0, 48.0)])
def test_ellipses_in_image_pixels_match_a_hand_computation(bbox_scale):
    head = build_head('anisotropic')
    feats = (torch.randn(1, IN_CHANNELS),)
    pred = head.predict(feats, _predict_samples(bbox_scale))[0]
    ellipses = pred.keypoint_ellipses
    assert ellipses.shape == (1, 98, 3)
    crop = face().numpy() * np.array(INPUT_SIZE)  # the prediction, crop px
    sx, sy = bbox_scale[0] / INPUT_SIZE[0], bbox_scale[1] / INPUT_SIZE[1]
    # Jaw point 5: central difference of its neighbours 4 and 6.
    d = crop[6] - crop[4]
    t = d / np.linalg.norm(d)
    major, minor, angle = _hand_ellipse(5.0, 3.0, t, sx, sy)
    a, b, got = ellipses[0, 5]
    assert sorted([a, b]) == pytest.approx([minor, major], rel=1e-4)
    major_angle = got if a >= b else got + math.pi / 2
    diff = (major_angle - angle) % math.pi
    assert min(diff, math.pi - diff) < 1e-4
    if sx == sy:
        assert (a, b) == (pytest.approx(5.0 * sx), pytest.approx(3.0 * sx))
        assert got == pytest.approx(math.atan2(t[1], t[0]), abs=1e-5)
    # Pupil 96 (isolated): a circle of radius sqrt(a b) = b = 3 px, first
    # axis along the image's x (angle 0), stretched by sx and sy.
    assert ellipses[0, 96].tolist() == pytest.approx(
        [3.0 * sx, 3.0 * sy, 0.0], abs=1e-4
    )


def test_keypoint_scores_are_the_documented_monotone_score():
    head = build_head('anisotropic')
    feats = (torch.randn(2, IN_CHANNELS),)
    pred = head.predict(feats, _predict_samples((64.0, 64.0)) * 2)[0]
    scores = pred.keypoint_scores[0]
    assert scores[5] == pytest.approx(3.0 / (3.0 + math.sqrt(15.0)))
    assert scores[96] == pytest.approx(0.5)  # sqrt(a b) = s0 = b
    with torch.no_grad():
        head.scale_fc.bias[5 * 2 + 1] += 1.0  # landmark 5 less certain
    worse = head.predict(feats, _predict_samples((64.0, 64.0)) * 2)[0]
    assert worse.keypoint_scores[0, 5] < scores[5]
    assert worse.keypoint_scores[0, 6] == pytest.approx(scores[6])


@pytest.mark.parametrize(
    'predict, scales, match',
    [
        ('anisotropic', 'fixed', r"needs loss=dict\(type='AnisotropicLoss'"),
        (None, 'predicted', r"scales='predicted'.*set both or neither"),
        ('full', 'predicted', 'predict_scales must be one of'),
    ],
)
def test_mismatched_options_are_refused(predict, scales, match):
    with pytest.raises(ValueError, match=match):
        build_head(predict, scales=scales)


def test_overflowing_predicted_scale_stops_naming_the_landmark():
    from mmaniso.models.losses import NonFiniteLikelihoodError

    head = build_head('anisotropic')
    with torch.no_grad():
        head.scale_fc.bias[7 * 2] = 200.0  # exp(200) overflows float32
    with pytest.raises(
        NonFiniteLikelihoodError, match=r"landmark 7 \(curve 'jaw'\)"
    ):
        head.loss((torch.randn(2, IN_CHANNELS),), train_samples(2))
