"""tools/misc/gpu_check.sh, run with --device cpu so that it cannot rot
between the tasks that have a GPU."""

import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools/misc/gpu_check.sh')


def _rows(summary):
    rows = {}
    for line in summary.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 3 and cells[0] not in ('check', '---'):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


@pytest.mark.slow
def test_gpu_check_runs_every_piece_on_the_cpu(tmp_path):
    work = tmp_path / 'check'
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(
        [
            'bash',
            SCRIPT,
            '--device',
            'cpu',
            '--iters',
            '1',
            '--batch-size',
            '2',
            '--images',
            '4',
            '--workers',
            '1',
            '--work-dir',
            str(work),
            '--small-model',
        ],
        capture_output=True,
        text=True,
        env=env,
        # Guards a hang only: about 2 minutes idle; five times that on a
        # busy machine still passes.
        timeout=3600,
    )
    summary = (work / 'summary.md').read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    rows = _rows(summary)
    for name in (
        'environment',
        'data',
        'crop_cache',
        'train_fp32',
        'train_channels_last',
        'train_feed_fp32',
        'feed_benchmark',
        'torchrun',
        'loss paper squared',
        'loss normalised softwing',
        'pose bins',
        'mean shape in checkpoint',
        'test',
        'infer',
    ):
        assert rows[name][0] == 'ok', (name, rows.get(name))
    assert rows['train_amp'][0] == 'skipped'
    assert rows['train_feed_amp'][0] == 'skipped'
    assert 'images/s' in rows['train_feed_fp32'][1]
    assert 'ms/batch' in rows['feed_benchmark'][1]
    assert 'images/s' in rows['train_fp32'][1]
    assert 'gloo backend' in rows['torchrun'][1]
    assert 'channels-last' in rows['train_channels_last'][1]
    assert rows['test'][1].startswith('NME: ')
    # The cache the trainings read is the crop cache, not the photographs.
    assert (
        work / 'cache/annotations/face_landmarks_wflw_train.json'
    ).is_file()
    assert (
        work / 'cache/annotations/face_landmarks_wflw_train.crops.npy'
    ).is_file()
    assert (work / 'infer/grace_hopper.png').is_file()


def test_gpu_check_refuses_bad_options_and_old_work_dirs(tmp_path):
    bad = subprocess.run(
        ['bash', SCRIPT, '--device', 'tpu'], capture_output=True, text=True
    )
    assert bad.returncode == 2 and '--device cpu or cuda' in bad.stderr
    unknown = subprocess.run(
        ['bash', SCRIPT, '--gpus', '2'], capture_output=True, text=True
    )
    assert (
        unknown.returncode == 2 and 'unknown option --gpus' in unknown.stderr
    )
    (tmp_path / 'summary.md').write_text('earlier')
    again = subprocess.run(
        ['bash', SCRIPT, '--device', 'cpu', '--work-dir', str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and 'earlier check' in again.stderr
    assert (tmp_path / 'summary.md').read_text() == 'earlier'
