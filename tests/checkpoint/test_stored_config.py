"""The config text a checkpoint carries is accepted only as plain data.

MMEngine runs that text as a Python config (``Runner.resume``,
``BaseInferencer`` given weights without a config), so a checkpoint made
only of strings and tensors could run code after the unpickler accepted
it. The attack texts here create a marker file when MMEngine's
``Config.fromstring`` runs them (checked, so the attacks are real), and
every config this project and MMPose ship passes.
"""

import glob
import os.path as osp

import mmpose
import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint

import mmaniso  # noqa: F401  (routes MMEngine's loaders through mmaniso)
from mmaniso.checkpoint.safe_loader import (
    CheckpointRefusedError,
    load_checkpoint_file,
)
from mmaniso.checkpoint.stored_config import (
    CONFIG_FIELDS,
    config_text_problem,
    stored_config_texts,
)


def _attacks(marker):
    """name -> config text that creates ``marker`` when MMEngine runs it."""
    touch = f"__import__('os').system('touch {marker}')"
    return dict(
        call=f'model = dict(type={touch})\n',
        # (an import would put MMEngine in lazy-import mode, which does not
        # call what it imports; a loop runs as it is)
        statement=f'for _ in [0]:\n    {touch}\n',
        hidden_in_dict=f'x = dict(a=[1, {{"k": {touch}}}])\n',
        lambda_default=f'f = (lambda: 0)(x={touch}) if False else 1\n'
        f'y = {touch}\n',
        attribute="x = ''.__class__.__mro__[1].__subclasses__()\n"
        f'y = {touch}\n',
    )


@pytest.mark.parametrize(
    'name', ['call', 'statement', 'hidden_in_dict', 'lambda_default',
             'attribute'],
)  # fmt: skip
def test_code_mmengine_would_run_is_found(tmp_path, name):
    text = _attacks(tmp_path / 'pwned')[name]
    assert config_text_problem(text) is not None
    # The attack is real: MMEngine runs it.
    Config.fromstring(text, file_format='.py')
    assert (tmp_path / 'pwned').exists()


@pytest.mark.parametrize(
    'part',
    [
        "{'type': 'subprocess.getoutput', 'cmd': 'touch MARKER'}",
        # one dot and an OpenMMLab scope, but mmengine.dump is a function
        # of the package, which MMEngine falls back to: it writes any file
        "{'type': 'mmengine.dump', 'obj': 'x', 'file': 'MARKER', "
        "'file_format': 'json'}",
    ],
)
def test_plain_data_naming_a_function_by_its_dotted_path_is_found(
    tmp_path, part
):
    marker = tmp_path / 'pwned'
    part = part.replace('MARKER', str(marker))
    text = (
        "model = dict(backbone=dict(type='ResNet', depth=18),\n"
        f"             head=[{part}])\n"
    )
    problem = config_text_problem(text)
    assert problem is not None and 'dotted path' in problem
    # The attack is real: every node is plain data, yet building the part
    # the way MMPose builds a model runs it.
    from mmpose.registry import MODELS

    MODELS.build(Config.fromstring(text, file_format='.py').model.head[0])
    assert marker.exists()


def test_registry_names_with_a_scope_pass():
    # As RTMPose's configs name mmdet's transforms and hooks.
    assert config_text_problem(
        "m = dict(type='mmdet.YOLOXHSVRandomAug',\n"
        "         hook=dict(type='mmdet.PipelineSwitchHook'),\n"
        "         head=dict(type='RegressionHead'))\n"
    ) is None


def test_lazy_import_configs_pass_as_mmengine_stores_them(tmp_path):
    # MMEngine's new-style configs import their classes; the stored text
    # names each by its full dotted path, which the fallback reaches: a
    # registered class is accepted, a function of the same packages is not.
    config = tmp_path / 'lazy.py'
    config.write_text(
        'from mmengine.dataset import DefaultSampler\n'
        'from mmpose.models import RegressionHead\n'
        'from torch.optim import AdamW\n'
        'model = dict(type=RegressionHead, in_channels=8, num_joints=2)\n'
        'sampler = dict(type=DefaultSampler, shuffle=True)\n'
        'optim_wrapper = dict(optimizer=dict(type=AdamW, lr=1e-3))\n'
    )
    text = Config.fromfile(str(config)).pretty_text
    assert "type='mmpose.models.RegressionHead'" in text
    assert config_text_problem(text) is None
    for function in ('mmengine.fileio.dump', 'mmpose.apis.init_model',
                     'torch.load'):
        problem = config_text_problem(f"m = dict(type='{function}')\n")
        assert problem is not None and function in problem


@pytest.mark.parametrize(
    'text, word',
    [
        ("_base_ = ['/some/where/else.py']\n", '_base_'),
        ("x = '{{ $HOME }}'\n", 'template'),
        ('x = dict(**{"a": 1})\n', 'code'),
        ('x = y\n', 'code'),
        ('x.y = 1\n', 'assignment'),
        ('x = [i for i in range(3)]\n', 'code'),
    ],
)
def test_instructions_and_non_literals_are_found(text, word):
    problem = config_text_problem(text)
    assert problem is not None and word in problem


def test_what_pretty_text_writes_is_plain_data():
    text = (
        'a = dict(b=(64, 64), c=[1.5, -2, None, True], d={0: "x"})\n'
        "e = dict({0: dict(name='kpt-0', swap='')})\n"
        'f = -inf\n'
        "g = {'set', 'of', 'str'}\n"
        "custom_imports = dict(imports=['mmaniso'])\n"
    )
    assert config_text_problem(text) is None
    # Text MMEngine cannot parse cannot run either (a repr of a function).
    assert config_text_problem('x = <function f at 0x7f>\n') is None


def _shipped_configs():
    ours = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                            recursive=True))  # fmt: skip
    mmpose_root = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs')
    theirs = [
        osp.join(mmpose_root, path)
        for path in (
            '_base_/datasets/wflw.py',
            '_base_/datasets/coco.py',
            'face_2d_keypoint/rtmpose/wflw/rtmpose-m_8xb64-60e_wflw-256x256.py',
            'face_2d_keypoint/topdown_regression/wflw/'
            'td-reg_res50_softwingloss_8xb64-210e_wflw-256x256.py',
        )
    ]
    return ours + [p for p in theirs if osp.isfile(p)]


def test_every_shipped_config_passes_as_mmengine_stores_it():
    configs = _shipped_configs()
    assert len(configs) > 10
    for path in configs:
        text = Config.fromfile(path).pretty_text
        assert config_text_problem(text) is None, path


@pytest.mark.parametrize('field', ['.'.join(f) for f in CONFIG_FIELDS])
def test_checkpoint_with_code_in_its_config_text_is_refused(tmp_path, field):
    marker = tmp_path / 'pwned'
    text = _attacks(marker)['call']
    checkpoint = dict(state_dict=dict(w=torch.ones(2)))
    node = checkpoint
    keys = field.split('.')
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = text
    path = tmp_path / 'config_code.pth'
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointRefusedError) as info:
        _load_checkpoint(str(path))
    message = str(info.value)
    assert str(path) in message and f'`{field}`' in message
    assert 'refused to load this checkpoint' in message
    assert 'check_config=False' in message  # the way out for trusted files
    assert not marker.exists()
    # The way out: the weights alone, config text unread.
    loaded = load_checkpoint_file(str(path), check_config=False)
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert not marker.exists()


def test_checkpoint_with_mmengine_config_text_loads(tmp_path):
    from conftest import FIXTURE_CONFIG

    text = Config.fromfile(FIXTURE_CONFIG).pretty_text
    checkpoint = dict(
        meta=dict(cfg=text, epoch=1),
        message_hub=dict(runtime_info=dict(cfg=text)),
        state_dict=dict(w=torch.ones(2)),
    )
    path = tmp_path / 'ok.pth'
    torch.save(checkpoint, path)
    loaded = _load_checkpoint(str(path))
    assert [f for f, _ in stored_config_texts(loaded)] == [
        'meta.cfg',
        'message_hub.runtime_info.cfg',
    ]
    assert Config.fromstring(loaded['meta']['cfg'], '.py').model.type
