"""Every way a user hands MMEngine a checkpoint refuses a malicious one.

A server on 127.0.0.1 serves a checkpoint that would run ``touch MARKER``
and one with a forged numpy dtype. They are given, as a user would, to
mmaniso's ``tools/train.py`` (``load_from``, ``--resume``, a
``Pretrained`` init) and ``tools/test.py``, and to the APIs MMPose's own
tools and ``mmpose.apis.init_model`` use, where only the config's
``custom_imports`` brings mmaniso in.
"""

import functools
import http.server
import os.path as osp
import textwrap
import threading

import pytest
import torch
from conftest import FIXTURE_CONFIG, REPO, data_root_options, run_tool

from mmaniso.testing.checkpoints import (
    ForgedArray,
    RunsCode,
    save_torchscript_archive,
)

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """(base URL, marker path, env with a private TORCH_HOME)."""
    root = tmp_path_factory.mktemp('served')
    marker = root / 'pwned'
    torch.save(dict(meta=RunsCode(marker), state_dict={}), root / 'evil.pth')
    torch.save(dict(meta=ForgedArray(), state_dict={}), root / 'forged.pth')
    # torch.load would hand this one to torch.jit.load, which runs it.
    save_torchscript_archive(root / 'torchscript.pth', marker)
    # Only strings and tensors, but MMEngine runs the config text on resume
    # (meta.config) and in an inferencer given weights alone (the others).
    code = f"x = __import__('os').system('touch {marker}')\n"
    torch.save(
        dict(
            meta=dict(epoch=0, iter=0, config=code, cfg=code),
            message_hub=dict(runtime_info=dict(cfg=code)),
            state_dict={},
        ),
        root / 'config_code.pth',
    )
    # Plain data only, but MMEngine's registry imports and calls a dotted
    # type it does not know when the inferencer builds the model.
    data = f"model = dict(type='subprocess.getoutput', cmd='touch {marker}')\n"
    torch.save(
        dict(
            meta=dict(cfg=data),
            message_hub=dict(runtime_info=dict(cfg=data)),
            state_dict={},
        ),
        root / 'config_type_path.pth',
    )
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = dict(TORCH_HOME=str(root / 'torch_home'))
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', marker, env
    finally:
        server.shutdown()
        server.server_close()


def _refused(proc, marker, url):
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert 'refused to load this checkpoint' in out, out[-3000:]
    assert url in out
    assert 'weights_only=False' not in out
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize('name', ['evil', 'forged'])
def test_train_load_from_url_is_refused(served, wflw_fixture, tmp_path, name):
    base, marker, env = served
    url = f'{base}/{name}.pth'
    proc = run_tool(
        [TRAIN, FIXTURE_CONFIG, '--work-dir', tmp_path / 'w',
         '--cfg-options', f'load_from={url}', 'train_cfg.max_epochs=1',
         *data_root_options(wflw_fixture)],
        env=env,
    )  # fmt: skip
    _refused(proc, marker, url)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['evil', 'config_code'])
def test_train_resume_from_url_is_refused(
    served, wflw_fixture, tmp_path, name
):
    base, marker, env = served
    url = f'{base}/{name}.pth'
    proc = run_tool(
        [TRAIN, FIXTURE_CONFIG, '--work-dir', tmp_path / 'w',
         '--resume', url, '--cfg-options', 'train_cfg.max_epochs=1',
         *data_root_options(wflw_fixture)],
        env=env,
    )  # fmt: skip
    _refused(proc, marker, url)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['evil', 'torchscript'])
def test_test_tool_refuses_a_remote_checkpoint(served, wflw_fixture, name):
    base, marker, env = served
    url = f'{base}/{name}.pth'
    proc = run_tool(
        [TEST, FIXTURE_CONFIG, url, '--cfg-options',
         *data_root_options(wflw_fixture)],
        env=env,
    )  # fmt: skip
    _refused(proc, marker, url)


_INFERENCER = """
import sys
import mmaniso
from mmpose.apis.inferencers import Pose2DInferencer
Pose2DInferencer(model=None, weights=sys.argv[1], device='cpu')
"""


@pytest.mark.slow
@pytest.mark.parametrize('name', ['config_code.pth', 'config_type_path.pth'])
def test_inferencer_given_weights_alone_refuses_config_code(
    served, tmp_path, name
):
    # With no config, MMEngine's inferencer builds the model from the
    # checkpoint's config text, running it as Python.
    base, marker, env = served
    script = tmp_path / 'infer.py'
    script.write_text(textwrap.dedent(_INFERENCER))
    url = f'{base}/{name}'
    proc = run_tool([script, url], env=env)
    _refused(proc, marker, url)
    assert 'is not plain data' in proc.stderr


# What MMPose's tools/train.py, tools/test.py and init_model do, with no
# `import mmaniso` anywhere: the config's custom_imports must suffice.
_MMPOSE_PATHS = """
import sys
from mmengine.config import Config
from mmengine.runner import Runner

config, work_dir, base = sys.argv[1:4]
roots = sys.argv[4:]

def cfg_with(**over):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(a.split('=', 1) for a in roots))
    cfg.work_dir = work_dir
    cfg.train_cfg.max_epochs = 1
    cfg.merge_from_dict(over)
    return cfg

def attempt(name, fn):
    try:
        fn()
    except Exception as e:
        print(f'{name}: REFUSED {type(e).__name__}: {e}'[:400])
    else:
        print(f'{name}: LOADED')

evil = base + '/evil.pth'
forged = base + '/forged.pth'
torchscript = base + '/torchscript.pth'

def init_model():
    from mmpose.apis import init_model
    init_model(config, evil, device='cpu')

def init_model_torchscript():
    from mmpose.apis import init_model
    init_model(config, torchscript, device='cpu')

def mmpose_test():
    cfg = cfg_with()
    cfg.load_from = forged
    Runner.from_cfg(cfg).test()

def mmpose_train():
    cfg = cfg_with()
    cfg.load_from = evil
    Runner.from_cfg(cfg).train()

def pretrained_init():
    cfg = cfg_with()
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=evil)
    Runner.from_cfg(cfg).train()

def pretrained_init_torchscript():
    cfg = cfg_with()
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=torchscript)
    Runner.from_cfg(cfg).train()

for name, fn in [('init_model', init_model), ('mmpose_test', mmpose_test),
                 ('mmpose_train', mmpose_train),
                 ('pretrained_init', pretrained_init),
                 ('init_model_torchscript', init_model_torchscript),
                 ('pretrained_init_torchscript',
                  pretrained_init_torchscript)]:
    attempt(name, fn)
"""


@pytest.mark.slow
def test_mmpose_tools_and_init_model_refuse_through_custom_imports(
    served, wflw_fixture, tmp_path
):
    base, marker, env = served
    script = tmp_path / 'mmpose_paths.py'
    script.write_text(textwrap.dedent(_MMPOSE_PATHS))
    roots = data_root_options(wflw_fixture)
    proc = run_tool(
        [script, FIXTURE_CONFIG, tmp_path / 'w', base, *roots], env=env
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for name in ('init_model', 'mmpose_test', 'mmpose_train',
                 'pretrained_init', 'init_model_torchscript',
                 'pretrained_init_torchscript'):  # fmt: skip
        line = next(
            (s for s in proc.stdout.splitlines() if s.startswith(name + ':')),
            '',
        )
        assert 'REFUSED CheckpointRefusedError' in line, out[-3000:]
        assert 'refused to load this checkpoint' in line
    assert not marker.exists()
