"""An optimiser constructor that never decays the loss's learned scales."""

from typing import Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from mmpose.registry import OPTIM_WRAPPER_CONSTRUCTORS

# The parameter name of AnisotropicLoss(scales='learned' or
# 'learned_isotropic'): scale = min_scale + exp(scale_params).
SCALE_PARAMS_KEY = '.scale_params'


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LearnedScalesOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's default constructor, with the learned scales decay-free.

    Weight decay pulls a parameter towards 0, which for the learned scales
    (``scale = min_scale + exp(p)``) means towards ``min_scale + 1`` pixel,
    whatever the data say: a prior nobody chose. This constructor adds
    ``custom_keys={'.scale_params': dict(decay_mult=0.0)}`` to the
    ``paramwise_cfg``, so every ``AnisotropicLoss``'s ``scale_params`` get
    ``weight_decay=0`` and every other parameter keeps the config's rules.
    The config may give that key other settings (``lr_mult``); a
    ``decay_mult`` it gives wins. An optimiser without ``weight_decay``
    decays nothing, and the key then carries no ``decay_mult`` (MMEngine
    refuses one without a base weight decay).

    Use it with ``optim_wrapper = dict(constructor=
    'LearnedScalesOptimWrapperConstructor')``.

    Args:
        optim_wrapper_cfg (dict): As ``DefaultOptimWrapperConstructor``.
        paramwise_cfg (dict, optional): As ``DefaultOptimWrapperConstructor``.
    """

    def __init__(
        self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None
    ):
        paramwise_cfg = dict(paramwise_cfg or {})
        custom_keys = dict(paramwise_cfg.get('custom_keys') or {})
        entry = dict(custom_keys.get(SCALE_PARAMS_KEY) or {})
        optimizer = (optim_wrapper_cfg or {}).get('optimizer') or {}
        if optimizer.get('weight_decay') is None:
            # Nothing decays; MMEngine refuses a decay_mult without a base
            # weight decay, and a zero one is moot.
            entry.pop('decay_mult', None)
        else:
            entry.setdefault('decay_mult', 0.0)
        custom_keys[SCALE_PARAMS_KEY] = entry
        paramwise_cfg['custom_keys'] = custom_keys
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
