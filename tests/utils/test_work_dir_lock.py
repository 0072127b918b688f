"""One run at a time in a work dir: tools/train.py and tools/test.py take
an exclusive lock on it (mmaniso.utils.launch.lock_work_dir), which the
system drops when the holder ends, however it ends."""

import os
import signal
import subprocess
import sys

import pytest
from conftest import FIXTURE_CONFIG, REPO, data_root_options, run_tool

from mmaniso.utils.launch import lock_work_dir

_HOLD = """
import sys, time
from mmaniso.utils.launch import lock_work_dir
lock_work_dir(sys.argv[1])
print('locked', flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/work."""
    work = tmp_path / 'work'
    proc = subprocess.Popen(
        [sys.executable, '-c', _HOLD, str(work)],
        env=dict(os.environ, PYTHONPATH=REPO),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == 'locked'
        yield work, proc
    finally:
        proc.kill()
        proc.wait()


def test_a_held_work_dir_is_refused_naming_it_and_its_holder(holder):
    work, proc = holder
    with pytest.raises(SystemExit) as refused:
        lock_work_dir(str(work))
    message = str(refused.value)
    assert f'work dir {work} is in use' in message
    assert f'PID {proc.pid}' in message and '--work-dir' in message
    # Nothing is left in the user's folder by the lock.
    assert os.listdir(work) == []


def test_the_lock_goes_with_its_holder(holder):
    work, proc = holder
    proc.send_signal(signal.SIGKILL)  # no clean-up of any kind
    proc.wait()
    assert lock_work_dir(str(work)) is not None
    # Claiming it again from the same process is no conflict.
    assert lock_work_dir(str(work)) is not None


def test_only_rank_0_locks(tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    assert lock_work_dir(str(tmp_path / 'w'), 'pytorch') is None


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_a_second_run_on_a_live_work_dir_is_refused(
    holder, wflw_fixture, tmp_path, tool
):
    work, proc = holder
    (work / 'epoch_1.pth').write_text('the running training writes here')
    before = sorted(os.listdir(work))
    args = [os.path.join(REPO, 'tools', f'{tool}.py'), FIXTURE_CONFIG]
    if tool == 'test':
        args.append(str(work / 'epoch_1.pth'))
    # --overwrite would move the live run's checkpoints aside: refused
    # before that.
    args += ['--work-dir', str(work), '--overwrite', '--cfg-options']
    args += data_root_options(wflw_fixture)
    if tool == 'test':
        args += ['--metrics-out', str(tmp_path / 'metrics.json')]
    refused = run_tool(args)
    assert refused.returncode != 0
    assert f'PID {proc.pid}' in refused.stderr, refused.stderr[-2000:]
    assert f'work dir {work} is in use' in refused.stderr
    assert sorted(os.listdir(work)) == before
    assert not (tmp_path / 'metrics.json').exists()
