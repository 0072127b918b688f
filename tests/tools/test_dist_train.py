"""A real 2-process run of tools/dist_train.sh (torchrun, gloo on CPU)."""

import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import (
    FIXTURE_CONFIG,
    REPO,
    data_root_options,
    dist_env,
    free_port,
)


@pytest.mark.slow
@pytest.mark.ddp
def test_two_rank_train_ends_with_identical_weights(wflw_fixture, tmp_path):
    config = tmp_path / 'ddp_fixture.py'
    config.write_text(
        f'_base_ = [{FIXTURE_CONFIG!r}]\n'
        'custom_imports = dict(\n'
        "    imports=['mmaniso', 'mmaniso.testing.hooks'])\n"
        "custom_hooks = [dict(type='SyncBuffersHook'), "
        "dict(type='RankDumpHook')]\n"
    )
    env = dist_env()
    env.update(PYTHON=sys.executable, PORT=str(free_port()))
    proc = subprocess.run(
        [
            'bash',
            osp.join(REPO, 'tools', 'dist_train.sh'),
            str(config),
            '2',
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            'train_cfg.max_epochs=1',
            *data_root_options(wflw_fixture),
        ],
        # Run and checked as test_samplers.py's two-rank run: each test drives
        # its own launcher.
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log
    assert "backend': 'gloo'" in log
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in (0, 1)]
    assert [r['rank'] for r in ranks] == [0, 1]
    # Each rank saw its own half of the 8 training images.
    assert len(ranks[0]['indices']) == len(ranks[1]['indices']) == 4
    assert not set(ranks[0]['indices']) & set(ranks[1]['indices'])
    weights0, weights1 = ranks[0]['state_dict'], ranks[1]['state_dict']
    assert weights0.keys() == weights1.keys()
    # Parameters through DDP's gradient all-reduce, BN statistics through
    # SyncBuffersHook at the end of the epoch.
    for name in weights0:
        assert torch.equal(weights0[name], weights1[name]), name
    # Identical is not trivially "untouched": training moved the weights.
    initial = ranks[0]['initial_state_dict']['head.fc.weight']
    assert not torch.equal(initial, weights0['head.fc.weight'])
