"""Hooks for end-to-end tests: each run writes what it saw to its work dir.

Not imported by ``import mmaniso`` nor by ``import mmaniso.testing``: a test
config registers them with
``custom_imports=dict(imports=['mmaniso', 'mmaniso.testing.hooks'])``.

- :class:`EpochIndicesHook` appends, at the start of every training epoch,
  the epoch, the sampler's seed and the indices it yields to
  ``<work_dir>/epoch_indices.jsonl``.
- :class:`RankDumpHook` makes each rank of a multi-process run record the
  indices its sampler yields for the first epoch (and the sampler's
  ``bin_counts`` where it has them), its initial and its final weights in
  ``<work_dir>/rank<R>.pt``.
- :class:`BatchAugmentDrawsHook` appends, after every training iteration,
  the iteration and the device augmentation's draws (flip, offset, scale,
  rotation of each sample) to ``<work_dir>/augment_draws.jsonl``.
"""

import json
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpose.registry import HOOKS


@HOOKS.register_module()
class EpochIndicesHook(Hook):
    """Records each training epoch's sampler indices (after
    ``DistSamplerSeedHook`` has set the epoch)."""

    priority = 'LOWEST'

    def before_train_epoch(self, runner) -> None:
        sampler = runner.train_dataloader.sampler
        record = dict(
            epoch=runner.epoch,
            seed=int(sampler.seed),
            indices=[int(i) for i in sampler],
        )
        path = osp.join(runner.work_dir, 'epoch_indices.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(record) + '\n')


@HOOKS.register_module()
class RankDumpHook(Hook):
    """Saves what this rank's sampler yielded and its weights, for a test
    to compare across ranks."""

    priority = 'LOWEST'

    def __init__(self):
        self.record = {}

    def before_train(self, runner) -> None:
        self.record['initial_state_dict'] = self._weights(runner)
        sampler = runner.train_dataloader.sampler
        self.record['indices'] = [int(i) for i in iter(sampler)]
        counts = getattr(sampler, 'bin_counts', None)
        if counts is not None:
            self.record['bin_counts'] = [int(c) for c in counts]

    @staticmethod
    def _weights(runner) -> dict:
        model = getattr(runner.model, 'module', runner.model)
        return {
            k: v.detach().cpu().clone() for k, v in model.state_dict().items()
        }

    def after_run(self, runner) -> None:
        self.record['state_dict'] = self._weights(runner)
        self.record['rank'] = get_rank()
        torch.save(
            self.record, osp.join(runner.work_dir, f'rank{get_rank()}.pt')
        )


@HOOKS.register_module()
class BatchAugmentDrawsHook(Hook):
    """Records what ``TopdownBatchAugment`` drew at each training
    iteration, for a test to compare a resumed run with an uninterrupted
    one."""

    priority = 'LOWEST'

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ) -> None:
        model = getattr(runner.model, 'module', runner.model)
        augments = model.data_preprocessor.batch_augments
        params = augments[0].last_params
        record = dict(
            iter=runner.iter,
            flip=params.flip.int().tolist(),
            offset=params.offset.tolist(),
            scale=params.scale.tolist(),
            rotation=params.rotation.tolist(),
        )
        path = osp.join(runner.work_dir, 'augment_draws.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(record) + '\n')
