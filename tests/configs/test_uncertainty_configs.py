"""The learned- and predicted-scale SynthFace configs build what they name,
and their optimiser never decays the learned scales."""

import os.path as osp

import pytest
import torch
from conftest import REPO
from mmengine.config import Config

CONFIGS = {
    'res18_aniso-learned-l1_synthface.py': ('learned', None),
    'res18_iso-learned-l1_synthface.py': ('learned_isotropic', None),
    'res18_aniso-predicted-l1_synthface.py': ('predicted', 'anisotropic'),
    'res18_iso-predicted-l1_synthface.py': ('predicted', 'isotropic'),
}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_builds_its_scales(name):
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS, OPTIM_WRAPPERS  # noqa: F401

    scales, predict = CONFIGS[name]
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'synthface', name))
    init_default_scope('mmpose')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    loss = model.head.loss_module
    assert (loss.scales, loss.distance, loss.weighting) == (
        scales,
        'mahalanobis',
        'normalised',
    )
    assert model.head.predict_scales == predict
    if scales.startswith('learned'):
        from mmengine.optim import build_optim_wrapper

        # The config's own optimiser (Adam, no weight decay) builds.
        own = build_optim_wrapper(model, dict(cfg.optim_wrapper))
        lrs = {
            any(p is loss.scale_params for p in g['params']): g['lr']
            for g in own.optimizer.param_groups
        }
        assert lrs == {True: pytest.approx(1e-2), False: 1e-3}
        optim = dict(cfg.optim_wrapper)
        optim['optimizer'] = dict(type='AdamW', lr=1e-3, weight_decay=0.1)
        wrapper = build_optim_wrapper(model, optim)
        scale = loss.scale_params
        decays = {
            any(p is scale for p in g['params']): (g['weight_decay'], g['lr'])
            for g in wrapper.optimizer.param_groups
        }
        assert decays == {True: (0.0, pytest.approx(1e-2)), False: (0.1, 1e-3)}
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64), None, mode='tensor')
    assert tuple(out.shape) == (1, 98, 2)
