"""Tests of PoseBalancedSampler: balance, shards, determinism, DDP."""

import os.path as osp
import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import REPO, data_root_options, dist_env, free_port

from mmaniso.datasets import samplers
from mmaniso.datasets.samplers import (
    PoseBalancedSampler,
    balanced_draw,
    balanced_draw_size,
)
from mmaniso.testing import InMemoryPoseDataset

# Five pose groups at equal steps along one shape mode, so that five
# equal-width bins hold exactly one group each.
GROUP_SIZES = (3, 8, 20, 10, 5)


def grouped_shapes(sizes=GROUP_SIZES, seed=0):
    """Shapes ``base + t * mode`` with t = -2..2 by group, moved at random.

    Returns the shapes (N, K, 2) and each one's group (N,).
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(12, 2))
    mode = rng.normal(size=(12, 2))
    steps = np.linspace(-2, 2, len(sizes))
    groups = np.repeat(np.arange(len(sizes)), sizes)
    shapes = base + 0.05 * steps[groups][:, None, None] * mode
    shapes = shapes + rng.normal(0, 0.002, shapes.shape)
    angle = rng.uniform(-0.5, 0.5, len(groups))
    rot = np.stack(
        [
            np.stack([np.cos(angle), -np.sin(angle)], -1),
            np.stack([np.sin(angle), np.cos(angle)], -1),
        ],
        -2,
    )
    scale = rng.uniform(20, 60, len(groups))[:, None, None]
    shapes = scale * np.einsum('nij,nkj->nki', rot, shapes) + 100
    return shapes, groups


@pytest.fixture(scope='module')
def dataset():
    shapes, _ = grouped_shapes()
    return InMemoryPoseDataset.from_arrays(shapes)


def make_sampler(dataset, rank=0, world_size=1, monkeypatch=None, **kw):
    if monkeypatch is not None:
        monkeypatch.setattr(
            samplers, 'get_dist_info', lambda: (rank, world_size)
        )
    kw.setdefault('seed', 0)
    kw.setdefault('draws_per_epoch', 1)  # the one-draw epochs tested here
    return PoseBalancedSampler(dataset, **kw)


def test_bins_follow_the_pose_groups(dataset):
    _, groups = grouped_shapes()
    sampler = PoseBalancedSampler(dataset, num_bins=5, seed=0)
    assert sampler.bin_ids.shape == (len(groups),)
    assert sampler.bin_counts.tolist() in (
        list(GROUP_SIZES),
        list(GROUP_SIZES[::-1]),
    )
    for g in range(len(GROUP_SIZES)):
        assert len(set(sampler.bin_ids[groups == g].tolist())) == 1


def test_undersampled_epoch_is_balanced_without_repeats(dataset):
    sampler = make_sampler(dataset, num_bins=5)
    indices = list(sampler)
    assert sampler.epoch_size == 5 * min(GROUP_SIZES)
    assert len(indices) == len(sampler) == sampler.epoch_size
    assert len(set(indices)) == len(indices)
    per_bin = Counter(sampler.bin_ids[indices].tolist())
    assert sorted(per_bin.values()) == [min(GROUP_SIZES)] * 5


def test_oversampled_epoch_repeats_minority_bins(dataset):
    sampler = make_sampler(dataset, num_bins=5, mode='oversample')
    indices = list(sampler)
    largest = max(GROUP_SIZES)
    assert len(indices) == sampler.epoch_size == 5 * largest
    per_bin = Counter(sampler.bin_ids[indices].tolist())
    assert sorted(per_bin.values()) == [largest] * 5
    # Each member of a bin of 8 appears 2 or 3 times (20 = 2 * 8 + 4).
    uses = Counter(indices)
    small = torch.nonzero(sampler.bin_counts == 8).item()
    members = torch.nonzero(sampler.bin_ids == small).flatten().tolist()
    assert sorted(Counter(uses[m] for m in members).items()) == [
        (2, 4),
        (3, 4),
    ]


@pytest.mark.parametrize('world_size', [2, 3, 4])
def test_shards_are_equal_and_disjoint(dataset, monkeypatch, world_size):
    full = list(make_sampler(dataset, num_bins=5))  # one rank
    shards = [
        list(
            make_sampler(
                dataset,
                rank,
                world_size,
                monkeypatch,
                num_bins=5,
                round_up=False,
            )
        )
        for rank in range(world_size)
    ]
    # round_up=False: disjoint shards that together are the epoch.
    assert sorted(sum(shards, [])) == sorted(full)
    for a in range(world_size):
        for b in range(a + 1, world_size):
            assert not set(shards[a]) & set(shards[b])

    padded = [
        make_sampler(dataset, rank, world_size, monkeypatch, num_bins=5)
        for rank in range(world_size)
    ]
    lists = [list(s) for s in padded]
    # round_up=True: equal lengths; only the padding repeats indices.
    assert len({len(x) for x in lists}) == 1
    assert all(len(x) == len(s) for x, s in zip(lists, padded))
    total = len(lists[0]) * world_size
    pad = total - len(full)
    assert 0 <= pad < world_size
    merged = [i for j in range(len(lists[0])) for i in (x[j] for x in lists)]
    assert merged == (full + full)[:total]


def test_every_rank_draws_the_same_epoch(dataset, monkeypatch):
    shards = [
        list(make_sampler(dataset, rank, 2, monkeypatch, num_bins=5))
        for rank in range(2)
    ]
    whole = list(make_sampler(dataset, 0, 1, monkeypatch, num_bins=5))
    assert len(whole) % 2 == 1  # rank 1's share ends with the padding
    padded = whole + whole[:1]
    assert shards[0] == padded[0::2]
    assert shards[1] == padded[1::2]


def test_set_epoch_draws_anew(dataset):
    sampler = make_sampler(dataset, num_bins=5)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    assert sorted(first) != sorted(second)  # a new subset, not a new order
    per_bin = Counter(sampler.bin_ids[second].tolist())
    assert sorted(per_bin.values()) == [min(GROUP_SIZES)] * 5


def test_same_seed_and_epoch_give_the_same_draw(dataset):
    a = PoseBalancedSampler(dataset, num_bins=5, seed=3)
    b = PoseBalancedSampler(dataset, num_bins=5, seed=3)
    c = PoseBalancedSampler(dataset, num_bins=5, seed=4)
    assert list(a) == list(b)
    assert list(a) != list(c)
    a.set_epoch(5)
    b.set_epoch(5)
    assert list(a) == list(b)


def test_resumed_epoch_matches_uninterrupted_run(dataset):
    running = PoseBalancedSampler(dataset, num_bins=5, seed=11)
    history = []
    for epoch in range(4):
        running.set_epoch(epoch)
        history.append(list(running))
    resumed = PoseBalancedSampler(dataset, num_bins=5, seed=11)
    resumed.set_epoch(3)
    assert list(resumed) == history[3]


def test_draw_is_immune_to_global_reseeding(dataset):
    sampler = PoseBalancedSampler(dataset, num_bins=5, seed=0)
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    first = list(sampler)
    torch.manual_seed(999)
    np.random.seed(999)
    random.seed(999)
    torch.rand(10)
    np.random.rand(10)
    assert list(sampler) == first


def test_fewer_samples_than_bins(monkeypatch):
    shapes, _ = grouped_shapes(sizes=(1, 1, 2))
    with pytest.warns(UserWarning, match='4 shapes for 9 bins'):
        sampler = PoseBalancedSampler(
            InMemoryPoseDataset.from_arrays(shapes), num_bins=9, seed=0
        )
    nonempty = int((sampler.bin_counts > 0).sum())
    assert sampler.bin_counts.sum() == 4
    assert sampler.epoch_size == nonempty * int(
        sampler.bin_counts[sampler.bin_counts > 0].min()
    )
    indices = list(sampler)
    assert len(indices) == sampler.epoch_size
    assert len(set(indices)) == len(indices)


def test_one_nonempty_bin_gives_a_plain_shuffle():
    shapes, _ = grouped_shapes(sizes=(10,))  # one pose, moved at random
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, 2))
    shapes = base * rng.uniform(20, 60, (10, 1, 1)) + 100  # same shape
    with pytest.warns(UserWarning, match='do not vary in pose'):
        sampler = PoseBalancedSampler(
            InMemoryPoseDataset.from_arrays(shapes), num_bins=4, seed=0
        )
    assert sampler.bin_counts.tolist() == [10, 0, 0, 0]
    indices = list(sampler)
    assert sorted(indices) == list(range(10))
    assert indices != list(range(10))


def test_shuffle_false_keeps_dataset_order(dataset):
    sampler = make_sampler(dataset, num_bins=5, shuffle=False)
    indices = list(sampler)
    assert indices == sorted(indices)
    sampler.set_epoch(1)
    assert list(sampler) != indices  # still a new draw


def test_seed_none_uses_a_synchronised_seed(dataset, monkeypatch):
    monkeypatch.setattr(samplers, 'sync_random_seed', lambda: 1234)
    sampler = PoseBalancedSampler(dataset, num_bins=5)
    assert sampler.seed == 1234


def test_logs_bin_counts_and_epoch_length(dataset, monkeypatch):
    messages = []
    monkeypatch.setattr(
        samplers, 'print_log', lambda msg, **kw: messages.append(msg)
    )
    sampler = PoseBalancedSampler(dataset, num_bins=5, seed=0)
    assert len(messages) == 1
    assert str(sampler.bin_counts.tolist()) in messages[0]
    assert f'epoch of {sampler.epoch_size} samples' in messages[0]


def test_invalid_settings_are_refused(dataset):
    with pytest.raises(ValueError, match='mode must be one of'):
        PoseBalancedSampler(dataset, mode='balanced', seed=0)
    with pytest.raises(ValueError, match='num_bins must be >= 1'):
        PoseBalancedSampler(dataset, num_bins=0, seed=0)
    with pytest.raises(TypeError, match='num_bins must be an int'):
        PoseBalancedSampler(dataset, num_bins='9', seed=0)


def test_registered_and_built_from_config(dataset):
    from mmpose.registry import DATA_SAMPLERS

    sampler = DATA_SAMPLERS.build(
        dict(type='PoseBalancedSampler', num_bins=5),
        default_args=dict(dataset=dataset, seed=0),
    )
    assert isinstance(sampler, PoseBalancedSampler)
    assert sampler.num_bins == 5


def test_epoch_helpers():
    counts = torch.tensor([5, 0, 2, 9])
    assert balanced_draw_size(counts, 'undersample') == 6
    assert balanced_draw_size(counts, 'oversample') == 27
    ids = torch.tensor([0] * 5 + [2] * 2 + [3] * 9)
    gen = torch.Generator().manual_seed(0)
    epoch = balanced_draw(ids, 4, 'undersample', gen)
    assert sorted(Counter(ids[epoch].tolist()).values()) == [2, 2, 2]


def test_reads_a_real_mmpose_dataset(wflw_fixture):
    from mmpose.datasets import WFLWDataset

    ds = WFLWDataset(
        data_root=str(wflw_fixture),
        ann_file='annotations/face_landmarks_wflw_train.json',
        data_prefix=dict(img='images/'),
        pipeline=[],
    )
    sampler = PoseBalancedSampler(ds, num_bins=3, seed=0)
    assert sampler.bin_ids.shape == (len(ds),)
    assert sampler.bin_counts.sum() == len(ds)
    info = ds.get_data_info(2)
    np.testing.assert_allclose(
        sampler.annotations.keypoints[2], info['keypoints'][0]
    )
    np.testing.assert_allclose(
        sampler.annotations.bbox_scale[2], info['bbox_scale'][0]
    )


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_gloo_training_shards_the_same_bins(tmp_path):
    from mmaniso.testing import write_face_fixture

    root = tmp_path / 'data'
    write_face_fixture(str(root), dict(train=16, test=4), num_keypoints=98)
    config = tmp_path / 'ddp_balanced.py'
    base = osp.join(REPO, 'configs', 'fixture')
    config.write_text(
        f"_base_ = ['{base}/res18_wflw_fixture_balanced.py']\n"
        'custom_imports = dict(\n'
        "    imports=['mmaniso', 'mmaniso.testing.hooks'],\n"
        '    allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='SyncBuffersHook'),\n"
        "                dict(type='PoseBalancingHook'),\n"
        "                dict(type='RankDumpHook')]\n"
    )
    work = tmp_path / 'work'
    env = dist_env()
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node=2',
            '--master_addr=127.0.0.1',
            f'--master_port={free_port()}',
            osp.join(REPO, 'tools', 'train.py'),
            str(config),
            '--launcher',
            'pytorch',
            '--no-validate',
            '--work-dir',
            str(work),
            '--cfg-options',
            'train_cfg.max_epochs=1',
            *data_root_options(root),
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'world size 2' in log
    dumps = [torch.load(work / f'rank{r}.pt') for r in range(2)]
    assert [d['rank'] for d in dumps] == [0, 1]

    counts = dumps[0]['bin_counts']
    assert counts == dumps[1]['bin_counts']
    nonempty = [c for c in counts if c > 0]
    epoch_size = len(nonempty) * min(nonempty)
    assert epoch_size % 2 == 0  # no padding: the shards must be disjoint
    first, second = dumps[0]['indices'], dumps[1]['indices']
    assert len(first) == len(second) == epoch_size // 2
    assert not set(first) & set(second)

    # The same bins here, in one process, and a balanced union of shards.
    from mmpose.datasets import WFLWDataset

    # Built as in test_reads_a_real_mmpose_dataset, on this test's data.
    ds = WFLWDataset(
        data_root=str(root),
        ann_file='annotations/face_landmarks_wflw_train.json',
        data_prefix=dict(img='images/'),
        pipeline=[],
    )
    local = PoseBalancedSampler(ds, num_bins=3, seed=0)
    assert local.bin_counts.tolist() == counts
    per_bin = Counter(local.bin_ids[first + second].tolist())
    assert sorted(per_bin.values()) == [min(nonempty)] * len(nonempty)

    # DDP kept the replicas identical, mean shape included.
    states = [d['state_dict'] for d in dumps]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key])
    assert torch.isfinite(states[0]['head.mean_shape']).all()


def test_draws_per_epoch_concatenates_fresh_balanced_draws(dataset):
    one = PoseBalancedSampler(dataset, num_bins=5, seed=4, draws_per_epoch=1)
    three = PoseBalancedSampler(dataset, num_bins=5, seed=4, draws_per_epoch=3)
    draw = 5 * min(GROUP_SIZES)
    assert three.epoch_size == 3 * one.epoch_size == 3 * draw
    draws = torch.tensor(list(three)).reshape(3, draw)
    for part in draws:  # each third is one balanced draw, no repeats
        counts = torch.bincount(three.bin_ids[part], minlength=5)
        assert counts.tolist() == [min(GROUP_SIZES)] * 5
        assert len(set(part.tolist())) == draw
    # The first draw is the one-draw epoch; the later ones are new draws.
    assert draws[0].tolist() == list(one)
    assert draws[1].tolist() != draws[0].tolist()


def test_auto_draws_make_an_epoch_about_the_dataset_size(dataset):
    sampler = PoseBalancedSampler(
        dataset, num_bins=5, seed=0, draws_per_epoch='auto'
    )
    assert sampler.draws_per_epoch == round(len(dataset) / 15) == 3
    assert len(sampler) == 45
    with pytest.raises(ValueError, match='draws_per_epoch'):
        PoseBalancedSampler(dataset, num_bins=5, draws_per_epoch=0)


def test_a_pasted_sampler_keeps_the_recipes_iterations(dataset):
    # The drop-in snippet names only num_bins: its epochs must stay about
    # as long as the dataset, or a recipe's 210 epochs train a fraction of
    # their iterations. One balanced draw here is 5 * 3 = 15 of 46 faces.
    pasted = PoseBalancedSampler(dataset, num_bins=5, seed=0)
    draw = 5 * min(GROUP_SIZES)
    assert pasted.draw_size == draw < len(dataset) / 2
    assert pasted.draws_per_epoch == round(len(dataset) / draw)
    assert abs(pasted.epoch_size - len(dataset)) <= draw / 2
    # One draw per epoch stays available when chosen.
    chosen = make_sampler(dataset, num_bins=5, draws_per_epoch=1)
    assert chosen.epoch_size == draw
