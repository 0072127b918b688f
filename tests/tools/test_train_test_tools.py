"""End-to-end runs of tools/train.py and tools/test.py on the fixture."""

import glob
import json
import os.path as osp
import re

import pytest
from conftest import FIXTURE_CONFIG, REPO, data_root_options, run_tool

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _one_epoch(work, data_root) -> list:
    """tools/train.py arguments for one epoch of the fixture config."""
    options = ['train_cfg.max_epochs=1', *data_root_options(data_root)]
    return [TRAIN, FIXTURE_CONFIG, '--work-dir', work, '--cfg-options']\
        + options


@pytest.fixture(scope='module')
def trained(wflw_fixture, tmp_path_factory):
    """One epoch of 2 iterations (8 images, batch 4)."""
    work = tmp_path_factory.mktemp('train')
    out = _ok(run_tool(_one_epoch(work, wflw_fixture)))
    return work, out


@pytest.mark.slow
def test_train_runs_two_iterations_and_saves(trained):
    work, log = trained
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', log)
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert 'Distributed training: False' in log


@pytest.mark.slow
def test_resume_continues_from_saved_epoch(trained, wflw_fixture):
    work, _ = trained
    log = _ok(
        run_tool(
            [
                TRAIN,
                FIXTURE_CONFIG,
                '--work-dir',
                work,
                '--resume',
                '--cfg-options',
                'train_cfg.max_epochs=2',
                *data_root_options(wflw_fixture),
            ]
        )
    )
    assert 'resumed epoch: 1, iter: 2' in log
    # Training restarts at epoch 2, never at epoch 1.
    assert re.search(r'Epoch\(train\)\s+\[2\]\[1/2\]', log)
    assert not re.search(r'Epoch\(train\)\s+\[1\]\[', log)
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))


@pytest.mark.slow
def test_resume_from_named_checkpoint(trained, wflw_fixture, tmp_path):
    work, _ = trained
    log = _ok(
        run_tool(
            [
                TRAIN,
                FIXTURE_CONFIG,
                '--work-dir',
                tmp_path,
                '--resume',
                osp.join(work, 'epoch_1.pth'),
                '--cfg-options',
                'train_cfg.max_epochs=2',
                *data_root_options(wflw_fixture),
            ]
        )
    )
    assert 'resumed epoch: 1, iter: 2' in log


@pytest.mark.slow
def test_test_tool_prints_metric_and_dumps(trained, wflw_fixture, tmp_path):
    work, _ = trained
    out_file = tmp_path / 'preds.pkl'
    log = _ok(
        run_tool(
            [
                TEST,
                FIXTURE_CONFIG,
                osp.join(work, 'epoch_1.pth'),
                '--work-dir',
                tmp_path,
                '--out',
                out_file,
                '--cfg-options',
                *data_root_options(wflw_fixture),
            ]
        )
    )
    match = re.search(r'Epoch\(test\).*NME: ([0-9.]+)', log)
    assert match, log[-2000:]
    assert float(match.group(1)) > 0
    assert out_file.stat().st_size > 0


@pytest.mark.slow
def test_show_dir_draws_every_test_face(trained, wflw_fixture, tmp_path):
    # MMPose's --show-dir on this stack: its OpenCV drawing fails under
    # numpy 2, so the tool must pick a backend that draws.
    import cv2

    work, _ = trained
    show = tmp_path / 'show'
    _ok(
        run_tool(
            [
                TEST,
                FIXTURE_CONFIG,
                osp.join(work, 'epoch_1.pth'),
                '--work-dir',
                tmp_path / 'work',
                '--show-dir',
                show,
                '--cfg-options',
                *data_root_options(wflw_fixture),
            ]
        )
    )
    drawn = sorted(glob.glob(str(show / '**' / '*.png'), recursive=True))
    ann = 'annotations/face_landmarks_wflw_test.json'
    with open(osp.join(wflw_fixture, ann)) as f:
        faces = len(json.load(f)['annotations'])
    assert len(drawn) == faces
    assert all(cv2.imread(p) is not None for p in drawn)


@pytest.mark.slow
def test_load_from_checkpoint(trained, wflw_fixture, tmp_path):
    # Same frame as the resume test above: only the flags differ.
    work, _ = trained
    log = _ok(
        run_tool(
            [
                TRAIN,
                FIXTURE_CONFIG,
                '--work-dir',
                tmp_path,
                '--cfg-options',
                'train_cfg.max_epochs=1',
                f'load_from={work}/epoch_1.pth',
                *data_root_options(wflw_fixture),
            ]
        )
    )
    assert 'Load checkpoint from' in log
    assert glob.glob(str(tmp_path / 'epoch_1.pth'))


def test_amp_without_cuda_is_refused_clearly(wflw_fixture, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip('CUDA present: --amp is allowed')
    proc = run_tool(
        [
            TRAIN,
            FIXTURE_CONFIG,
            '--amp',
            '--work-dir',
            tmp_path,
            '--cfg-options',
            *data_root_options(wflw_fixture),
        ]
    )
    assert proc.returncode != 0
    assert '--amp needs a CUDA device' in proc.stderr


@pytest.mark.slow
def test_retraining_never_mixes_with_an_earlier_run(wflw_fixture, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    for epoch in (1, 2):
        (work / f'epoch_{epoch}.pth').write_text(f'old {epoch}')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    args = _one_epoch(work, wflw_fixture)
    refused = run_tool(args)
    assert refused.returncode != 0
    assert f'work dir {work} already holds checkpoints' in refused.stderr
    assert (work / 'epoch_1.pth').read_text() == 'old 1'
    _ok(run_tool(args + ['--overwrite']))
    # Only the new run's checkpoints are in the work dir...
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert (work / 'epoch_1.pth').read_bytes()[:5] != b'old 1'
    latest = (work / 'last_checkpoint').read_text().strip()
    assert latest == osp.join(str(work), 'epoch_1.pth')
    # ...and the old ones are kept aside, untouched.
    (previous,) = work.glob('previous_*')
    assert (previous / 'epoch_1.pth').read_text() == 'old 1'
    assert (previous / 'epoch_2.pth').read_text() == 'old 2'
