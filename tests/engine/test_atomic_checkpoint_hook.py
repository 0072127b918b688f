"""Tests of AtomicCheckpointHook: no half-written checkpoint under a final
name, whatever stops the write."""

import errno
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO
from toy_runner import toy_runner

from mmaniso.engine.hooks import atomic_checkpoint_hook, write_atomically

ATOMIC = dict(type='AtomicCheckpointHook', interval=1)


def test_a_failed_write_leaves_the_previous_file_and_no_scraps(
    tmp_path, monkeypatch
):
    path = tmp_path / 'epoch_1.pth'
    write_atomically(b'complete checkpoint', str(path))
    monkeypatch.setattr(
        atomic_checkpoint_hook.os, 'fsync', _fail_fsync, raising=True
    )
    with pytest.raises(OSError, match='No space left'):
        write_atomically(b'x' * 100_000, str(path))
    assert path.read_bytes() == b'complete checkpoint'
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth']


def _fail_fsync(fd):
    raise OSError(errno.ENOSPC, 'No space left on device')


def test_training_with_a_full_disk_leaves_no_partial_checkpoint(
    tmp_path, monkeypatch
):
    # Epoch 1 is saved; the disk fills while epoch 2 is written: epoch 1
    # and the pointer to it stay as they were, no epoch_2.pth appears.
    runner = toy_runner(tmp_path, max_epochs=2, checkpoint=ATOMIC)
    real_fsync = os.fsync
    writes = []

    def fsync(fd):
        writes.append(fd)
        if len(writes) > 2:  # epoch_1.pth and last_checkpoint went through
            raise OSError(errno.ENOSPC, 'No space left on device')
        real_fsync(fd)

    monkeypatch.setattr(atomic_checkpoint_hook.os, 'fsync', fsync)
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    names = sorted(os.listdir(tmp_path))
    assert 'epoch_2.pth' not in names
    assert not [n for n in names if n.endswith('.part')]
    epoch_1 = torch.load(tmp_path / 'epoch_1.pth', weights_only=False)
    assert epoch_1['meta']['epoch'] == 1
    pointer = (tmp_path / 'last_checkpoint').read_text()
    assert pointer == osp.join(str(tmp_path), 'epoch_1.pth')


def test_atomic_hook_saves_what_the_stock_hook_saves(tmp_path):
    stock, atomic = tmp_path / 'stock', tmp_path / 'atomic'
    toy_runner(stock, max_epochs=2).train()
    toy_runner(atomic, max_epochs=2, checkpoint=ATOMIC).train()
    files = [
        sorted(n for n in os.listdir(d) if not n[0].isdigit())
        for d in (stock, atomic)
    ]
    assert files[0] == files[1]
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert osp.isfile(atomic / name)
    assert (atomic / 'last_checkpoint').read_text() == str(
        atomic / 'epoch_2.pth'
    )
    a = torch.load(atomic / 'epoch_2.pth', weights_only=False)
    s = torch.load(stock / 'epoch_2.pth', weights_only=False)
    for key in s['state_dict']:
        torch.testing.assert_close(a['state_dict'][key], s['state_dict'][key])


KILLED_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    from mmaniso.engine.hooks import atomic_checkpoint_hook as m
    path = sys.argv[1]
    m.write_atomically(b'old, complete', path)
    def killed(fd):  # SIGKILL once the bytes are in the file, before rename
        os.kill(os.getpid(), signal.SIGKILL)
    m.os.fsync = killed
    m.AtomicLocalBackend().put(b'x' * 1_000_000, path)
    """
)


def test_sigkill_mid_write_never_leaves_a_partial_file_under_its_name(
    tmp_path,
):
    path = tmp_path / 'epoch_3.pth'
    proc = subprocess.run(
        [sys.executable, '-c', KILLED_WRITE.format(repo=REPO), str(path)],
        capture_output=True,
        timeout=900,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert path.read_bytes() == b'old, complete'
    # The scrap left by the kill is hidden and matches no *.pth glob, so
    # neither --resume nor the work-dir guard mistakes it for a checkpoint.
    assert glob.glob(str(tmp_path / '*.pth')) == [str(path)]
