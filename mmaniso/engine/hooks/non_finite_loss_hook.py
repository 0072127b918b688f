"""Stops training at the first non-finite loss; never saves NaN weights."""

from typing import Iterator, List, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmpose.registry import HOOKS

# Samples named in full in a message; the rest are counted.
MAX_NAMED = 8


class NonFiniteLossError(RuntimeError):
    """A training loss or a tensor to be saved is NaN or infinite."""


def non_finite_tensors(
    tree, prefix: str = ''
) -> Iterator[Tuple[str, torch.Tensor]]:
    """Yields ``(key, tensor)`` for each floating tensor of a nested
    dict/list/tuple that holds a NaN or infinite value."""
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() or tree.is_complex():
            if not bool(torch.isfinite(tree).all()):
                yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            name = f'{prefix}.{key}' if prefix else str(key)
            yield from non_finite_tensors(value, name)
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from non_finite_tensors(value, f'{prefix}[{i}]')


def _sample_name(sample) -> str:
    meta = getattr(sample, 'metainfo', None) or {}
    parts = [
        f'{key}={meta[key]}'
        for key in ('img_path', 'id', 'img_id')
        if meta.get(key) is not None
    ]
    return ', '.join(parts) or '(no img_path or id in its metainfo)'


def _has_non_finite_target(sample) -> bool:
    """Whether a sample's ground truth (keypoints, their encoded labels,
    box) holds a NaN or infinite value."""
    for field in ('gt_instances', 'gt_instance_labels'):
        data = getattr(sample, field, None)
        if data is None:
            continue
        for key in ('keypoints', 'keypoint_labels', 'bboxes', 'bbox_scales'):
            value = data.get(key) if hasattr(data, 'get') else None
            if value is None:
                continue
            value = torch.as_tensor(value)
            if value.is_floating_point() and not bool(
                torch.isfinite(value).all()
            ):
                return True
    return False


def describe_batch(data_batch) -> str:
    """The samples of a batch, those with non-finite ground truth first."""
    samples = []
    if isinstance(data_batch, dict):
        samples = list(data_batch.get('data_samples') or [])
    if not samples:
        return 'the batch carries no data_samples to name'
    suspects = [s for s in samples if _has_non_finite_target(s)]
    lines: List[str] = []
    if suspects:
        lines.append(
            f'{len(suspects)} of its {len(samples)} samples have NaN or '
            'infinite ground truth (keypoints, encoded targets or box): '
            'likely the cause:'
        )
        lines += [f'  {_sample_name(s)}' for s in suspects[:MAX_NAMED]]
    else:
        lines.append(f'its {len(samples)} samples:')
        lines += [f'  {_sample_name(s)}' for s in samples[:MAX_NAMED]]
    shown = suspects if suspects else samples
    if len(shown) > MAX_NAMED:
        lines.append(f'  and {len(shown) - MAX_NAMED} more')
    return '\n'.join(lines)


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stops training at the first NaN or infinite loss.

    After every training iteration the loss terms of the model's outputs
    (every entry whose name contains ``loss``) are checked; a NaN or
    infinite one stops the run with :class:`NonFiniteLossError`, naming the
    epoch, the iteration and the batch's samples (``img_path``, ``id``;
    those with NaN or infinite ground truth first). It runs before the
    checkpoint hook, so the weights that one update turned non-finite are
    never saved. Independently, a checkpoint about to be saved whose model
    or optimizer state holds a NaN or infinite tensor is refused, naming
    the tensors, so a run can never end having written non-finite weights.
    ``tools/train.py`` adds it to every config.

    In a distributed run the rank that sees the loss stops and the launcher
    ends the others. Under AMP, the gradient scaler still skips steps whose
    gradients overflow; only a non-finite loss itself stops the run.

    Args:
        check_checkpoints: Refuse to save checkpoints with non-finite
            tensors.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_checkpoints: bool = True) -> None:
        self.check_checkpoints = bool(check_checkpoints)

    def after_train_iter(
        self,
        runner,
        batch_idx: int,
        data_batch=None,
        outputs: Optional[dict] = None,
    ) -> None:
        """Raises if a loss term of ``outputs`` is NaN or infinite."""
        if not outputs:
            return
        losses = {
            key: value
            for key, value in outputs.items()
            if 'loss' in key and isinstance(value, (torch.Tensor, float))
        }
        if not losses:
            return
        values = torch.stack(
            [
                torch.as_tensor(v).detach().float().reshape(-1).sum().cpu()
                for v in losses.values()
            ]
        )
        if bool(torch.isfinite(values).all()):
            return
        shown = ', '.join(
            f'{key}={float(v):g}' for key, v in zip(losses, values.tolist())
        )
        raise NonFiniteLossError(
            f'non-finite training loss at epoch {runner.epoch + 1}, '
            f'iteration {runner.iter + 1} (batch {batch_idx + 1} of the '
            f'epoch): {shown}. Training stopped; no checkpoint of this or a '
            f'later iteration was saved. The batch: '
            f'{describe_batch(data_batch)}\n'
            'Check those annotations (python tools/train.py checks every '
            'annotation file before training and names the record), or '
            'lower the learning rate if the data are sound; resume from the '
            'last saved checkpoint.'
        )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuses a checkpoint whose tensors hold NaN or infinity."""
        if not self.check_checkpoints:
            return
        bad = [
            key
            for key, _ in non_finite_tensors(
                {
                    'state_dict': checkpoint.get('state_dict'),
                    'optimizer': checkpoint.get('optimizer'),
                }
            )
        ]
        if not bad:
            return
        shown = ', '.join(bad[:MAX_NAMED])
        more = len(bad) - MAX_NAMED
        if more > 0:
            shown += f' and {more} more'
        raise NonFiniteLossError(
            f'refusing to save a checkpoint in epoch {runner.epoch + 1}: '
            f'{len(bad)} tensors hold NaN or '
            f'infinite values ({shown}). Training diverged; resume from the '
            'last saved checkpoint with sound data or a lower learning rate.'
        )
