"""A hook for multi-process tests: each rank writes what it saw.

Loaded with ``custom_imports=dict(imports=['rank_dump_hook'])`` and
``PYTHONPATH=tests/helpers``. At the start of training each rank records the
indices its sampler yields for the first epoch (and the sampler's
``bin_counts`` where it has them) and its initial weights; after the run,
its final weights. All go
to ``<work_dir>/rank<R>.pt`` for the test to compare.
"""

import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankDumpHook(Hook):
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
