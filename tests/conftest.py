import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

if os.environ.get('PYTEST_XDIST_WORKER'):
    # `make test` runs two pytest workers on two cores: one thread each
    # (torch's own pools and the tools these tests start), else every
    # worker's pool takes all the cores and they fight.
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    os.environ.setdefault('MKL_NUM_THREADS', '1')
    import torch

    torch.set_num_threads(1)
FIXTURE_CONFIG = osp.join(REPO, 'configs', 'fixture', 'res18_wflw_fixture.py')
# A subprocess timeout guards a hang, never a speed: the slowest tool run
# here takes about 2 minutes on idle cores, and a machine five times busier
# must still pass.
HANG_TIMEOUT = 1800


# A config holding only a mean-shape head whose WFLW AnisotropicLoss learns
# its scales (``scales`` to fill in): enough to rebuild the loss from it.
LEARNED_HEAD_CONFIG = (
    'model = dict(head=dict(type="MeanShapeRegressionHead", '
    'decoder=dict(type="RegressionLabel", input_size=(64, 64)), '
    'loss=dict(type="AnisotropicLoss", point_types="wflw", '
    'scales={scales!r}, weighting="normalised", distance="mahalanobis")))\n'
)


@pytest.fixture(scope='session')
def wflw_fixture(tmp_path_factory):
    """A generated 98-point dataset: 8 train and 4 test faces."""
    from mmaniso.testing import write_face_fixture

    root = tmp_path_factory.mktemp('fixture_wflw')
    write_face_fixture(str(root), dict(train=8, test=4), num_keypoints=98)
    return root


def random_head_model(config, mean_shape=True):
    """``config``'s model (eval mode) with random weights, a non-zero fc
    layer (an untrained head's dx is 0, which would hide a wrong graph or a
    wrong decode) and, with ``mean_shape``, a made-up mean shape."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmpose.apis import init_model

    import mmaniso  # noqa: F401  (registers)

    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    model = init_model(cfg, None, device='cpu')
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        fc = model.head.fc
        fc.weight.copy_(torch.randn(fc.weight.shape, generator=gen) * 0.02)
        fc.bias.copy_(torch.randn(fc.bias.shape, generator=gen) * 0.02)
    if mean_shape:
        rng = np.random.default_rng(0)
        model.head.set_mean_shape(rng.uniform(0.2, 0.8, (98, 2)))
    return model.eval()


@pytest.fixture(scope='session')
def random_head_checkpoint(tmp_path_factory):
    """The SynthFace anisotropic config's ``random_head_model``, saved once
    per session (the export and inference tests read it): dict(config,
    path, model (shared: never change it), mean_shape)."""
    from mmengine.runner import save_checkpoint

    config = osp.join(REPO, 'configs', 'synthface', 'res18_aniso_synthface.py')
    model = random_head_model(config)
    path = str(tmp_path_factory.mktemp('random_head') / 'model.pth')
    save_checkpoint(dict(state_dict=model.state_dict()), path)
    return dict(
        config=config,
        path=path,
        model=model,
        mean_shape=model.head.mean_shape.clone(),
    )


def data_root_options(root) -> list:
    """--cfg-options pointing every dataloader of a config at ``root``."""
    root = str(root) + '/'
    return [
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('train', 'val', 'test')
    ]


def run_tool(args, cwd=None, env=None, timeout=HANG_TIMEOUT):
    """Runs a repo script with this interpreter; returns the process."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + ([full_env['PYTHONPATH']] if 'PYTHONPATH' in full_env else [])
    )
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable] + [str(a) for a in args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc


def load_tool(*parts: str):
    """A repo script as a fresh module, to call its functions in-process:
    ``load_tool('tools', 'infer.py')`` (or its absolute path)."""
    import importlib.util

    path = osp.join(REPO, *parts)
    name = 'mmaniso_tool_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port nobody listens on now, for a torchrun rendezvous."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def dist_env() -> dict:
    """Environment of a multi-process CPU run: the repo importable (the test
    hooks are ``mmaniso.testing.hooks``), one thread per rank on this small
    machine."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([REPO, env.get('PYTHONPATH', '')])
    env['OMP_NUM_THREADS'] = '1'
    return env
