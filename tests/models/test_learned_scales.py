"""Reading a trained model's learned scales from its config and checkpoint
(mmaniso.models.losses.learned_scales)."""

import numpy as np
import pytest
import torch
from conftest import LEARNED_HEAD_CONFIG
from mmengine.config import Config

from mmaniso.models.losses import AnisotropicLoss
from mmaniso.models.losses.learned_scales import (
    loss_from_config,
    read_learned_scales,
)


def _config(tmp_path, scales='learned'):
    path = tmp_path / 'cfg.py'
    path.write_text(LEARNED_HEAD_CONFIG.format(scales=scales))
    return Config.fromfile(str(path))


def _checkpoint(tmp_path, params, mean=True):
    state = {'head.loss_module.scale_params': params}
    if mean:
        state['head.mean_shape'] = torch.full((98, 2), 0.5)
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=state), path)
    return str(path)


def test_scales_match_a_per_landmark_loop(tmp_path):
    cfg = _config(tmp_path)
    loss = AnisotropicLoss(
        'wflw', scales='learned', weighting='normalised', input_size=(64, 64)
    )
    gen = torch.Generator().manual_seed(0)
    params = loss.scale_params.detach() + 0.3 * torch.randn(
        loss.scale_params.shape, generator=gen
    )
    found = read_learned_scales(cfg, _checkpoint(tmp_path, params))
    assert found['along'].shape == found['across'].shape == (98,)
    # Independent reference: s = floor + exp(p) of the landmark's own
    # parameter row; a landmark without a tangent has its across scale
    # for both.
    group = loss.scale_group.tolist()
    for k in range(98):
        along, across = (0.3 + np.exp(params[group[k]].double().numpy()))
        want_along = along if found['has_tangent'][k] else across
        assert found['across'][k] == pytest.approx(across, rel=1e-6)
        assert found['along'][k] == pytest.approx(want_along, rel=1e-6)
    # WFLW: pupils (96, 97) are isolated, the chin (16) is on the jaw.
    assert not found['has_tangent'][96] and found['has_tangent'][16]


def test_config_without_learned_scales_is_refused(tmp_path):
    with pytest.raises(ValueError, match="scales='fixed'.*learned"):
        loss_from_config(_config(tmp_path, scales='fixed'))


def test_checkpoint_without_the_parameters_is_named(tmp_path):
    cfg = _config(tmp_path)
    loss = loss_from_config(cfg)
    path = _checkpoint(tmp_path, loss.scale_params.detach(), mean=False)
    with pytest.raises(ValueError) as err:
        read_learned_scales(cfg, path)
    assert path in str(err.value) and 'head.mean_shape' in str(err.value)
