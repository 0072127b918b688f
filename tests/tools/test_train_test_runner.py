"""mmaniso.utils.train_test_runner, the runner of tools/demo.py and
tools/study.py, against stand-in train.py and test.py scripts that record
their command lines (no training)."""

import json
import os.path as osp

import pytest

from mmaniso.utils.train_test_runner import (
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
    from mmaniso.utils.train_test_runner import ProgressLine

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
    from mmaniso.utils.train_test_runner import ProgressLine

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
