"""Every config of a comparison trains as many iterations as its reference.

A pose-balanced epoch is not the dataset's length: undersampled draws are
chained ('auto') and an oversampled draw is cut to the dataset, so that
baselines and ablations get the same budget as the paper's set-up.
"""

import glob
import math
import os.path as osp

import numpy as np
import pytest
from conftest import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.registry import DATA_SAMPLERS

import mmaniso  # noqa: F401  (registers)
from mmaniso.testing import InMemoryPoseDataset

TABLES = {
    'wflw': (
        'aniso_res50_wflw.py',
        sorted(
            glob.glob(osp.join(REPO, 'configs', 'baselines', '*.py'))
            + glob.glob(osp.join(REPO, 'configs', 'ablations', '*.py'))
        ),
    ),
    'synthface': (
        'synthface/res18_aniso_synthface.py',
        sorted(glob.glob(osp.join(REPO, 'configs', 'synthface', '*.py'))),
    ),
}


def _heavy_tailed_faces(num=900, num_kpts=98, seed=0):
    """Shapes that vary along one pose mode with a heavy tail."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(num_kpts, 2))
    mode = rng.normal(size=(num_kpts, 2))
    pose = rng.standard_t(3, num)  # heavy tails, like real yaw
    shapes = base + 0.05 * pose[:, None, None] * mode
    return InMemoryPoseDataset.from_arrays(shapes * 40 + 200)


def _iterations(config, dataset):
    cfg = Config.fromfile(config)
    loader = cfg.train_dataloader
    sampler = DATA_SAMPLERS.build(
        loader.sampler, default_args=dict(dataset=dataset, seed=0)
    )
    per_epoch = math.ceil(len(sampler) / loader.batch_size)
    return per_epoch * cfg.train_cfg.max_epochs, len(sampler)


@pytest.mark.parametrize('table', sorted(TABLES))
def test_configs_of_a_table_share_the_budget(table):
    init_default_scope('mmpose')
    reference, configs = TABLES[table]
    dataset = _heavy_tailed_faces()
    ref_iters, ref_epoch = _iterations(
        osp.join(REPO, 'configs', reference), dataset
    )
    # The undersampled reference chains whole draws: within half a draw of
    # the dataset.
    assert abs(ref_epoch - len(dataset)) <= 0.1 * len(dataset)
    for config in configs:
        iters, epoch = _iterations(config, dataset)
        name = osp.relpath(config, REPO)
        assert abs(iters - ref_iters) <= 0.1 * ref_iters, (
            f'{name}: {iters} iterations, the reference {ref_iters}'
        )
