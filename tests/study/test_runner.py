"""mmaniso.study.runner, the runner of tools/demo.py and
tools/misc/study.py, against stand-in train.py and test.py scripts that record
their command lines (no training)."""

import json
import os.path as osp

import pytest

from mmaniso.study.runner import (
    METRICS_FILE,
    TOOLS_DIR,
    TrainProgress,
    find_checkpoint,
    parse_train_line,
    thread_env,
    train_then_test,
)

# Each stand-in appends {argv, env} to calls.jsonl beside it.
_RECORD = """
import json, os, os.path as osp, sys
here = osp.dirname(osp.abspath(__file__))
with open(osp.join(here, 'calls.jsonl'), 'a') as f:
    f.write(json.dumps(dict(
        argv=sys.argv, cwd=os.getcwd(),
        gpu=os.environ.get('CUDA_VISIBLE_DEVICES'))) + '\\n')
work_dir = sys.argv[sys.argv.index('--work-dir') + 1]
"""
_TRAIN = """
os.makedirs(work_dir, exist_ok=True)
for name in ('epoch_1.pth', 'best_NME_epoch_1.pth'):
    open(osp.join(work_dir, name), 'w').close()
with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
    f.write(osp.abspath(osp.join(work_dir, 'epoch_1.pth')))
print('training output')
# Two lines as MMEngine's logger writes them.
print('2026/12/02 06:56:40 - mmengine - INFO - Epoch(train)  [1][20/63]  '
      'lr: 2.000000e-04  eta: 0:03:25  time: 0.222365  data_time: 0.067106  '
      'loss: 0.438398  loss_kpt: 0.438398  acc_pose: 0.007228', flush=True)
print('2026/12/02 06:59:38 - mmengine - INFO - Epoch(train) [15][60/63]  '
      'lr: 1.000000e-05  eta: 0:00:00  time: 0.214978  data_time: 0.057517  '
      'loss: 0.023582  loss_kpt: 0.023582', flush=True)
"""
_TEST = """
print('testing output')
if os.environ.get('FAIL_TEST'):
    sys.exit(3)
out = sys.argv[sys.argv.index('--metrics-out') + 1]
with open(out, 'w') as f:
    json.dump({'NME': 4.5, 'FR@0.1': 1.0}, f)
"""


@pytest.fixture
def tools_dir(tmp_path):
    folder = tmp_path / 'tools'
    folder.mkdir()
    (folder / 'train.py').write_text(_RECORD + _TRAIN)
    (folder / 'test.py').write_text(_RECORD + _TEST)
    return folder


def _calls(tools_dir):
    lines = (tools_dir / 'calls.jsonl').read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_trains_then_tests_and_returns_metrics(tools_dir, tmp_path):
    work_dir = str(tmp_path / 'run')
    echoed = []
    result = train_then_test(
        'cfg.py',
        work_dir,
        seed=3,
        cfg_options=['a=1', 'b=2'],
        predictions_file=str(tmp_path / 'preds.pkl'),
        overwrite_results=True,
        env={'CUDA_VISIBLE_DEVICES': '5'},
        echo=echoed.append,
        tools_dir=str(tools_dir),
    )
    assert result.metrics == {'NME': 4.5, 'FR@0.1': 1.0}
    assert result.metrics_file == osp.join(work_dir, METRICS_FILE)
    assert result.checkpoint == osp.join(work_dir, 'epoch_1.pth')
    assert result.seconds > 0
    train, test = _calls(tools_dir)
    assert train['argv'][1:] == [
        'cfg.py',
        '--work-dir',
        work_dir,
        '--overwrite',
        '--cfg-options',
        'randomness.seed=3',
        'a=1',
        'b=2',
    ]
    # The seed is the training's; the test gets the shared options only.
    assert test['argv'][1:] == [
        'cfg.py',
        result.checkpoint,
        '--work-dir',
        work_dir,
        '--metrics-out',
        result.metrics_file,
        '--out',
        str(tmp_path / 'preds.pkl'),
        '--overwrite',
        '--cfg-options',
        'a=1',
        'b=2',
    ]
    assert train['gpu'] == test['gpu'] == '5'
    assert [e.split()[2] for e in echoed] == [
        str(tools_dir / 'train.py'),
        str(tools_dir / 'test.py'),
    ]


def test_without_options_the_test_gets_no_cfg_options(tools_dir, tmp_path):
    result = train_then_test(
        'cfg.py',
        str(tmp_path / 'run'),
        checkpoint='best',
        tools_dir=str(tools_dir),
    )
    train, test = _calls(tools_dir)
    assert '--cfg-options' not in train['argv']
    assert '--cfg-options' not in test['argv']
    assert '--out' not in test['argv'] and '--overwrite' not in test['argv']
    assert osp.basename(result.checkpoint) == 'best_NME_epoch_1.pth'


def test_relative_paths_are_read_in_cwd(tools_dir, tmp_path):
    result = train_then_test(
        'cfg.py',
        'work/run',
        cwd=str(tmp_path),
        log_file='work/run/run.log',
        tools_dir=str(tools_dir),
    )
    assert result.metrics['NME'] == 4.5
    assert {c['cwd'] for c in _calls(tools_dir)} == {str(tmp_path)}
    log = (tmp_path / 'work' / 'run' / 'run.log').read_text()
    assert 'training output' in log and 'testing output' in log


def test_a_failed_tool_raises_with_the_end_of_its_log(
    tools_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv('FAIL_TEST', '1')
    log_file = tmp_path / 'run' / 'run.log'
    with pytest.raises(
        RuntimeError,
        match='(?s)testing failed with exit code 3; the end of .*run.log:'
        '.*testing output',
    ):
        train_then_test(
            'cfg.py',
            str(tmp_path / 'run'),
            log_file=str(log_file),
            tools_dir=str(tools_dir),
        )


def test_missing_tools_and_checkpoints_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match='pip install -e'):
        train_then_test('cfg.py', str(tmp_path), tools_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='did its training finish'):
        find_checkpoint(str(tmp_path), 'best')
    with pytest.raises(ValueError, match="got 'first'"):
        find_checkpoint(str(tmp_path), 'first')


def test_the_default_tools_are_this_checkout():
    assert osp.isfile(osp.join(TOOLS_DIR, 'train.py'))
    assert osp.isfile(osp.join(TOOLS_DIR, 'test.py'))


def test_progress_gets_each_training_line_and_the_log_gets_everything(
    tools_dir, tmp_path
):
    seen = []
    log_file = tmp_path / 'run.log'
    train_then_test(
        'cfg.py',
        str(tmp_path / 'run'),
        log_file=str(log_file),
        progress=seen.append,
        tools_dir=str(tools_dir),
    )
    assert seen == [
        TrainProgress(1, 20, 63, 0.438398, '0:03:25'),
        TrainProgress(15, 60, 63, 0.023582, '0:00:00'),
    ]
    text = log_file.read_text()
    assert 'training output' in text and 'testing output' in text
    assert 'Epoch(train) [15][60/63]' in text


def test_other_log_lines_are_not_progress():
    assert parse_train_line('Epoch(val) [15][8/8]    NME: 7.358491') is None
    assert parse_train_line('UserWarning: something') is None
    nan = parse_train_line(
        'Epoch(train)  [2][40/63]  lr: 1e-3  eta: 0:01:00  loss: nan'
    )
    assert nan is not None and nan.loss != nan.loss  # NaN shows as NaN


def test_progress_line_prints_first_and_every_fifth_epoch_off_a_terminal(
    capsys,
):
    from mmaniso.study.runner import ProgressLine

    line = ProgressLine('[study] l1 seed 0', tty=False)
    for epoch in range(1, 16):
        for it in (20, 40, 60):  # several log lines per epoch
            line(TrainProgress(epoch, it, 63, 0.5 / epoch, '0:01:00'))
    line.close()
    out = capsys.readouterr().out.splitlines()
    assert [int(o.split('epoch ')[1].split()[0]) for o in out] == [
        1,
        5,
        10,
        15,
    ]
    assert (
        out[0]
        == '[study] l1 seed 0: epoch 1 iter 20/63 loss 0.5000 eta 0:01:00'
    )
    assert line.last.epoch == 15 and line.last.iteration == 60


def test_progress_line_rewrites_one_line_on_a_terminal(capsys):
    from mmaniso.study.runner import ProgressLine

    line = ProgressLine('[demo] aniso', tty=True)
    line(TrainProgress(1, 20, 63, 0.25, '0:02:00'))
    line(TrainProgress(1, 40, 63, 0.2, '0:01:50'))
    line.close()
    out = capsys.readouterr().out
    assert out.count('\r') == 2 and out.endswith('\n')
    assert out.count('\n') == 1


def test_thread_env_splits_the_cores_between_the_runs():
    assert thread_env(3, cpus=2) == {
        'OMP_NUM_THREADS': '1',
        'MKL_NUM_THREADS': '1',
    }
    assert thread_env(3, cpus=16)['OMP_NUM_THREADS'] == '5'
    assert thread_env(1, cpus=2)['OMP_NUM_THREADS'] == '2'
    with pytest.raises(ValueError, match='jobs'):
        thread_env(0, cpus=2)


# ----------------------------------------------------------------- records
def test_a_truncated_metrics_file_is_refused_naming_it(
    tools_dir, tmp_path, monkeypatch
):
    # A test killed (or out of disk) while writing leaves half a file.
    (tools_dir / 'test.py').write_text(
        _RECORD
        + """
out = sys.argv[sys.argv.index('--metrics-out') + 1]
with open(out, 'w') as f:
    f.write('{"NME": 4.5, "FR@0.1": 1')
"""
    )
    from mmaniso.study.runner import RecordError

    work_dir = tmp_path / 'run'
    with pytest.raises(RecordError) as error:
        train_then_test('cfg.py', str(work_dir), tools_dir=str(tools_dir))
    message = str(error.value)
    assert str(work_dir / METRICS_FILE) in message
    assert 'not valid JSON' in message and 'delete' in message
    # No fingerprint vouches for it.
    assert not (work_dir / 'run_record.json').exists()


@pytest.mark.parametrize(
    'text, words',
    [
        ('[1, 2]', 'JSON list'),
        ('{"FR@0.1": 1.0}', "no 'NME'"),
        ('{"NME": NaN}', "'NME' is nan"),
        ('{"NME": 4.5, "FR@0.1": Infinity}', "'FR@0.1' is inf"),
        ('{"NME": "4.5"}', "'NME' is '4.5'"),
        ('{"NME": true}', "'NME' is True"),
    ],
)
def test_metrics_records_are_checked_before_use(tmp_path, text, words):
    from mmaniso.study.runner import RecordError, read_metrics

    path = tmp_path / METRICS_FILE
    path.write_text(text)
    with pytest.raises(RecordError, match='not|no ') as error:
        read_metrics(str(path))
    assert str(path) in str(error.value) and words in str(error.value)


def test_the_record_holds_the_runs_fingerprint(tools_dir, tmp_path):
    from mmaniso.study.runner import find_record, run_fingerprint

    config = tmp_path / 'cfg.py'
    config.write_text('x = 1\n')
    work_dir = tmp_path / 'run'
    result = train_then_test(
        str(config),
        str(work_dir),
        seed=2,
        cfg_options=['a=1'],
        record_extra={'noise': 'arc v2'},
        tools_dir=str(tools_dir),
    )
    record = json.loads((work_dir / 'run_record.json').read_text())
    assert record['fingerprint'] == result.fingerprint
    assert result.fingerprint['seed'] == 2
    assert result.fingerprint['cfg_options'] == ['a=1']
    assert result.fingerprint['noise'] == 'arc v2'
    same = run_fingerprint(
        str(config), seed=2, cfg_options=['a=1'], extra={'noise': 'arc v2'}
    )
    found = find_record(str(work_dir), same, accept_legacy=False)
    assert found.metrics == result.metrics and not found.problem
    # Every other option, seed, noise model or config text is another run.
    others = [
        run_fingerprint(str(config), seed=3, cfg_options=['a=1']),
        run_fingerprint(str(config), seed=2, cfg_options=['a=2']),
        run_fingerprint(
            str(config), seed=2, cfg_options=['a=1'], extra={'noise': 'x'}
        ),
        run_fingerprint(
            str(config), seed=2, cfg_options=['a=1'], checkpoint='best'
        ),
    ]
    for other in others:
        found = find_record(str(work_dir), other, accept_legacy=True)
        assert found.metrics is None
        assert 'other settings' in found.problem
    config.write_text('x = 2\n')
    changed = run_fingerprint(
        str(config), seed=2, cfg_options=['a=1'], extra={'noise': 'arc v2'}
    )
    found = find_record(str(work_dir), changed, accept_legacy=True)
    assert found.metrics is None and 'config text' in found.problem


def test_the_fingerprint_follows_local_base_configs(tmp_path):
    from mmaniso.study.runner import config_digest

    (tmp_path / 'base.py').write_text('lr = 0.1\n')
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['./base.py', 'mmpose::x.py']\nx = 1\n")
    before = config_digest(str(child))
    (tmp_path / 'base.py').write_text('lr = 0.2\n')
    assert config_digest(str(child)) != before
    assert config_digest(str(tmp_path / 'missing.py')) is None


def test_a_record_without_fingerprint_is_legacy(tmp_path):
    from mmaniso.study.runner import (
        find_record,
        move_record_aside,
        run_fingerprint,
    )

    (tmp_path / METRICS_FILE).write_text('{"NME": 4.5}')
    wanted = run_fingerprint('cfg.py', seed=0)
    found = find_record(str(tmp_path), wanted, accept_legacy=True)
    assert found.legacy and found.metrics == {'NME': 4.5}
    found = find_record(str(tmp_path), wanted, accept_legacy=False)
    assert found.legacy and found.metrics is None
    assert 'no fingerprint' in found.problem
    aside = move_record_aside(str(tmp_path))
    assert osp.isfile(osp.join(aside, METRICS_FILE))
    assert not (tmp_path / METRICS_FILE).exists()
    assert find_record(str(tmp_path), wanted, True).metrics is None


# ----------------------------------------------------------------- signals
# A stand-in training that starts a worker of its own (as a DataLoader
# does), writes both process ids and waits to be stopped.
_SLOW_TRAIN = """
import subprocess, time
sleep = 'import time; time.sleep(600)'
worker = subprocess.Popen([sys.executable, '-c', sleep])
with open(work_dir + '.pids.tmp', 'w') as f:
    f.write(f'{os.getpid()} {worker.pid}')
os.replace(work_dir + '.pids.tmp', work_dir + '.pids')
time.sleep(600)
"""
# The runner as tools/misc/study.py uses it: two runs at once from threads.
_RUNNER = """
import sys
from concurrent.futures import ThreadPoolExecutor
from mmaniso.study.runner import (
    RunInterrupted, forward_signals, train_then_test)
tools_dir, *work_dirs = sys.argv[1:]
forward_signals()
try:
    with ThreadPoolExecutor(len(work_dirs)) as pool:
        futures = [
            pool.submit(train_then_test, 'cfg.py', w, tools_dir=tools_dir,
                        log_file=w + '.log')
            for w in work_dirs
        ]
        for future in futures:
            future.result()
except RunInterrupted as e:
    print(e, flush=True)
    sys.exit(128 + e.signum)
"""


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent does
    not)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


@pytest.mark.parametrize('signum', ['SIGTERM', 'SIGINT'])
def test_a_signal_to_the_runner_stops_its_tools_and_their_workers(
    tools_dir, tmp_path, signum
):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    (tools_dir / 'train.py').write_text(_RECORD + _SLOW_TRAIN)
    script = tmp_path / 'runner.py'
    script.write_text(_RUNNER)
    work_dirs = [str(tmp_path / 'run0'), str(tmp_path / 'run1')]
    env = dict(os.environ, PYTHONPATH=REPO)
    runner = subprocess.Popen(
        [sys.executable, str(script), str(tools_dir), *work_dirs],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids = []
    try:
        # Both trainings up (a guard against a hang, not a timing).
        deadline = time.monotonic() + 300
        while not all(osp.isfile(w + '.pids') for w in work_dirs):
            assert runner.poll() is None, runner.stdout.read()
            assert time.monotonic() < deadline, 'the stand-ins never started'
            time.sleep(0.2)
        for w in work_dirs:
            with open(w + '.pids') as f:
                pids += [int(p) for p in f.read().split()]
        assert all(_alive(pid) for pid in pids)
        runner.send_signal(getattr(signal, signum))
        out, _ = runner.communicate(timeout=900)
        assert runner.returncode == 128 + getattr(signal, signum), out
        assert f'stopped by {signum}' in out
        # Nothing the runner started outlives it; wait for the last
        # workers to be reaped by whoever adopted them.
        deadline = time.monotonic() + 300
        while any(_alive(pid) for pid in pids):
            assert time.monotonic() < deadline, [
                pid for pid in pids if _alive(pid)
            ]
            time.sleep(0.2)
        # No test was started after the signal.
        assert all('test.py' not in c['argv'][0] for c in _calls(tools_dir))
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
