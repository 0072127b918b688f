"""A hook for end-to-end tests: records each epoch's sampler indices.

Loaded with ``custom_imports=dict(imports=['epoch_indices_hook'])`` and
``PYTHONPATH=tests/engine``. At the start of every training epoch (after
``DistSamplerSeedHook`` has set the epoch) it appends the epoch, the
sampler's seed and the indices it yields to
``<work_dir>/epoch_indices.jsonl``.
"""

import json
import os.path as osp

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class EpochIndicesHook(Hook):
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
