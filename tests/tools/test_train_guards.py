"""End-to-end: tools/train.py's guards on the fixture, with MMPose's own
recipe underneath (res18_wflw_fixture.py adds no mmaniso hook)."""

import glob
import json
import os.path as osp
import shutil

import pytest
from conftest import FIXTURE_CONFIG, REPO, data_root_options, run_tool

TRAIN = osp.join(REPO, 'tools', 'train.py')
ANN = osp.join('annotations', 'face_landmarks_wflw_train.json')


def _train(work, data_root, *options, resume=False):
    args = [TRAIN, FIXTURE_CONFIG, '--work-dir', work, '--no-validate']
    if resume:
        args.append('--resume')
    return run_tool(
        args + ['--cfg-options', *options, *data_root_options(data_root)]
    )


@pytest.mark.slow
def test_no_validate_never_ends_with_non_finite_weights(
    wflw_fixture, tmp_path
):
    # A learning rate of 1e30 turns the weights non-finite after the first
    # update; MMEngine alone trains on, saves NaN weights and exits 0.
    proc = _train(
        tmp_path,
        wflw_fixture,
        'optim_wrapper.optimizer.lr=1e30',
        'train_cfg.max_epochs=2',
    )
    assert proc.returncode != 0
    message = proc.stderr
    assert 'non-finite training loss at epoch 1, iteration 2' in message
    assert 'img_path=' in message and 'train_' in message
    assert glob.glob(osp.join(tmp_path, '*.pth')) == []
    assert not osp.exists(osp.join(tmp_path, 'last_checkpoint'))


@pytest.mark.slow
def test_plain_config_refuses_resume_on_changed_annotations(
    wflw_fixture, tmp_path
):
    data = tmp_path / 'data'
    shutil.copytree(wflw_fixture, data)
    work = tmp_path / 'work'
    first = _train(work, data, 'train_cfg.max_epochs=1')
    assert first.returncode == 0, first.stderr[-3000:]
    # The checkpoints were written whole, under their final names only.
    assert sorted(osp.basename(p) for p in glob.glob(f'{work}/*.pth')) == [
        'epoch_1.pth'
    ]
    assert 'AtomicCheckpointHook' in first.stdout + first.stderr
    # One keypoint moved by a pixel: still valid data, but not the data
    # the checkpoint was trained on.
    path = data / ANN
    content = json.loads(path.read_text())
    content['annotations'][0]['keypoints'][0] += 1.0
    path.write_text(json.dumps(content))
    resumed = _train(work, data, 'train_cfg.max_epochs=2', resume=True)
    assert resumed.returncode != 0
    assert 'other training annotations' in resumed.stderr
    assert str(path) in resumed.stderr
    assert not osp.exists(work / 'epoch_2.pth')
