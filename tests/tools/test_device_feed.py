"""The device feed's one override (tools/train.py --device-augment, or the
documented config block) and a CPU dry run of training with it."""

import glob
import json
import os.path as osp
import re

import pytest
from conftest import FIXTURE_CONFIG, REPO, run_tool

from mmaniso.utils.device_feed import device_augment_config

PAPER_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'aniso_res50_*')))
TRAIN = osp.join(REPO, 'tools', 'train.py')
MAKE_CACHE = osp.join(
    REPO, 'tools', 'dataset_converters', 'make_crop_cache.py'
)
ANN = 'annotations/face_landmarks_wflw_train.json'

# The block docs/benchmarks.md ("Device feed") and the README show.
BLOCK = """
train_dataloader = dict(
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='CropFeedDataset',
        source='array',
        dataset=_base_.train_dataloader.dataset,
    ),
)
model = dict(
    data_preprocessor=dict(
        type='BatchAugmentDataPreprocessor',
        batch_augments=[
            dict(
                type='TopdownBatchAugment',
                pipeline=_base_.train_dataloader.dataset.pipeline,
            )
        ],
    )
)
"""


def _plain(value):
    """A config value as plain data, MMEngine's scope markers dropped."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize('config', PAPER_CONFIGS, ids=osp.basename)
def test_flag_and_documented_block_agree(config, tmp_path):
    from mmengine.config import Config

    child = tmp_path / 'feed.py'
    child.write_text(f"_base_ = ['{config}']\n" + BLOCK)
    block = Config.fromfile(str(child))
    flag = device_augment_config(Config.fromfile(config))
    for key in ('train_dataloader', 'model'):
        assert _plain(flag[key]) == _plain(block[key]), key
    # Validation and testing keep MMPose's pipeline.
    assert _plain(flag.val_dataloader) == _plain(
        Config.fromfile(config).val_dataloader
    )


def test_synthface_configs_keep_their_pipeline():
    for path in glob.glob(osp.join(REPO, 'configs', 'synthface', '*.py')):
        text = open(path).read()
        for name in ('CropFeedDataset', 'BatchAugment', 'TopdownBatchAugment'):
            assert name not in text, (path, name)


def test_flag_refuses_what_cannot_move():
    from mmengine.config import Config

    cfg = Config.fromfile(PAPER_CONFIGS[0])
    with pytest.raises(ValueError, match='source must be one of'):
        device_augment_config(cfg, 'lmdb')
    device_augment_config(cfg)
    with pytest.raises(ValueError, match='already trains from'):
        device_augment_config(cfg)
    udp = Config.fromfile(PAPER_CONFIGS[0])
    udp.train_dataloader.dataset.pipeline[4]['use_udp'] = True
    with pytest.raises(ValueError, match='UDP'):
        device_augment_config(udp)
    other = Config.fromfile(PAPER_CONFIGS[0])
    other.model.data_preprocessor.type = 'ImgDataPreprocessor'
    with pytest.raises(ValueError, match='PoseDataPreprocessor only'):
        device_augment_config(other)


@pytest.mark.slow
def test_fixture_trains_one_epoch_with_the_device_feed(wflw_fixture, tmp_path):
    # The crop cache of the fixture, with its array, by the command line.
    child = tmp_path / 'fixture.py'
    child.write_text(
        f"_base_ = ['{FIXTURE_CONFIG}']\n"
        f"train_dataloader = dict(dataset=dict(data_root='{wflw_fixture}/'))\n"
    )
    cache = tmp_path / 'cache'
    made = run_tool(
        [MAKE_CACHE, child, '--out', cache, '--workers', '1', '--array']
    )
    assert made.returncode == 0, made.stderr[-3000:]
    assert osp.isfile(
        cache / 'annotations/face_landmarks_wflw_train.crops.npy'
    )
    work = tmp_path / 'work'
    proc = run_tool(
        [
            TRAIN,
            FIXTURE_CONFIG,
            '--work-dir',
            work,
            '--device-augment',
            '--cfg-options',
            'train_cfg.max_epochs=1',
            f'train_dataloader.dataset.data_root={cache}/',
            f'val_dataloader.dataset.data_root={wflw_fixture}/',
            f'test_dataloader.dataset.data_root={wflw_fixture}/',
            'randomness.seed=3',
        ]
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', log)
    assert "type='CropFeedDataset'" in log
    assert "type='BatchAugmentDataPreprocessor'" in log
    assert re.search(r'Epoch\(val\)', log)
    assert osp.isfile(work / 'epoch_1.pth')


def _draws(work_dir):
    with open(osp.join(work_dir, 'augment_draws.jsonl')) as f:
        return {r['iter']: r for r in map(json.loads, f)}


@pytest.mark.slow
def test_resumed_training_draws_the_same_augmentation(wflw_fixture, tmp_path):
    # The fixture's crop cache; a config recording the device draws.
    cache = tmp_path / 'cache'
    child = tmp_path / 'fixture.py'
    child.write_text(
        f"_base_ = ['{FIXTURE_CONFIG}']\n"
        "custom_imports = dict(imports=['mmaniso', 'mmaniso.testing.hooks'])\n"
        "custom_hooks = [dict(type='BatchAugmentDrawsHook')]\n"
        f"train_dataloader = dict(dataset=dict(data_root='{wflw_fixture}/'))\n"
    )
    made = run_tool(
        [MAKE_CACHE, child, '--out', cache, '--workers', '1', '--array']
    )
    assert made.returncode == 0, made.stderr[-3000:]

    def train(work, epochs, *extra):
        proc = run_tool(
            [
                TRAIN, child, '--work-dir', work, '--device-augment',
                *extra,
                '--cfg-options',
                f'train_cfg.max_epochs={epochs}',
                f'train_cfg.val_interval={epochs}',
                f'train_dataloader.dataset.data_root={cache}/',
                f'val_dataloader.dataset.data_root={wflw_fixture}/',
                'randomness.seed=3',
            ]
        )  # fmt: skip
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    straight, cut = tmp_path / 'straight', tmp_path / 'cut'
    train(straight, 2)
    train(cut, 1)
    first = _draws(cut)
    train(cut, 2, '--resume')
    whole, resumed = _draws(straight), _draws(cut)
    # 8 faces in batches of 4: iterations 0-1 in epoch 1, 2-3 in epoch 2.
    assert sorted(whole) == [0, 1, 2, 3]
    assert sorted(resumed) == [0, 1, 2, 3]
    for i in (0, 1):
        assert first[i] == whole[i]
    for i in (2, 3):
        assert resumed[i] == whole[i], i
    assert whole[2] != whole[0]
