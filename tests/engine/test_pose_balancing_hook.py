"""Tests of PoseBalancingHook: mean shape at before_train, seed on resume."""

import json
import os
import os.path as osp
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import REPO, data_root_options, run_tool
from mmpose.datasets.transforms import GetBBoxCenterScale

import mmaniso  # noqa: F401  (registers)
from mmaniso.checkpoint import load_checkpoint_file
from mmaniso.datasets.samplers import PoseBalancedSampler
from mmaniso.datasets.training_shapes import (
    crop_normalised_keypoints,
    head_mean_shape,
)
from mmaniso.engine import PoseBalancingHook
from mmaniso.models.heads import MeanShapeRegressionHead
from mmaniso.ops.pose import pose_bins
from mmaniso.testing import InMemoryPoseDataset

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
CONFIG = osp.join(REPO, 'configs', 'fixture', 'res18_wflw_fixture_balanced.py')


def fake_pose_dataset(num=30, num_kpts=6, padding=1.5, seed=0):
    """Posed copies of a random shape, with a pipeline holding a padding."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(num_kpts, 2))
    mode = rng.normal(size=(num_kpts, 2))
    t = rng.choice([-1.0, 0.0, 1.0], num, p=[0.1, 0.6, 0.3])
    shapes = base + 0.1 * t[:, None, None] * mode
    keypoints = shapes * rng.uniform(20, 40, (num, 1, 1)) + 50
    return InMemoryPoseDataset.from_arrays(
        keypoints, pipeline=[GetBBoxCenterScale(padding=padding)]
    )


def fake_runner(dataset, sampler=None, mean_shape=None, num_kpts=6, it=0):
    model = torch.nn.Module()
    model.head = MeanShapeRegressionHead(
        in_channels=4,
        num_joints=num_kpts,
        decoder=dict(type='RegressionLabel', input_size=(64, 48)),
        mean_shape=mean_shape,
    )
    loader = SimpleNamespace(dataset=dataset, sampler=sampler)
    return SimpleNamespace(
        model=model, train_dataloader=loader, iter=it, epoch=it // 10
    )


def test_fills_the_mean_from_the_samplers_bins():
    dataset = fake_pose_dataset()
    sampler = PoseBalancedSampler(dataset, num_bins=3, seed=0)
    runner = fake_runner(dataset, sampler)
    assert not runner.model.head.has_mean_shape

    PoseBalancingHook().before_train(runner)

    expected = head_mean_shape(
        sampler.annotations, sampler.bin_ids, (64, 48), padding=1.5
    )
    assert runner.model.head.has_mean_shape
    torch.testing.assert_close(runner.model.head.mean_shape, expected)
    # Pose-balanced: every bin counts once, unlike the plain mean.
    plain = crop_normalised_keypoints(sampler.annotations, (64, 48), 1.5)
    assert len(set(sampler.bin_counts.tolist())) > 1
    assert not np.allclose(expected.numpy(), plain.mean(0), atol=1e-4)


def test_bins_its_own_without_a_pose_sampler():
    dataset = fake_pose_dataset()
    runner = fake_runner(dataset, sampler=object())
    PoseBalancingHook(num_bins=4, bbox_padding=1.25).before_train(runner)

    annotations = PoseBalancedSampler(dataset, num_bins=4, seed=0).annotations
    shapes = crop_normalised_keypoints(annotations)
    ids = pose_bins(shapes, annotations.visible, 4).ids
    expected = head_mean_shape(annotations, ids, (64, 48), 1.25)
    torch.testing.assert_close(runner.model.head.mean_shape, expected)


def test_explicit_padding_wins_over_the_pipeline():
    dataset = fake_pose_dataset(padding=1.5)
    sampler = PoseBalancedSampler(dataset, num_bins=3, seed=0)
    runner_a = fake_runner(dataset, sampler)
    runner_b = fake_runner(dataset, sampler)
    PoseBalancingHook().before_train(runner_a)
    PoseBalancingHook(bbox_padding=1.0).before_train(runner_b)
    spread_a = np.ptp(runner_a.model.head.mean_shape.numpy(), 0)
    spread_b = np.ptp(runner_b.model.head.mean_shape.numpy(), 0)
    np.testing.assert_allclose(spread_b, spread_a * 1.5, rtol=1e-4)


def test_keeps_a_mean_from_config_or_checkpoint():
    dataset = fake_pose_dataset()
    given = np.full((6, 2), 0.25, np.float32)
    runner = fake_runner(dataset, mean_shape=given)
    PoseBalancingHook().before_train(runner)
    np.testing.assert_array_equal(runner.model.head.mean_shape.numpy(), given)


def test_refuses_a_head_of_another_size():
    dataset = fake_pose_dataset(num_kpts=6)
    runner = fake_runner(dataset, num_kpts=7)
    with pytest.raises(ValueError, match='num_joints=7'):
        PoseBalancingHook().before_train(runner)


def test_sampler_seed_goes_through_checkpoints():
    dataset = fake_pose_dataset()
    sampler = PoseBalancedSampler(dataset, num_bins=3, seed=17)
    checkpoint = dict(meta=dict(epoch=2))
    PoseBalancingHook().before_save_checkpoint(
        fake_runner(dataset, sampler), checkpoint
    )
    assert checkpoint['meta']['pose_balanced_sampler_seed'] == 17

    # Resumed (iteration > 0): the new run's sampler takes the saved seed.
    fresh = PoseBalancedSampler(dataset, num_bins=3, seed=99)
    hook = PoseBalancingHook()
    hook.after_load_checkpoint(fake_runner(dataset, fresh), checkpoint)
    hook.before_train(fake_runner(dataset, fresh, it=20))
    assert fresh.seed == 17

    # load_from (iteration 0) starts a new run: its own seed stays.
    other = PoseBalancedSampler(dataset, num_bins=3, seed=99)
    hook = PoseBalancingHook()
    hook.after_load_checkpoint(fake_runner(dataset, other), checkpoint)
    hook.before_train(fake_runner(dataset, other, it=0))
    assert other.seed == 99


def _saved(sampler, dataset) -> dict:
    checkpoint = dict(meta=dict(epoch=2))
    PoseBalancingHook().before_save_checkpoint(
        fake_runner(dataset, sampler), checkpoint
    )
    return checkpoint


def test_checkpoint_records_the_samplers_settings():
    dataset = fake_pose_dataset()
    sampler = PoseBalancedSampler(
        dataset, num_bins=3, seed=17, draws_per_epoch=2
    )
    settings = _saved(sampler, dataset)['meta']['pose_balanced_sampler']
    assert settings == dict(
        num_bins=3,
        mode='undersample',
        shuffle=True,
        round_up=True,
        draws_per_epoch=2,
        draw_limit=sampler.draw_size,
        temperature=None,
        clip_quantiles=None,
        num_samples=30,
        annotations=sampler.annotation_fingerprint,
    )
    # The fingerprint follows the data, not the sampler's other settings.
    same = PoseBalancedSampler(dataset, num_bins=5, seed=1)
    moved = PoseBalancedSampler(fake_pose_dataset(seed=1), num_bins=3, seed=17)
    assert same.annotation_fingerprint == sampler.annotation_fingerprint
    assert moved.annotation_fingerprint != sampler.annotation_fingerprint


@pytest.mark.parametrize(
    'change, named',
    [
        (dict(num_bins=4), 'num_bins: 3 in the checkpoint, 4 now'),
        (dict(mode='oversample'), "mode: 'undersample' in the checkpoint"),
        (dict(draws_per_epoch=3), 'draws_per_epoch: 1 in the checkpoint'),
        (dict(dataset_seed=1), 'annotations: '),
    ],
)
def test_resume_with_a_changed_sampler_stops_and_says_what(change, named):
    dataset = fake_pose_dataset()
    checkpoint = _saved(
        PoseBalancedSampler(dataset, num_bins=3, seed=17, draws_per_epoch=1),
        dataset,
    )
    settings = dict(num_bins=3, seed=99, draws_per_epoch=1)
    settings.update(change)
    resumed_data = fake_pose_dataset(seed=settings.pop('dataset_seed', 0))
    fresh = PoseBalancedSampler(resumed_data, **settings)
    hook = PoseBalancingHook()
    hook.after_load_checkpoint(fake_runner(resumed_data, fresh), checkpoint)
    with pytest.raises(RuntimeError, match='another sequence') as info:
        hook.before_train(fake_runner(resumed_data, fresh, it=20))
    assert named in str(info.value)
    assert 'accept_changed_sampler=True' in str(info.value)

    # Accepted on purpose: the run goes on with the checkpoint's seed.
    hook = PoseBalancingHook(accept_changed_sampler=True)
    hook.after_load_checkpoint(fake_runner(resumed_data, fresh), checkpoint)
    hook.before_train(fake_runner(resumed_data, fresh, it=20))
    assert fresh.seed == 17


def test_load_from_with_other_settings_is_a_new_run():
    dataset = fake_pose_dataset()
    checkpoint = _saved(
        PoseBalancedSampler(dataset, num_bins=3, seed=17), dataset
    )
    other = PoseBalancedSampler(fake_pose_dataset(seed=1), num_bins=4, seed=5)
    hook = PoseBalancingHook()
    hook.after_load_checkpoint(fake_runner(dataset, other), checkpoint)
    hook.before_train(fake_runner(dataset, other, it=0))  # no error
    assert other.seed == 5


def test_validates_and_is_registered():
    from mmpose.registry import HOOKS

    with pytest.raises(ValueError, match='num_bins must be >= 1'):
        PoseBalancingHook(num_bins=0)
    with pytest.raises(ValueError, match='bbox_padding must be positive'):
        PoseBalancingHook(bbox_padding=0)
    hook = HOOKS.build(dict(type='PoseBalancingHook', num_bins=5))
    assert isinstance(hook, PoseBalancingHook) and hook.num_bins == 5


# End-to-end runs of tools/train.py and tools/test.py.


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _records(work):
    with open(osp.join(work, 'epoch_indices.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def balanced_data(tmp_path_factory):
    from mmaniso.testing import write_face_fixture

    root = tmp_path_factory.mktemp('balanced_data')
    write_face_fixture(str(root), dict(train=16, test=4), num_keypoints=98)
    other = tmp_path_factory.mktemp('other_data')
    write_face_fixture(
        str(other), dict(train=16, test=4), num_keypoints=98, seed=5
    )
    return root, other


@pytest.fixture(scope='module')
def recorder_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'balanced_recorded.py'
    path.write_text(
        f"_base_ = ['{CONFIG}']\n"
        'custom_imports = dict(\n'
        "    imports=['mmaniso', 'mmaniso.testing.hooks'],\n"
        '    allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='SyncBuffersHook'),\n"
        "                dict(type='PoseBalancingHook'),\n"
        "                dict(type='EpochIndicesHook')]\n"
    )
    return str(path)


def _run(args, tmp):
    return run_tool(args, cwd=str(tmp))


@pytest.fixture(scope='module')
def first_run(balanced_data, recorder_config, tmp_path_factory):
    """One epoch of the balanced fixture config, no seed in the config."""
    root, _ = balanced_data
    work = tmp_path_factory.mktemp('first_run')
    log = _ok(
        _run(
            [
                TRAIN,
                recorder_config,
                '--work-dir',
                work,
                '--cfg-options',
                'train_cfg.max_epochs=1',
                *data_root_options(root),
            ],
            work,
        )
    )
    return work, log


def _local_sampler(root, seed):
    from mmpose.datasets import WFLWDataset

    dataset = WFLWDataset(
        data_root=str(root),
        ann_file='annotations/face_landmarks_wflw_train.json',
        data_prefix=dict(img='images/'),
        pipeline=[],
    )
    return PoseBalancedSampler(dataset, num_bins=3, seed=seed)


@pytest.mark.slow
def test_training_logs_bins_and_fills_the_mean(first_run, balanced_data):
    work, log = first_run
    root, _ = balanced_data
    assert re.search(r'PoseBalancedSampler: 16 samples in 3 pose bins', log)
    assert 'PoseBalancingHook: mean shape of 16 training shapes' in log
    assert re.search(r'Epoch\(train\)\s+\[1\]\[\d+/\d+\]', log)

    checkpoint = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    mean = checkpoint['state_dict']['head.mean_shape']
    seed = checkpoint['meta']['pose_balanced_sampler_seed']
    local = _local_sampler(root, seed)
    expected = head_mean_shape(
        local.annotations, local.bin_ids, (64, 64), 1.25
    )
    torch.testing.assert_close(mean, expected)
    # The first epoch drew what the sampler with that seed draws.
    record = _records(work)[0]
    assert record['epoch'] == 0 and record['seed'] == seed
    assert record['indices'] == list(local)


def _copy_run(work, tmp_path, *names):
    """A work dir holding (links to) the first run's files."""
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    for name in names:
        os.link(osp.join(work, name), resumed / name)
    return resumed


def _resume(config, resumed, root, cwd, *options):
    """tools/train.py --resume from epoch 1 to 2 in ``resumed``."""
    return _run(
        [TRAIN, config, '--work-dir', resumed,
         '--resume', str(resumed / 'epoch_1.pth'), '--cfg-options',
         'train_cfg.max_epochs=2', *options, *data_root_options(root)],
        cwd,
    )  # fmt: skip


@pytest.mark.slow
def test_resume_draws_what_an_uninterrupted_run_draws(
    first_run, balanced_data, recorder_config, tmp_path
):
    work, _ = first_run
    root, _ = balanced_data
    resumed = _copy_run(work, tmp_path, 'epoch_1.pth', 'epoch_indices.jsonl')
    log = _ok(_resume(recorder_config, resumed, root, tmp_path))
    assert 'resumed epoch: 1' in log
    seed = _records(work)[0]['seed']
    record = _records(resumed)[-1]
    assert record['epoch'] == 1
    assert record['seed'] == seed  # restored, though this run's differs
    local = _local_sampler(root, seed)
    local.set_epoch(1)
    assert record['indices'] == list(local)
    assert 'keeping the mean shape of the checkpoint' in log


@pytest.mark.slow
def test_resume_with_changed_bins_stops_before_training(
    first_run, balanced_data, recorder_config, tmp_path
):
    work, _ = first_run
    root, _ = balanced_data
    resumed = _copy_run(work, tmp_path, 'epoch_1.pth')
    proc = _resume(
        recorder_config, resumed, root, tmp_path,
        'train_dataloader.sampler.num_bins=4',
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'num_bins: 3 in the checkpoint, 4 now' in out, out[-3000:]
    assert not (resumed / 'epoch_2.pth').exists()


@pytest.mark.slow
def test_load_from_keeps_the_checkpoints_mean(
    first_run, balanced_data, recorder_config, tmp_path
):
    work, _ = first_run
    _, other = balanced_data
    log = _ok(
        _run(
            [
                TRAIN,
                recorder_config,
                '--work-dir',
                tmp_path,
                '--cfg-options',
                'train_cfg.max_epochs=1',
                f'load_from={work}/epoch_1.pth',
                *data_root_options(other),
            ],
            tmp_path,
        )
    )
    assert 'keeping the mean shape of the checkpoint' in log
    before = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))['state_dict']
    after = load_checkpoint_file(tmp_path / 'epoch_1.pth')['state_dict']
    torch.testing.assert_close(
        after['head.mean_shape'], before['head.mean_shape']
    )


@pytest.mark.slow
def test_test_only_run_needs_no_training_data(
    first_run, balanced_data, tmp_path
):
    work, _ = first_run
    root, _ = balanced_data
    missing = str(tmp_path / 'no_such_train_data') + '/'
    log = _ok(
        _run(
            [
                TEST,
                CONFIG,
                osp.join(work, 'epoch_1.pth'),
                '--work-dir',
                tmp_path,
                '--cfg-options',
                f'train_dataloader.dataset.data_root={missing}',
                f'val_dataloader.dataset.data_root={root}/',
                f'test_dataloader.dataset.data_root={root}/',
            ],
            tmp_path,
        )
    )
    match = re.search(r'Epoch\(test\).*NME: ([0-9.]+)', log)
    assert match, log[-2000:]
    assert float(match.group(1)) > 0
    assert 'PoseBalancedSampler: ' not in log  # the sampler was not built


@pytest.mark.parametrize('with_sampler', [True, False])
def test_a_face_outside_its_box_is_left_out_of_the_heads_mean(with_sampler):
    # Sample 4's keypoints lie 200 px outside its box (the box stays where
    # the face was): the filled mean is that of the other samples.
    dataset = fake_pose_dataset()
    info = [dataset.get_data_info(i) for i in range(len(dataset))]
    keypoints = np.stack([d['keypoints'][0] for d in info])
    bboxes = np.stack([d['bbox'][0] for d in info])
    moved = keypoints.copy()
    moved[4] += 200.0
    padding = [GetBBoxCenterScale(padding=1.5)]
    attacked = InMemoryPoseDataset.from_arrays(moved, None, bboxes, padding)
    others = np.delete(np.arange(len(dataset)), 4)
    clean = InMemoryPoseDataset.from_arrays(
        keypoints[others], None, bboxes[others], padding
    )

    def filled(data):
        sampler = None
        if with_sampler:
            sampler = PoseBalancedSampler(data, num_bins=3, seed=0)
        runner = fake_runner(data, sampler)
        PoseBalancingHook(num_bins=3).before_train(runner)
        return runner.model.head.mean_shape

    with pytest.warns(UserWarning, match=r'dataset indices \[4\]'):
        robust = filled(attacked)
    torch.testing.assert_close(robust, filled(clean), atol=1e-5, rtol=0)
