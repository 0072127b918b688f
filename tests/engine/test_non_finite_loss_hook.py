"""Tests of NonFiniteLossHook: stop at the first non-finite loss, never save
non-finite tensors."""

import glob
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from toy_runner import ToyDataset, toy_runner

from mmaniso.engine.hooks import NonFiniteLossError, NonFiniteLossHook
from mmaniso.engine.hooks.non_finite_loss_hook import non_finite_tensors

GUARD = dict(type='NonFiniteLossHook')


def test_a_nan_sample_stops_training_naming_iteration_and_sample(tmp_path):
    # Sample 5 is the second of batch 3 (batch 2, no shuffle): the loss of
    # iteration 3 is NaN, and one SGD step makes every weight NaN.
    runner = toy_runner(
        tmp_path, ToyDataset(num=8, bad=5), custom_hooks=[GUARD]
    )
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    message = str(info.value)
    assert 'iteration 3 ' in message and 'epoch 1' in message
    assert 'loss_toy=nan' in message
    assert 'images/face_005.png' in message  # the batch's samples
    assert 'images/face_004.png' in message
    # Stopped inside epoch 1: nothing was saved, so no NaN weights either.
    assert glob.glob(osp.join(tmp_path, '*.pth')) == []


def test_without_the_hook_nan_weights_would_be_saved(tmp_path):
    # What the hook prevents: MMEngine alone trains on and saves NaN.
    runner = toy_runner(tmp_path, ToyDataset(num=8, bad=5), max_epochs=1)
    runner.train()
    saved = torch.load(osp.join(tmp_path, 'epoch_1.pth'), weights_only=False)
    assert list(non_finite_tensors(saved['state_dict']))


def test_a_finite_run_is_untouched(tmp_path):
    runner = toy_runner(tmp_path, custom_hooks=[GUARD])
    runner.train()
    assert osp.isfile(osp.join(tmp_path, 'epoch_2.pth'))


def test_a_checkpoint_with_non_finite_tensors_is_refused():
    hook = NonFiniteLossHook()
    runner = SimpleNamespace(epoch=3, iter=40)
    weights = torch.ones(4)
    weights[2] = float('inf')
    checkpoint = dict(
        state_dict=dict(
            **{'backbone.conv.weight': torch.zeros(2)},
            **{'head.fc.weight': weights},
        ),
        optimizer=dict(state={0: dict(momentum_buffer=torch.ones(2))}),
    )
    with pytest.raises(NonFiniteLossError, match='refusing to save') as info:
        hook.before_save_checkpoint(runner, checkpoint)
    assert 'state_dict.head.fc.weight' in str(info.value)
    assert 'backbone.conv.weight' not in str(info.value)
    weights[2] = 1.0
    hook.before_save_checkpoint(runner, checkpoint)  # finite: saved
    assert not list(non_finite_tensors(checkpoint))


def test_suspect_samples_with_non_finite_ground_truth_come_first():
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample

    samples = []
    for i in range(3):
        s = PoseDataSample(metainfo=dict(img_path=f'img_{i}.jpg', id=i))
        kpts = torch.zeros(1, 4, 2)
        if i == 1:
            kpts[0, 2, 0] = float('inf')  # a 1e300 coordinate in float32
        s.gt_instance_labels = InstanceData(keypoint_labels=kpts)
        samples.append(s)
    hook = NonFiniteLossHook()
    runner = SimpleNamespace(epoch=0, iter=6)
    with pytest.raises(NonFiniteLossError) as info:
        hook.after_train_iter(
            runner,
            batch_idx=6,
            data_batch=dict(data_samples=samples),
            outputs=dict(loss=torch.tensor(float('inf')), acc_pose=0.5),
        )
    message = str(info.value)
    assert 'iteration 7 ' in message
    assert '1 of its 3 samples have NaN or infinite ground truth' in message
    assert 'img_path=img_1.jpg, id=1' in message
    assert 'img_0.jpg' not in message
