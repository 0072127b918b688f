"""Tests of MeanShapeRegressionHead: x̄ + dx, checkpoints, predict, flip."""

import json
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import REPO

import mmaniso  # noqa: F401  (registers; allow-lists checkpoint types)
from mmaniso.models.heads import MeanShapeRegressionHead
from mmaniso.synthface.face_template import mean_face

INPUT_SIZE = (64, 64)
IN_CHANNELS = 16


def wflw_flip_indices():
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    meta = parse_pose_metainfo(
        dict(from_file='configs/_base_/datasets/wflw.py')
    )
    return meta['flip_indices']


def symmetric_mean_face() -> torch.Tensor:
    """The WFLW template in the crop frame, mirror-symmetric about the
    vertical line that MMPose's shifted flip maps onto itself."""
    width = INPUT_SIZE[0]
    centre_x = 0.5 - 0.5 / width  # fixed by u -> 1 - u - 1/w
    face = mean_face(98) * 0.3
    face[:, 0] += centre_x
    face[:, 1] += 0.45
    return torch.as_tensor(face, dtype=torch.float32)


def build_head(mean_shape=None, **kw) -> MeanShapeRegressionHead:
    from mmpose.registry import MODELS

    cfg = dict(
        type='MeanShapeRegressionHead',
        in_channels=IN_CHANNELS,
        num_joints=98,
        decoder=dict(type='RegressionLabel', input_size=INPUT_SIZE),
        **kw,
    )
    if mean_shape is not None:
        cfg['mean_shape'] = mean_shape
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def data_samples(batch: int):
    from mmpose.structures import PoseDataSample

    return [
        PoseDataSample(
            metainfo=dict(
                flip_indices=wflw_flip_indices(), input_size=INPUT_SIZE
            )
        )
        for _ in range(batch)
    ]


def randomise_fc(head, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.fc.weight.copy_(
            torch.randn(head.fc.weight.shape, generator=gen) * 0.01
        )
        head.fc.bias.copy_(
            torch.randn(head.fc.bias.shape, generator=gen) * 0.01
        )


def test_output_is_mean_plus_linear_layer():
    mean = symmetric_mean_face()
    head = build_head(mean.tolist())
    randomise_fc(head)
    feats = torch.randn(3, IN_CHANNELS)
    out = head.forward((feats,))
    expected = mean + (feats @ head.fc.weight.T + head.fc.bias).reshape(
        3, 98, 2
    )
    assert out.shape == (3, 98, 2)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, mean.expand(3, 98, 2))


def test_untrained_head_predicts_the_mean_face():
    mean = symmetric_mean_face()
    head = build_head(mean.tolist())
    assert head.fc.weight.abs().sum() == 0  # init_weights kept it zero
    feats = torch.randn(2, IN_CHANNELS)
    torch.testing.assert_close(head.forward((feats,)), mean.expand(2, 98, 2))
    preds = head.predict((feats,), data_samples(2), dict(flip_test=False))
    assert len(preds) == 2
    pixels = mean.numpy() * np.array(INPUT_SIZE)
    np.testing.assert_allclose(preds[0].keypoints[0], pixels, atol=1e-5)
    # Not a cloud at a corner: the face fills the middle of the crop.
    assert 10 < preds[0].keypoints[0].mean(0)[0] < 54


def test_zero_init_without_init_weights():
    from mmpose.registry import MODELS

    head = MODELS.build(
        dict(type='MeanShapeRegressionHead', in_channels=4, num_joints=3)
    )
    assert head.fc.weight.abs().sum() == 0
    assert head.fc.bias.abs().sum() == 0


def test_flip_test_flips_mean_and_displacement():
    mean = symmetric_mean_face()
    head = build_head(mean.tolist())
    feats = torch.randn(2, IN_CHANNELS)
    feats_flip = torch.randn(2, IN_CHANNELS)
    cfg = dict(flip_test=True, shift_coords=True)

    # Untrained, a symmetric mean face is its own flip: flip test keeps it.
    preds = head.predict([(feats,), (feats_flip,)], data_samples(2), cfg)
    pixels = mean.numpy() * np.array(INPUT_SIZE)
    np.testing.assert_allclose(preds[1].keypoints[0], pixels, atol=1e-4)

    # Trained: the average of the output and the mirrored output of the
    # mirrored image, mean included.
    randomise_fc(head, seed=1)
    flip = torch.as_tensor(wflw_flip_indices())
    out = head.forward((feats,))
    mirrored = head.forward((feats_flip,)).clone()
    mirrored[..., 0] = 1 - mirrored[..., 0] - 1 / INPUT_SIZE[0]
    expected = 0.5 * (out + mirrored[:, flip])
    preds = head.predict([(feats,), (feats_flip,)], data_samples(2), cfg)
    got = np.stack([p.keypoints[0] for p in preds]) / np.array(INPUT_SIZE)
    np.testing.assert_allclose(got, expected.detach().numpy(), atol=1e-5)

    # An asymmetric mean face is averaged with its mirror image.
    shifted = mean + torch.tensor([0.1, 0.0])
    head = build_head(shifted.tolist())
    preds = head.predict([(feats,), (feats_flip,)], data_samples(2), cfg)
    np.testing.assert_allclose(
        preds[0].keypoints[0], pixels, atol=1e-4
    )  # +0.1 and its mirror -0.1 cancel


def test_loss_trains_the_displacement():
    from mmengine.structures import InstanceData

    mean = symmetric_mean_face()
    head = build_head(mean.tolist())
    samples = data_samples(2)
    for s in samples:
        s.gt_instance_labels = InstanceData(
            keypoint_labels=(mean + 0.05)[None],
            keypoint_weights=torch.ones(1, 98),
        )
    feats = torch.randn(2, IN_CHANNELS)
    losses = head.loss((feats,), samples)
    assert losses['loss_kpt'] > 0
    losses['loss_kpt'].backward()
    assert head.fc.weight.grad.abs().sum() > 0
    assert head.fc.bias.grad.abs().sum() > 0


def test_mean_shape_is_a_saved_buffer():
    mean = symmetric_mean_face()
    head = build_head(mean.tolist())
    state = head.state_dict()
    assert 'mean_shape' in state
    assert 'mean_shape' not in dict(head.named_parameters())
    fresh = build_head()
    assert not fresh.has_mean_shape
    fresh.load_state_dict(state)
    assert fresh.has_mean_shape
    torch.testing.assert_close(fresh.mean_shape, mean)


def test_mean_shape_survives_mmengine_checkpoint_weights_only(tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint

    from mmaniso.checkpoint import load_checkpoint_file

    mean = symmetric_mean_face()
    model = torch.nn.Module()
    model.head = build_head(mean.tolist())
    checkpoint = dict(
        meta=dict(
            epoch=1,
            seed=3,
            pose_balanced_sampler_seed=3,
            dataset_meta=dict(
                flip_indices=wflw_flip_indices(),
                sigmas=np.ones(98, np.float32),
            ),
        ),
        state_dict=model.state_dict(),
    )
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(checkpoint, path)
    # mmaniso's restricted unpickler accepts it (plain numpy metadata).
    loaded = load_checkpoint_file(path)
    torch.testing.assert_close(loaded['state_dict']['head.mean_shape'], mean)

    target = torch.nn.Module()
    target.head = build_head()
    load_checkpoint(target, path, map_location='cpu')
    assert target.head.has_mean_shape
    torch.testing.assert_close(target.head.mean_shape, mean)


def test_mean_shape_from_files(tmp_path):
    mean = symmetric_mean_face().numpy()
    np.save(tmp_path / 'mean.npy', mean)
    (tmp_path / 'mean.json').write_text(json.dumps(mean.tolist()))
    (tmp_path / 'meta.json').write_text(
        json.dumps(dict(mean_shape=mean.tolist()))
    )
    np.savetxt(tmp_path / 'mean.csv', mean, delimiter=',')
    np.savetxt(tmp_path / 'mean.txt', mean)
    for name in ('mean.npy', 'mean.json', 'meta.json', 'mean.csv', 'mean.txt'):
        head = build_head(str(tmp_path / name))
        np.testing.assert_allclose(head.mean_shape.numpy(), mean, atol=1e-6)


def test_invalid_mean_shapes_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r'shape \(98, 2\)'):
        build_head([[0.5, 0.5]] * 97)
    bad = symmetric_mean_face()
    bad[3, 1] = float('nan')
    with pytest.raises(ValueError, match='NaN or infinite'):
        build_head(bad.tolist())
    with pytest.raises(FileNotFoundError, match='mean_shape file'):
        build_head(str(tmp_path / 'missing.npy'))


def test_without_mean_shape_training_and_prediction_stop():
    head = build_head()
    assert not head.has_mean_shape
    with pytest.raises(RuntimeError, match='PoseBalancingHook'):
        head.loss((torch.randn(1, IN_CHANNELS),), data_samples(1))
    with pytest.raises(RuntimeError, match='no mean shape for prediction'):
        head.predict((torch.randn(1, IN_CHANNELS),), data_samples(1))


def test_state_dict_without_mean_shape_leaves_it_unset():
    from mmpose.registry import MODELS

    plain = MODELS.build(
        dict(type='RegressionHead', in_channels=IN_CHANNELS, num_joints=98)
    )
    head = build_head(symmetric_mean_face().tolist())
    head.forward((torch.randn(1, IN_CHANNELS),))
    fresh = build_head()
    result = fresh.load_state_dict(plain.state_dict(), strict=False)
    assert result.missing_keys == ['mean_shape']
    assert not fresh.has_mean_shape


def test_balanced_fixture_config_builds():
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS

    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'fixture', 'res18_wflw_fixture_balanced.py')
    )
    assert cfg.train_dataloader.sampler.type == 'PoseBalancedSampler'
    assert any(h.type == 'PoseBalancingHook' for h in cfg.custom_hooks)
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(cfg.model)
    assert isinstance(model.head, MeanShapeRegressionHead)
    assert model.head.decoder.input_size == (64, 64)


def test_anisotropic_loss_takes_the_codecs_input_size():
    codec = dict(type='RegressionLabel', input_size=(96, 64))
    loss = dict(type='AnisotropicLoss', point_types='wflw')
    head = MeanShapeRegressionHead(
        in_channels=8, num_joints=98, loss=loss, decoder=codec
    )
    assert head.loss_module.input_size.tolist() == [96.0, 64.0]
    # The same value given explicitly is fine; another one is refused.
    same = MeanShapeRegressionHead(
        in_channels=8,
        num_joints=98,
        loss=dict(loss, input_size=[96, 64]),
        decoder=codec,
    )
    assert same.loss_module.input_size.tolist() == [96.0, 64.0]
    with pytest.raises(
        ValueError, match=r'input_size=\(256, 256\).*\(96, 64\)'
    ):
        MeanShapeRegressionHead(
            in_channels=8,
            num_joints=98,
            loss=dict(loss, input_size=(256, 256)),
            decoder=codec,
        )
