"""The learned scales of a trained model, read from its config and
checkpoint without building the model.

A loss with ``scales='learned'`` or ``'learned_isotropic'`` keeps its
global per-landmark scales as ``head.loss_module.scale_params``; this module
rebuilds the config's :class:`AnisotropicLoss`, loads those parameters into
it (the checkpoint read by mmaniso's restricted loader) and returns the
scales in input-crop pixels. ``tools/analysis_tools/plot_learned_scales.py``
draws them; the study's records keep them.
"""

from typing import Any, Dict

SCALE_KEY = 'head.loss_module.scale_params'
MEAN_KEY = 'head.mean_shape'
LEARNED = ('learned', 'learned_isotropic')


def loss_from_config(cfg):
    """The config's ``AnisotropicLoss`` with the codec's input size.

    Args:
        cfg: An MMEngine config whose ``model.head.loss`` is an
            ``AnisotropicLoss`` with learned scales.

    Raises:
        ValueError: The head's loss is another loss, or its scales are not
            learned.
    """
    from .anisotropic_loss import AnisotropicLoss

    loss_cfg = dict(cfg.model.head.loss)
    if loss_cfg.pop('type', None) not in ('AnisotropicLoss', AnisotropicLoss):
        raise ValueError("the config's head loss is not an AnisotropicLoss")
    if loss_cfg.get('scales') not in LEARNED:
        raise ValueError(
            f"the config's loss has scales={loss_cfg.get('scales', 'fixed')!r}"
            "; learned scales need scales='learned' or 'learned_isotropic'"
        )
    decoder = cfg.model.head.get('decoder') or {}
    if loss_cfg.get('input_size') is None and 'input_size' in decoder:
        loss_cfg['input_size'] = tuple(decoder['input_size'])
    return AnisotropicLoss(**loss_cfg)


def read_learned_scales(cfg, checkpoint: str) -> Dict[str, Any]:
    """The learned scales of ``checkpoint``, a model trained with ``cfg``.

    Args:
        cfg: The training's MMEngine config (see :func:`loss_from_config`).
        checkpoint: Its checkpoint file.

    Returns:
        dict: ``loss`` (the loss with the learned parameters loaded),
        ``mean_shape`` (the head's, normalised, (K, 2) tensor), ``along``
        and ``across`` (input-crop pixels, (K,) float arrays; a landmark
        without a tangent has its across scale for both) and
        ``has_tangent`` ((K,) bool array).

    Raises:
        ValueError: The config's loss has no learned scales, or the
            checkpoint lacks the scale parameters or the mean shape; the
            message names the checkpoint.
    """
    import torch

    from mmaniso.checkpoint import load_checkpoint_file

    loss = loss_from_config(cfg)
    state = load_checkpoint_file(checkpoint, map_location='cpu')
    state = state.get('state_dict', state)
    missing = [k for k in (SCALE_KEY, MEAN_KEY) if k not in state]
    if missing:
        raise ValueError(
            f'{checkpoint} has no {missing}; give a checkpoint of a model '
            'trained with this config'
        )
    loss.load_state_dict({'scale_params': state[SCALE_KEY]})
    with torch.no_grad():
        along, across = loss.learned_scales()
    return dict(
        loss=loss,
        mean_shape=state[MEAN_KEY],
        along=along.double().numpy(),
        across=across.double().numpy(),
        has_tangent=loss.has_tangent.cpu().numpy().astype(bool),
    )
