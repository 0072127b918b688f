"""The drop-in snippet, as the README and the configs page print it, is a
working child of MMPose's own WFLW regression recipe: built into a Runner
on a generated WFLW-layout dataset, it trains the recipe's number of
iterations with mmaniso's head, loss, sampler, hooks and metric."""

import os.path as osp
import re

import pytest
from conftest import REPO
from mmengine.config import Config

from mmaniso.testing import write_face_fixture

RECIPE = 'mmpose::face_2d_keypoint/topdown_regression/wflw/'


def snippet(path: str) -> str:
    """The python block of ``path`` that is a child of MMPose's WFLW
    regression recipe."""
    text = open(path, encoding='utf-8').read()
    blocks = re.findall(r'```python\n(.*?)```', text, flags=re.S)
    found = [b for b in blocks if RECIPE in b]
    assert len(found) == 1, f'{path}: {len(found)} snippets name the recipe'
    return found[0]


def test_readme_and_configs_page_print_the_same_snippet():
    assert snippet(osp.join(REPO, 'README.md')) == snippet(
        osp.join(REPO, 'docs', 'configs.md')
    )


@pytest.fixture(scope='module')
def wflw_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('wflw_snippet')
    # More faces than one batch of the recipe's 64, so that iterations per
    # epoch can tell a balanced draw from a pass of the dataset.
    write_face_fixture(str(root), dict(train=150, test=4), num_keypoints=98)
    return str(root) + '/'


def _runner(config_file: str, root: str, work_dir: str):
    from mmengine.runner import Runner

    cfg = Config.fromfile(config_file)
    # What only this machine needs: the generated data, no download of the
    # ImageNet weights, no worker processes.
    cfg.model.backbone.init_cfg = None
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = root
        loader.num_workers = 0
        loader.persistent_workers = False
    ann = root + 'annotations/face_landmarks_wflw_test.json'
    if 'ann_file' in cfg.val_evaluator or (
        cfg.val_evaluator.get('type') == 'FaceLandmarkMetric'
    ):
        cfg.val_evaluator.ann_file = ann
        cfg.test_evaluator.ann_file = ann
    cfg.work_dir = work_dir
    return cfg, Runner.from_cfg(cfg)


def test_snippet_as_written_builds_the_method_on_the_recipe(
    wflw_root, tmp_path
):
    from mmaniso.datasets.samplers import PoseBalancedSampler
    from mmaniso.engine.hooks import PoseBalancingHook
    from mmaniso.evaluation import FaceLandmarkMetric
    from mmaniso.models.heads.mean_shape_head import MeanShapeRegressionHead
    from mmaniso.models.losses.anisotropic_loss import AnisotropicLoss

    child = tmp_path / 'my_aniso_wflw.py'
    child.write_text(snippet(osp.join(REPO, 'README.md')))
    base = tmp_path / 'recipe.py'
    base.write_text(
        f"_base_ = '{RECIPE}td-reg_res50_8xb64-210e_wflw-256x256.py'\n"
    )
    cfg, runner = _runner(str(child), wflw_root, str(tmp_path / 'work'))
    _, stock = _runner(str(base), wflw_root, str(tmp_path / 'stock'))

    head = runner.model.head
    assert isinstance(head, MeanShapeRegressionHead)
    assert isinstance(head.loss_module, AnisotropicLoss)
    loss = head.loss_module
    assert (loss.a, loss.b) == (5.0, 3.0)
    # The head passes its codec's input size to the loss.
    assert tuple(loss.input_size.tolist()) == (256, 256)
    assert loss.point_types.num_keypoints == 98

    loader = runner.build_dataloader(cfg.train_dataloader)
    assert isinstance(loader.sampler, PoseBalancedSampler)
    # The recipe's schedule keeps its iterations: an epoch is as long as
    # the stock recipe's pass of the same dataset.
    stock_loader = stock.build_dataloader(stock.cfg.train_dataloader)
    assert len(loader) == len(stock_loader) == 3  # ceil(150 / 64)
    assert cfg.train_cfg.max_epochs == stock.cfg.train_cfg.max_epochs == 210

    hooks = [type(h).__name__ for h in runner.hooks]
    assert 'PoseBalancingHook' in hooks
    # custom_hooks replaced the base list; SyncBuffersHook is kept.
    assert 'SyncBuffersHook' in hooks
    assert any(isinstance(h, PoseBalancingHook) for h in runner.hooks)

    evaluator = runner.build_evaluator(cfg.val_evaluator)
    assert isinstance(evaluator.metrics[0], FaceLandmarkMetric)
