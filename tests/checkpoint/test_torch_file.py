"""mmaniso reads torch's file formats itself, so a checkpoint cannot run code.

``torch.load`` hands a TorchScript archive to ``torch.jit.load`` (its code
runs, whatever pickle module was given), allocates every storage a legacy
pickle declares before reading a byte, and fails on broken files with bare
errors. Each attack file is generated here; each test fails on a loader
that calls ``torch.load``.
"""

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

import mmaniso  # noqa: F401  (routes MMEngine's loaders through mmaniso)
from mmaniso.checkpoint.safe_loader import load_checkpoint_file
from mmaniso.checkpoint.torch_file import (
    BrokenCheckpointError,
    CheckpointRefusedError,
    brief,
)
from mmaniso.testing.checkpoints import (
    DeclaredStorage,
    DeclaredTensor,
    NewObject,
    Reduces,
    legacy_checkpoint,
    nested_pairs,
    save_torchscript_archive,
)

# ------------------------------------------------------- TorchScript ---


def test_torch_load_would_run_a_torchscript_archive(tmp_path):
    # The threat is real on this torch: the archive's code writes a file.
    marker = tmp_path / 'written_by_torch_load'
    save_torchscript_archive(tmp_path / 'ts.pth', marker)
    with pytest.warns(Warning):
        torch.load(tmp_path / 'ts.pth', weights_only=False)
    assert marker.exists()


def test_torchscript_archive_is_refused_before_any_code_runs(
    tmp_path, monkeypatch
):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'ts.pth'
    save_torchscript_archive(path, marker)

    def jit_load(*args, **kwargs):
        raise AssertionError('torch.jit.load was reached')

    monkeypatch.setattr(torch.jit, 'load', jit_load)
    for load in (load_checkpoint_file, _load_checkpoint):
        with pytest.raises(CheckpointRefusedError, match='TorchScript') as e:
            load(str(path))
        assert str(path) in str(e.value)
        assert 'refused to load this checkpoint' in str(e.value)
    assert not marker.exists()


def test_torchscript_archive_is_refused_under_forced_weights_only(
    tmp_path, monkeypatch
):
    # The environment variable sends mmaniso on to torch's own allow-list;
    # the archive must still be refused before torch.load sees it.
    monkeypatch.setenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'pwned'
    save_torchscript_archive(tmp_path / 'ts.pth', marker)
    with pytest.raises(CheckpointRefusedError, match='TorchScript'):
        load_checkpoint_file(str(tmp_path / 'ts.pth'))
    assert not marker.exists()
    good = tmp_path / 'good.pth'
    torch.save(dict(w=torch.ones(2)), good)
    assert torch.equal(load_checkpoint_file(str(good))['w'], torch.ones(2))


# ------------------------------------------------ bounded refusal text ---

_BOMB = nested_pairs(60)
# One refusal per place that quotes a value from the file.
_BOMBS = dict(
    device=Reduces(torch.device, (_BOMB,)),
    bytes=Reduces(bytes, (_BOMB, _BOMB)),
    ordered_dict_state=Reduces(OrderedDict, (), {'evil': _BOMB}),
    history_buffer_state=NewObject(HistoryBuffer, _BOMB),
    dtype_state=Reduces(np.dtype, ('f8', False, True), _BOMB),
    rebuild_args=Reduces(
        torch._utils._rebuild_tensor_v2,
        (_BOMB, 0, (1,), (1,), False, OrderedDict()),
    ),
)

_LOAD_BOMBS = """
import json, resource, sys, time
from mmaniso.checkpoint.safe_loader import load_checkpoint_file
from mmaniso.checkpoint.torch_file import CheckpointRefusedError
# 2 GB more than now: a repr that explodes fails here, not on the machine.
used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
limit = used + 2 * 1024 ** 3
soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
out = {}
for path in sys.argv[1:]:
    start = time.perf_counter()
    try:
        load_checkpoint_file(path)
        out[path] = ['loaded', 0, 0.0]
    except CheckpointRefusedError as e:
        out[path] = ['refused', len(str(e)), time.perf_counter() - start]
    except BaseException as e:
        out[path] = [type(e).__name__, 0, time.perf_counter() - start]
print(json.dumps(out))
"""


def test_bombs_pickle_small():
    for name, bomb in _BOMBS.items():
        buffer = io.BytesIO()
        torch.save(dict(meta=bomb), buffer)
        assert len(buffer.getvalue()) < 4000, name


def test_refusal_messages_are_bounded_for_self_similar_values(tmp_path):
    paths = {}
    for name, bomb in _BOMBS.items():
        paths[name] = str(tmp_path / f'{name}.pth')
        torch.save(dict(meta=bomb), paths[name])
    proc = subprocess.run(
        [sys.executable, '-c', textwrap.dedent(_LOAD_BOMBS),
         *paths.values()],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    for name, path in paths.items():
        outcome, length, seconds = results[path]
        assert outcome == 'refused', (name, outcome)
        assert length < 2000, (name, length)
        assert seconds < 5, (name, seconds)


def test_brief_is_bounded_and_readable():
    assert len(brief(_BOMB)) <= 160
    assert len(brief(_BOMB, 40)) <= 40
    assert brief({'a': 1, 'b': [1, 2]}) == "{'a': 1, 'b': [1, 2]}"
    assert brief(10**400) == '<int of 1329 bits>'
    assert brief('x' * 100).endswith('...(100)')
    assert brief(np.zeros((2, 3), np.float32)) == '<array (2, 3) float32>'
    assert brief(torch.device('cpu')) == "device(type='cpu')"


# --------------------------------------------------------- broken files ---


def _zip_without_data_pkl(path):
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('archive/version', '3\n')


def _truncated_zip_checkpoint(path):
    buffer = io.BytesIO()
    torch.save(dict(w=torch.arange(1000.0)), buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _truncated_legacy_checkpoint(path):
    buffer = io.BytesIO()
    torch.save(
        dict(w=torch.arange(1000.0)), buffer,
        _use_new_zipfile_serialization=False,
    )  # fmt: skip
    path.write_bytes(buffer.getvalue()[:-100])


BROKEN = dict(
    empty=lambda p: p.write_bytes(b''),
    text=lambda p: p.write_text('model = dict(type="ResNet")\n' * 20),
    random_bytes=lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
    empty_zip=lambda p: zipfile.ZipFile(p, 'w').close(),
    zip_without_data_pkl=_zip_without_data_pkl,
    truncated_zip=_truncated_zip_checkpoint,
    truncated_legacy=_truncated_legacy_checkpoint,
    html_error_page=lambda p: p.write_text(
        '<html><body>404 Not Found</body></html>'
    ),
)


@pytest.mark.parametrize('name', sorted(BROKEN))
def test_broken_files_name_the_file_and_say_what_to_do(tmp_path, name):
    path = tmp_path / f'{name}.pth'
    BROKEN[name](path)
    for load in (load_checkpoint_file, _load_checkpoint):
        with pytest.raises(BrokenCheckpointError) as info:
            load(str(path))
        message = str(info.value)
        assert message.startswith(str(path)), message
        assert 'not a readable checkpoint' in message
        assert 'torch.save' in message
        assert len(message) < 1000


# ----------------------------------------------------- legacy storages ---


def _legacy(tmp_path, obj, filled, name='legacy.pth') -> str:
    path = tmp_path / name
    path.write_bytes(legacy_checkpoint(obj, filled))
    return str(path)


def _floats(*values) -> bytes:
    return np.array(values, dtype=np.float32).tobytes()


def test_hand_written_legacy_file_loads_like_torch_save(tmp_path):
    # The writer the attacks below use makes files torch itself reads.
    storage = DeclaredStorage('0', torch.FloatStorage, 3)
    path = _legacy(
        tmp_path, dict(w=DeclaredTensor(storage, 3)),
        [('0', 3, _floats(1, 2, 3))],
    )  # fmt: skip
    expected = torch.tensor([1.0, 2, 3])
    assert torch.equal(torch.load(path, weights_only=True)['w'], expected)
    assert torch.equal(load_checkpoint_file(path)['w'], expected)


def test_legacy_storage_declared_but_never_filled_is_refused(tmp_path):
    filled = DeclaredStorage('0', torch.FloatStorage, 3)
    empty = DeclaredStorage('1', torch.FloatStorage, 3)
    path = _legacy(
        tmp_path,
        dict(w=DeclaredTensor(filled, 3), leak=DeclaredTensor(empty, 3)),
        [('0', 3, _floats(1, 2, 3)), ('0', 3, _floats(1, 2, 3))],
        # the trailing bytes make room for the storage that is never filled
    )
    with pytest.raises(CheckpointRefusedError, match='filled exactly once'):
        load_checkpoint_file(path)


def test_legacy_storage_larger_than_the_file_is_refused_unallocated(
    tmp_path, monkeypatch
):
    huge = DeclaredStorage('0', torch.FloatStorage, 10**10)  # 40 GB
    path = _legacy(
        tmp_path, dict(w=DeclaredTensor(huge, 4)), [('0', 10**10, b'')]
    )
    assert os.path.getsize(path) < 1000
    allocated = []
    real_empty = torch.empty

    def counting_empty(*size, **kwargs):
        allocated.append(size)
        return real_empty(*size, **kwargs)

    monkeypatch.setattr(torch, 'empty', counting_empty)
    with pytest.raises(CheckpointRefusedError, match='bytes left'):
        load_checkpoint_file(path)
    assert all(
        np.prod(s[0] if s and isinstance(s[0], tuple) else s) < 10**6
        for s in allocated
    )


def test_legacy_count_that_disagrees_with_the_declaration_is_refused(
    tmp_path,
):
    storage = DeclaredStorage('0', torch.FloatStorage, 3)
    path = _legacy(
        tmp_path, dict(w=DeclaredTensor(storage, 3)),
        [('0', 2, _floats(1, 2, 3))],
    )  # fmt: skip
    with pytest.raises(CheckpointRefusedError, match='file says 2'):
        load_checkpoint_file(path)


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
    # Tensor.set_ would grow the storage to whatever the pickle asks.
    storage = DeclaredStorage('0', torch.FloatStorage, 3)
    path = _legacy(
        tmp_path, dict(w=DeclaredTensor(storage, 10**9)),
        [('0', 3, _floats(1, 2, 3))],
    )  # fmt: skip
    with pytest.raises(CheckpointRefusedError, match='reaches element'):
        load_checkpoint_file(path)


def test_zip_record_size_must_match_its_declaration(tmp_path):
    buffer = io.BytesIO()
    torch.save(dict(w=torch.arange(4.0)), buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = tmp_path / 'short_record.pth'
    with zipfile.ZipFile(path, 'w') as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith('/data/0'):
                data = data[:8]  # two of the four floats
            out.writestr(info, data)
    with pytest.raises(CheckpointRefusedError, match='holds 8 bytes'):
        load_checkpoint_file(str(path))


# ------------------------------------------------------- small fields ---


def test_history_buffer_fields_are_type_checked(tmp_path):
    bad = NewObject(
        HistoryBuffer,
        dict(max_length='notanint', _log_history=np.zeros(1),
             _count_history=np.ones(1)),
    )  # fmt: skip
    torch.save(dict(meta=bad), tmp_path / 'hb.pth')
    with pytest.raises(CheckpointRefusedError, match='max_length'):
        load_checkpoint_file(str(tmp_path / 'hb.pth'))
    too_long = NewObject(
        HistoryBuffer,
        dict(max_length=2, _log_history=np.zeros(5),
             _count_history=np.ones(5)),
    )  # fmt: skip
    torch.save(dict(meta=too_long), tmp_path / 'hb2.pth')
    with pytest.raises(CheckpointRefusedError, match='at most max_length'):
        load_checkpoint_file(str(tmp_path / 'hb2.pth'))


def test_device_index_that_torch_would_wrap_is_refused(tmp_path):
    assert str(torch.device('cuda', 10**6)) != f'cuda:{10**6}'
    torch.save(
        dict(meta=Reduces(torch.device, ('cuda', 10**6))),
        tmp_path / 'dev.pth',
    )
    with pytest.raises(CheckpointRefusedError, match='torch.device'):
        load_checkpoint_file(str(tmp_path / 'dev.pth'))
    torch.save(
        dict(a=torch.device('cuda', 3), b=torch.device('cpu')),
        tmp_path / 'ok.pth',
    )
    loaded = load_checkpoint_file(str(tmp_path / 'ok.pth'))
    assert loaded == dict(a=torch.device('cuda', 3), b=torch.device('cpu'))


# ------------------------------------------------- real files still load ---


@pytest.mark.parametrize('zip_format', [True, False])
def test_real_checkpoints_round_trip_with_shared_storages(
    tmp_path, zip_format
):
    base = torch.arange(12.0).reshape(3, 4)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    checkpoint = dict(
        state_dict=model.state_dict(),
        optimizer=optimizer.state_dict(),
        views=dict(base=base, row=base[1], column=base[:, 2]),
        half=torch.ones(3, dtype=torch.float16),
        flags=torch.tensor([True, False]),
        rng=torch.get_rng_state(),
        numpy_rng=np.random.get_state(),
        param=torch.nn.Parameter(torch.ones(2)),
        empty=torch.zeros(0, 5),
    )
    path = str(tmp_path / 'ckpt.pth')
    torch.save(checkpoint, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_checkpoint_file(path, map_location='cpu')
    for key, value in model.state_dict().items():
        assert torch.equal(loaded['state_dict'][key], value)
    momentum = optimizer.state_dict()['state'][0]['momentum_buffer']
    assert torch.equal(
        loaded['optimizer']['state'][0]['momentum_buffer'], momentum
    )
    views = loaded['views']
    assert torch.equal(views['column'], base[:, 2])
    # Views still share their storage, as torch.load gives them.
    views['base'][1, 2] = -1
    assert views['row'][2] == -1 and views['column'][1] == -1
    assert loaded['half'].dtype == torch.float16
    assert torch.equal(loaded['rng'], checkpoint['rng'])
    assert np.array_equal(loaded['numpy_rng'][1], np.random.get_state()[1])
    assert isinstance(loaded['param'], torch.nn.Parameter)
    assert loaded['empty'].shape == (0, 5)


@pytest.mark.parametrize(
    'map_location',
    [None, 'cpu', torch.device('cpu'), {'cpu': 'cpu'},
     lambda storage, location: storage],
)  # fmt: skip
def test_map_location_forms_torch_accepts(tmp_path, map_location):
    torch.save(dict(w=torch.ones(3)), tmp_path / 'w.pth')
    loaded = load_checkpoint_file(str(tmp_path / 'w.pth'), map_location)
    assert torch.equal(loaded['w'], torch.ones(3))


def test_file_objects_load_and_text_mode_is_refused(tmp_path):
    torch.save(dict(w=torch.ones(3)), tmp_path / 'w.pth')
    with open(tmp_path / 'w.pth', 'rb') as f:
        assert torch.equal(load_checkpoint_file(f)['w'], torch.ones(3))
    with open(tmp_path / 'w.pth', encoding='latin1') as f:
        with pytest.raises(TypeError, match='binary mode'):
            load_checkpoint_file(f)
