"""Every config loads and builds; the paper configs train and test."""

import glob
import os.path as osp
import re

import pytest
import torch
from conftest import REPO, run_tool
from mmengine.config import Config

from mmaniso.testing import write_face_fixture

CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
)
PAPER = {
    'aniso_res50_wflw.py': (98, dict(train=8, test=4), 'test'),
    'aniso_res50_300w.py': (68, dict(train=8, valid=4), 'valid'),
    'aniso_res50_aflw.py': (19, dict(train=8, test=4), 'test'),
}


def _name(path):
    return osp.relpath(path, osp.join(REPO, 'configs'))


def test_all_configs_are_found():
    names = {_name(c) for c in CONFIGS}
    assert set(PAPER) <= names
    assert len([n for n in names if n.startswith('baselines/')]) == 7
    assert len([n for n in names if n.startswith('ablations/')]) == 4


@pytest.mark.parametrize('config', CONFIGS, ids=_name)
def test_config_builds_model_without_pretrained_weights(config):
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    cfg = Config.fromfile(config)
    assert 'mmaniso' in cfg.custom_imports['imports']
    init_default_scope('mmpose')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).eval()
    num_joints = cfg.model.head.num_joints
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64), None, mode='tensor')
    assert tuple(out.shape) == (1, num_joints, 2)
    loss = cfg.model.head.loss
    if loss.type == 'AnisotropicLoss':
        # The curves name as many points as the head predicts.
        assert model.head.loss_module.point_types.num_keypoints == num_joints


@pytest.mark.slow
@pytest.mark.parametrize('config_name', sorted(PAPER))
def test_paper_config_trains_two_iterations_and_tests(config_name, tmp_path):
    num_keypoints, splits, eval_split = PAPER[config_name]
    paths = write_face_fixture(
        str(tmp_path / 'data'),
        splits,
        num_keypoints=num_keypoints,
        image_size=96,
    )
    root = str(tmp_path / 'data') + '/'
    options = [
        'model.backbone.init_cfg=None',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1',
        f'val_evaluator.ann_file={paths[eval_split]}',
        f'test_evaluator.ann_file={paths[eval_split]}',
    ]
    for split in ('train', 'val', 'test'):
        options += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.batch_size=4',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False',
        ]
    config = osp.join(REPO, 'configs', config_name)
    work = tmp_path / 'work'
    train = run_tool(
        [
            osp.join(REPO, 'tools', 'train.py'),
            config,
            '--work-dir',
            work,
            '--cfg-options',
            *options,
        ]
    )
    log = train.stdout + train.stderr
    assert train.returncode == 0, log[-4000:]
    # One epoch of the balanced draw (at most the 8 faces): 1-2 iterations.
    steps = re.findall(r'Epoch\(train\)\s+\[1\]\[(\d+)/(\d+)\]', log)
    assert steps and int(steps[-1][1]) <= 2
    assert steps[-1][0] == steps[-1][1]
    assert 'PoseBalancedSampler: 8 samples in 9 pose bins' in log
    assert re.search(r'Epoch\(val\).*NME: [0-9.]+', log)
    assert osp.isfile(work / 'epoch_1.pth')
    test = run_tool(
        [
            osp.join(REPO, 'tools', 'test.py'),
            config,
            work / 'epoch_1.pth',
            '--work-dir',
            work,
            '--cfg-options',
            *options,
        ]
    )
    out = test.stdout + test.stderr
    assert test.returncode == 0, out[-4000:]
    assert re.search(r'(Epoch|Iter)\(test\).*NME: [0-9.]+', out)
    assert 'Face alignment results of' in out


@pytest.mark.parametrize('config_name', sorted(PAPER))
def test_paper_configs_feed_a_gpu(config_name):
    # Sized for GPU training (the reason is in aniso_res50_wflw.py): several
    # workers, alive between the short balanced epochs, pinned batches.
    cfg = Config.fromfile(osp.join(REPO, 'configs', config_name))
    train = cfg.train_dataloader
    assert train.num_workers >= 8
    assert train.persistent_workers and train.pin_memory
    assert train.sampler.type == 'PoseBalancedSampler'
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert loader.num_workers >= 2 and loader.pin_memory
        assert loader.dataset.test_mode
