"""Checkpoints load through one restricted unpickler on every path.

The attack files are made here: a pickle that calls ``os.system`` (it
would create a marker file), one that asks ``getattr`` for a function's
globals, and one whose numpy dtype state gives a float64 an object field
at offset 0 (eight data bytes read as a pointer: a crash or worse on the
next ``deepcopy``). Each is loaded from a local path, over http from a
server on 127.0.0.1, and through every other scheme MMEngine knows.
"""

import copy
import functools
import http.server
import os
import os.path as osp
import pickle
import sys
import threading
import types
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    _load_checkpoint,
    load_checkpoint,
)

import mmaniso  # noqa: F401  (routes MMEngine's loaders through mmaniso)
from mmaniso.checkpoint import safe_loader as ckpt
from mmaniso.checkpoint.safe_loader import (
    CheckpointRefusedError,
    history_buffer_getattr,
    load_checkpoint_file,
)
from mmaniso.testing.checkpoints import (
    ForgedArray,
    RunsCode,
    save_torchscript_archive,
)

DATA = osp.join(osp.dirname(__file__), 'data')


class _ReachesGlobals:
    """Asks the allow-listed getattr for a function's module globals."""

    def __reduce__(self):
        return getattr, (HistoryBuffer.mean, '__globals__')


def _save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


@pytest.fixture
def attack_files(tmp_path):
    """name -> path of each malicious checkpoint, and the marker path."""
    marker = tmp_path / 'pwned'
    files = dict(
        runs_code=_save(
            dict(state_dict={}, meta=RunsCode(marker)), tmp_path / 'a.pth'
        ),
        reaches_globals=_save(
            dict(meta=_ReachesGlobals()), tmp_path / 'b.pth'
        ),
        forged_dtype=_save(dict(meta=ForgedArray()), tmp_path / 'c.pth'),
        object_dtype=_save(
            dict(meta=np.array([None, 'x'], dtype=object)),
            tmp_path / 'd.pth',
        ),
        torchscript=str(tmp_path / 'e.pth'),
    )
    save_torchscript_archive(files['torchscript'], marker)
    return files, marker


def _mmengine_like() -> dict:
    buffer = HistoryBuffer()
    buffer.update(1.5)
    return dict(
        meta=dict(
            epoch=np.int64(3),
            dataset_meta=dict(
                sigmas=np.ones(4, dtype=np.float32),
                colors=np.zeros((4, 3), dtype=np.uint8),
                flip_indices=[1, 0, 3, 2],
            ),
        ),
        message_hub=dict(log_scalars=dict(loss=buffer)),
        state_dict=dict(w=torch.ones(2)),
    )


# ------------------------------------------------------------ local files


def test_mmengine_style_metadata_loads(tmp_path):
    path = _save(_mmengine_like(), tmp_path / 'ok.pth')
    loaded = load_checkpoint_file(path)
    assert loaded['meta']['epoch'] == 3
    assert loaded['meta']['dataset_meta']['colors'].dtype == np.uint8
    assert loaded['message_hub']['log_scalars']['loss'].current() == 1.5
    # MMEngine's own loader (load_from, resume, tools/test.py) too.
    assert torch.equal(
        _load_checkpoint(path)['state_dict']['w'], torch.ones(2)
    )


def test_legacy_torch_format_loads_through_the_same_policy(tmp_path):
    path = str(tmp_path / 'legacy.pth')
    torch.save(_mmengine_like(), path, _use_new_zipfile_serialization=False)
    assert load_checkpoint_file(path)['meta']['epoch'] == 3
    evil = str(tmp_path / 'legacy_evil.pth')
    torch.save(
        dict(meta=RunsCode(tmp_path / 'pwned')),
        evil,
        _use_new_zipfile_serialization=False,
    )
    with pytest.raises(CheckpointRefusedError, match='system'):
        load_checkpoint_file(evil)
    assert not (tmp_path / 'pwned').exists()


@pytest.mark.parametrize(
    'name, refused',
    [
        ('runs_code', 'posix.system|os.system|nt.system'),
        ('reaches_globals', '__globals__'),
        ('forged_dtype', 'dtype'),
        ('object_dtype', 'dtype'),
        ('torchscript', 'TorchScript'),
    ],
)
def test_attack_files_are_refused_with_the_file_named(
    attack_files, name, refused
):
    files, marker = attack_files
    path = files[name]
    for load in (load_checkpoint_file, _load_checkpoint):
        with pytest.raises(CheckpointRefusedError, match=refused) as info:
            load(path)
        message = str(info.value)
        assert path in message
        # Never torch's advice to turn the protection off.
        assert 'weights_only=False' not in message
    assert not marker.exists()


class _RedefinedDtype:
    """A float64 dtype whose state redefines it as a record of two
    float32 fields, each of them plain: the state itself is refused."""

    def __reduce__(self):
        f4 = np.dtype('f4')
        fields = {'a': (f4, 0), 'b': (f4, 4)}
        return np.dtype, ('f8', False, True), (
            3, '|', None, ('a', 'b'), fields, 8, 4, 16
        )  # fmt: skip


def test_forged_dtype_state_is_refused_even_without_an_array(tmp_path):
    path = _save(dict(meta=_RedefinedDtype()), tmp_path / 'dtype.pth')
    with pytest.raises(CheckpointRefusedError, match='built-in dtype'):
        load_checkpoint_file(path)


def test_nothing_loaded_carries_a_non_plain_dtype():
    # The walk behind the unpickler: a structured dtype deep in a result.
    structured = np.zeros(2, dtype=[('a', 'f4'), ('b', 'i4')])
    with pytest.raises(CheckpointRefusedError, match='dtype'):
        ckpt.check_loaded(dict(meta=[dict(x=structured)]))
    ckpt.check_loaded(dict(meta=[np.zeros(2, '>f8'), np.float16(1)]))


@pytest.mark.parametrize('spec', ['f8', '<i4', '>u2', '|b1', 'c16', 'f2'])
def test_plain_dtypes_round_trip(tmp_path, spec):
    array = np.arange(3).astype(spec)
    path = _save(dict(a=array, s=array[1]), tmp_path / 'plain.pth')
    loaded = load_checkpoint_file(path)
    # As numpy's own unpickling gives it (numpy 2 drops a foreign byte order
    # of an array, keeping its values).
    assert loaded['a'].dtype == pickle.loads(pickle.dumps(array)).dtype
    np.testing.assert_array_equal(loaded['a'], array)
    assert loaded['s'] == array[1]
    assert loaded['s'].dtype == pickle.loads(pickle.dumps(array[1])).dtype
    copy.deepcopy(loaded)  # what MessageHub does on resume


def test_restricted_getattr_answers_only_statistics_methods():
    assert history_buffer_getattr(HistoryBuffer, 'max') is HistoryBuffer.max
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(np.ndarray, 'max')


# ------------------------------------------------- numpy 1.x and 2.x files


@pytest.mark.parametrize(
    'name, major, core',
    [
        ('checkpoint_numpy1.pth', '1', 'numpy.core.multiarray'),
        ('checkpoint_numpy2.pth', '2', 'numpy._core.multiarray'),
    ],
)
def test_checkpoints_written_under_numpy_1_and_2_load(name, major, core):
    path = osp.join(DATA, name)
    # The file really is what its name says (see make_checkpoints.py).
    with zipfile.ZipFile(path) as z:
        pkl = next(n for n in z.namelist() if n.endswith('data.pkl'))
        assert core.encode() in z.read(pkl)
    loaded = load_checkpoint_file(path)
    meta = loaded['meta']
    assert meta['written_with_numpy'].split('.')[0] == major
    assert meta['epoch'] == 3 and isinstance(meta['epoch'], np.int64)
    assert meta['lr'] == 0.25 and meta['flag']
    ds = meta['dataset_meta']
    np.testing.assert_array_equal(
        ds['sigmas'], np.linspace(0, 1, 4, dtype=np.float32)
    )
    assert ds['keypoint_colors'].dtype == np.uint8
    assert ds['weights'].dtype.kind == 'i' and ds['weights'].itemsize == 4
    assert ds['weights'].tolist() == [1, 2, 3]
    assert ds['visible'].tolist() == [True, False]
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 2.0
    assert loaded['param_schedulers'][0]['milestones'] == {170: 1, 200: 1}
    assert loaded['state_dict']._metadata[''] == dict(version=1)
    assert torch.equal(
        loaded['state_dict']['weight'], torch.arange(6.0).reshape(2, 3)
    )
    # And through MMEngine into a model.
    model = torch.nn.Linear(3, 2)
    load_checkpoint(model, path, map_location='cpu')
    assert torch.equal(model.bias, torch.tensor([1.0, -1.0]))


# ------------------------------------------------------- every scheme


def test_every_mmengine_scheme_is_routed_through_mmaniso():
    loaders = set(CheckpointLoader._schemes.values())
    assert loaders <= set(ckpt.SCHEMES.values()) | {ckpt._refuse_unknown}
    for prefix in ('', 'http://', 'https://', 'torchvision://',
                   'modelzoo://', 'open-mmlab://', 'openmmlab://',
                   'mmcls://', 'pavi://', 's3://', 'open-mmlab:s3://',
                   'petrel://'):  # fmt: skip
        loader = CheckpointLoader._get_checkpoint_loader(prefix + 'x.pth')
        assert loader in ckpt.SCHEMES.values(), prefix


def test_a_scheme_registered_after_mmaniso_is_refused(tmp_path):
    # Another package's loader, registered after `import mmaniso`, that
    # would unpickle anything.
    marker = tmp_path / 'pwned'
    evil = _save(dict(meta=RunsCode(marker)), tmp_path / 'evil.pth')

    def load_from_laterhub(filename, map_location=None):
        return torch.load(filename[len('laterhub://') :], weights_only=False)

    CheckpointLoader.register_scheme('laterhub://', load_from_laterhub)
    try:
        with pytest.raises(CheckpointRefusedError, match='no safe loader'):
            _load_checkpoint('laterhub://' + evil)
    finally:
        CheckpointLoader._schemes.pop('laterhub://')
    assert not marker.exists()
    # Registering mmaniso's loaders again wraps the lookup only once.
    ckpt.register_checkpoint_loaders()
    assert CheckpointLoader._get_checkpoint_loader('x.pth') is (
        ckpt.load_from_local
    )


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/served on 127.0.0.1 while the test runs."""
    served = tmp_path / 'served'
    served.mkdir()
    handler = functools.partial(
        _QuietHandler, directory=str(served)
    )  # fmt: skip
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    return home


def test_http_checkpoint_lands_in_the_cache_and_loads_safely(
    http_server, torch_home
):
    served, url = http_server
    _save(_mmengine_like(), served / 'good.pth')
    loaded = _load_checkpoint(f'{url}/good.pth')
    assert loaded['meta']['epoch'] == 3
    assert (torch_home / 'hub' / 'checkpoints' / 'good.pth').is_file()


@pytest.mark.parametrize('name', ['runs_code', 'forged_dtype', 'torchscript'])
def test_http_attack_files_are_refused(
    attack_files, http_server, torch_home, name
):
    files, marker = attack_files
    served, url = http_server
    os.link(files[name], served / 'evil.pth')
    with pytest.raises(CheckpointRefusedError) as info:
        _load_checkpoint(f'{url}/evil.pth')
    assert f'{url}/evil.pth' in str(info.value)
    assert not marker.exists()


def _fake_pavi(source: str) -> types.ModuleType:
    class Model:
        name = 'model.pth'

        @staticmethod
        def download(path):
            with open(source, 'rb') as f, open(path, 'wb') as out:
                out.write(f.read())

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda _: Model())
    return pavi


class _FakeBackend:
    def __init__(self, source):
        self.source = source

    def get(self, _):
        with open(self.source, 'rb') as f:
            return f.read()


@pytest.mark.parametrize(
    'scheme',
    ['torchvision', 'modelzoo', 'open-mmlab', 'openmmlab', 'mmcls', 's3',
     'petrel', 'pavi'],
)  # fmt: skip
def test_other_schemes_refuse_code(
    attack_files, http_server, torch_home, monkeypatch, scheme
):
    import mmengine.fileio
    import mmengine.runner.checkpoint as mm

    files, marker = attack_files
    served, url = http_server
    os.link(files['runs_code'], served / 'evil.pth')
    # Each scheme's name table points at the server here.
    table = lambda: dict(m=f'{url}/evil.pth')  # noqa: E731
    monkeypatch.setattr(mm, 'get_torchvision_models', table)
    monkeypatch.setattr(mm, 'get_external_models', table)
    monkeypatch.setattr(mm, 'get_mmcls_models', table)
    monkeypatch.setattr(
        mmengine.fileio,
        'get_file_backend',
        lambda *a, **k: _FakeBackend(files['runs_code']),
    )
    monkeypatch.setitem(sys.modules, 'pavi', _fake_pavi(files['runs_code']))
    with pytest.raises(CheckpointRefusedError, match='system'):
        _load_checkpoint(f'{scheme}://m')
    assert not marker.exists()


def test_torchvision_scheme_loads_a_good_file_through_the_cache(
    http_server, torch_home, monkeypatch
):
    import mmengine.runner.checkpoint as mm

    served, url = http_server
    _save(dict(state_dict=dict(w=torch.ones(3))), served / 'r18.pth')
    monkeypatch.setattr(
        mm, 'get_torchvision_models', lambda: dict(r18=f'{url}/r18.pth')
    )
    loaded = _load_checkpoint('torchvision://r18')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(3))
    assert (torch_home / 'hub' / 'checkpoints' / 'r18.pth').is_file()


def test_pretrained_init_refuses_a_remote_attack(
    attack_files, http_server, torch_home
):
    from mmengine.model import BaseModule

    files, marker = attack_files
    served, url = http_server
    os.link(files['runs_code'], served / 'evil.pth')
    model = BaseModule(
        init_cfg=dict(type='Pretrained', checkpoint=f'{url}/evil.pth')
    )
    model.layer = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointRefusedError):
        model.init_weights()
    assert not marker.exists()
