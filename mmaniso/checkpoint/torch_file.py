"""Reads files written by ``torch.save`` without ``torch.load``.

``torch.load`` decides by itself what a file is: a zip holding
``constants.pkl`` goes to ``torch.jit.load`` (which runs the TorchScript
inside and never uses the pickle module it was given), a tar file to a
reader of torch < 0.4's format, and a legacy file allocates every storage
its pickle declares, at the declared size, before reading a byte of data.
So mmaniso does not call it. This module reads the two formats torch has
written since 0.4 itself, with the unpickler it is given:

- the zip format (torch >= 1.6): ``<prefix>/data.pkl`` and one stored
  (uncompressed) record ``<prefix>/data/<key>`` per storage, whose size must
  be exactly what the pickle declares;
- the legacy format (``_use_new_zipfile_serialization=False``): a magic
  number, protocol 1001, system info, the pickle, the list of storage keys,
  then each storage's element count and bytes. The storages the pickle
  declares must together fit in what the file has left after it, and each
  must be filled from the file exactly once.

Everything else is refused, by name: TorchScript archives, tar files, zips
without ``data.pkl``, compressed records, files that are neither format.
A tensor must lie inside its storage (``Tensor.set_`` would otherwise grow
the storage to whatever size the pickle asks). Every message names the file,
says what it found and what to do, and quotes the file's own values only
through :func:`brief`, which is bounded in size and time.
"""

import io
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch

DOC = 'README.md, "Checkpoints"'

ZIP_MAGIC = b'PK\x03\x04'
# What torch.save writes first in its legacy format, and its protocol.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch's storage classes as pickles name them (``torch.FloatStorage`` ...),
# with the dtype of their elements. Quantized storages are not here: the
# functions that rebuild quantized tensors are not allowed either.
STORAGE_DTYPES: Dict[str, torch.dtype] = {
    'DoubleStorage': torch.float64,
    'FloatStorage': torch.float32,
    'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64,
    'IntStorage': torch.int32,
    'ShortStorage': torch.int16,
    'CharStorage': torch.int8,
    'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool,
    'ComplexDoubleStorage': torch.complex128,
    'ComplexFloatStorage': torch.complex64,
    'UntypedStorage': torch.uint8,
}

# What to do, said once for every unreadable file.
_BROKEN_ADVICE = (
    'Check that the download or copy is complete, and that this is the .pth '
    'file written by tools/train.py (or torch.save); if you made it '
    'yourself, save a dict of tensors with torch.save'
)


class CheckpointRefusedError(pickle.UnpicklingError):
    """A checkpoint asked for something a weights-only load does not allow."""


class BrokenCheckpointError(CheckpointRefusedError):
    """A file that is not a readable checkpoint (empty, truncated, other)."""


# ----------------------------------------------------------- brief repr ---


def brief(obj: object, limit: int = 160) -> str:
    """A short description of ``obj`` for an error message.

    At most ``limit`` characters, and at most a few dozen objects looked at
    whatever ``obj`` is: containers show their first items three levels
    deep, strings and bytes their first characters, arrays and tensors
    their shape and dtype, huge integers their size, anything else its type.
    A pickle can build a list that holds the level below twice, sixty levels
    deep, in under two kilobytes; ``repr`` of it would never end.
    """
    text = _brief(obj, depth=3)
    return text if len(text) <= limit else text[: limit - 3] + '...'


_ITEMS = 4
_CHARS = 40


def _brief(obj: object, depth: int) -> str:
    if obj is None or isinstance(obj, (bool, float, complex)):
        return repr(obj)
    if isinstance(obj, int):
        if obj.bit_length() > 64:
            return f'<int of {obj.bit_length()} bits>'
        return repr(obj)
    if isinstance(obj, (str, bytes, bytearray)):
        head = repr(obj[:_CHARS])
        return head if len(obj) <= _CHARS else f'{head}...({len(obj)})'
    if isinstance(obj, (torch.dtype, torch.device)):
        return repr(obj)
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        kind = 'array' if isinstance(obj, np.ndarray) else 'tensor'
        return f'<{kind} {tuple(obj.shape)} {obj.dtype}>'
    if isinstance(obj, (dict, list, tuple, set, frozenset)):
        opening, closing = {
            dict: '{}', list: '[]', tuple: '()'
        }.get(type(obj), '{}')  # fmt: skip
        if depth == 0:
            return f'{opening}...({len(obj)}){closing}'
        items = []
        for i, item in enumerate(
            obj.items() if isinstance(obj, dict) else obj
        ):
            if i == _ITEMS:
                items.append(f'...({len(obj)})')
                break
            if isinstance(obj, dict):
                key, value = item
                items.append(
                    f'{_brief(key, depth - 1)}: {_brief(value, depth - 1)}'
                )
            else:
                items.append(_brief(item, depth - 1))
        return opening + ', '.join(items) + closing
    if isinstance(obj, type) or callable(obj):
        module = getattr(obj, '__module__', None)
        name = getattr(obj, '__qualname__', None)
        if isinstance(module, str) and isinstance(name, str):
            return f'{module[:_CHARS]}.{name[:_CHARS]}'
    return f'<{type(obj).__name__}>'


# --------------------------------------------------------------- errors ---


def _broken(source: str, what: str) -> BrokenCheckpointError:
    return BrokenCheckpointError(
        f'{source}: not a readable checkpoint: {what}. {_BROKEN_ADVICE} '
        f'({DOC}).'
    )


def _refused(source: str, what: str) -> CheckpointRefusedError:
    return CheckpointRefusedError(
        f'{source}: refused to load this checkpoint: {what} ({DOC}).'
    )


def _describe_error(error: BaseException) -> str:
    # Never str(error): a KeyError's text is the repr of its key, which a
    # pickle chooses.
    args = error.args
    if len(args) == 1 and isinstance(args[0], str):
        text = args[0] if len(args[0]) <= 200 else args[0][:197] + '...'
    else:
        text = brief(args) if args else ''
    return f'{type(error).__name__}: {text}' if text else type(error).__name__


class _PlacementError(Exception):
    """A storage could not go where ``map_location`` sends it."""

    def __init__(self, error: BaseException, location: str):
        super().__init__(error, location)
        self.error = error
        self.location = location


def _place(restore: Callable, storage, location: str, dtype):
    try:
        return _typed(restore(storage, location), dtype)
    except Exception as e:
        raise _PlacementError(e, location) from e


# ------------------------------------------------------------- storages ---


class StorageType:
    """What ``torch.FloatStorage`` & co. unpickle to: a name and a dtype."""

    __slots__ = ('name', 'dtype')

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    def __repr__(self) -> str:
        return f'torch.{self.name}'


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _storage_from_bytes(
    data: Union[bytes, memoryview], dtype: torch.dtype, swap: bool
) -> torch.UntypedStorage:
    """A CPU storage holding a copy of ``data`` (byte-swapped if asked)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    size = element_size(dtype)
    if swap and size > 1:
        width = 2 if dtype.is_complex else 1
        raw = raw.reshape(-1, width, size // width)[:, :, ::-1].reshape(-1)
    tensor = torch.empty(len(raw), dtype=torch.uint8)
    if len(raw):
        tensor.numpy()[:] = raw
    return tensor.untyped_storage()


def _typed(storage: torch.UntypedStorage, dtype: torch.dtype):
    return torch.storage.TypedStorage(
        wrap_storage=storage, dtype=dtype, _internal=True
    )


def _restorer(map_location) -> Callable:
    """torch's own rule for where a storage saved at ``location`` goes."""
    return torch.serialization._get_restore_location(map_location)


def check_tensor_fits(storage, offset, size, stride) -> None:
    """Raises unless a tensor of ``size``/``stride`` at ``offset`` lies
    inside ``storage``: ``Tensor.set_`` would grow the storage instead, to
    any size the pickle names."""

    def ints(values) -> bool:
        return isinstance(values, (tuple, list)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for v in values
        )

    if not isinstance(storage, torch.storage.TypedStorage):
        raise CheckpointRefusedError(
            f'a tensor whose storage is {brief(storage)}, not one of the '
            "file's storages"
        )
    if not (
        isinstance(offset, int)
        and not isinstance(offset, bool)
        and offset >= 0
        and ints(size)
        and ints(stride)
        and len(size) == len(stride)
    ):
        raise CheckpointRefusedError(
            f'a tensor with offset {brief(offset)}, size {brief(size)} and '
            f'stride {brief(stride)}; these must be non-negative integers, '
            'one stride per dimension'
        )
    if 0 in size:
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage._size():
        raise CheckpointRefusedError(
            f'a tensor of size {brief(tuple(size))} that reaches element '
            f'{brief(last)} of a storage of {storage._size()} elements'
        )


# -------------------------------------------------------------- readers ---


def _reader_class(unpickler_cls: type, persistent_load: Callable) -> type:
    class Reader(unpickler_cls):
        def find_class(self, module, name):
            if module == 'torch' and name in STORAGE_DTYPES:
                return StorageType(name)
            return super().find_class(module, name)

        def persistent_load(self, pid):
            return persistent_load(pid)

    return Reader


def _storage_id(pid: object, length: int) -> tuple:
    """Checks a persistent id ``('storage', type, key, location, numel
    [, view])`` and returns its fields after the name."""
    if not (isinstance(pid, tuple) and len(pid) == length):
        kind = pid[0] if isinstance(pid, tuple) and pid else pid
        if kind in ('module', b'module'):
            raise CheckpointRefusedError(
                'a whole pickled nn.Module (torch.save(model)); save '
                'model.state_dict() instead'
            )
        raise CheckpointRefusedError(f'a persistent id {brief(pid)}')
    name, storage_type, key, location, numel = pid[:5]
    if isinstance(location, bytes):
        location = location.decode('ascii', 'replace')
    ok = (
        name in ('storage', b'storage')
        and isinstance(storage_type, StorageType)
        and isinstance(key, str)
        and 0 < len(key) <= 64
        and isinstance(location, str)
        and 0 < len(location) <= 64
        and isinstance(numel, int)
        and not isinstance(numel, bool)
        and numel >= 0
    )
    if not ok:
        raise CheckpointRefusedError(f'a persistent id {brief(pid)}')
    return (storage_type.dtype, key, location, numel) + tuple(pid[5:])


def _zip_prefix(names) -> Optional[str]:
    prefixes = {name.split('/', 1)[0] for name in names}
    return prefixes.pop() + '/' if len(prefixes) == 1 else None


def _read_zip(
    data: bytes, unpickler_cls: type, map_location, source: str
) -> Any:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
        raise _broken(
            source, f'it starts like a zip archive but is not one '
            f'({_describe_error(e)})'
        ) from None  # fmt: skip
    prefix = _zip_prefix(infos)
    records = (
        {name[len(prefix) :] for name in infos if '/' in name}
        if prefix
        else set()
    )
    if 'constants.pkl' in records or any(
        r.startswith('code/') for r in records
    ):
        raise _refused(
            source,
            'this is a TorchScript archive (torch.jit.save), not a '
            'checkpoint; torch.load would hand it to torch.jit.load, which '
            'runs the code inside it. To use its weights, load it with '
            'torch.jit.load where you trust its author and torch.save its '
            'state_dict()',
        )
    if 'data.pkl' not in records:
        raise _broken(
            source,
            'it is a zip archive without the <folder>/data.pkl record that '
            f'torch.save writes (it holds {brief(sorted(infos)[:4])}, '
            f'{len(infos)} entries)',
        )
    compressed = [
        name for name, info in infos.items()
        if info.compress_type != zipfile.ZIP_STORED
    ]  # fmt: skip
    if compressed:
        raise _refused(
            source,
            f'its records {brief(compressed)} are compressed, which '
            'torch.save never does; save the checkpoint again with torch.save',
        )
    byteorder = b'little'
    if 'byteorder' in records:
        byteorder = archive.read(prefix + 'byteorder')
        if byteorder not in (b'little', b'big'):
            raise _broken(
                source, f'its byteorder record is {brief(byteorder)}'
            )
    swap = byteorder.decode() != _native_byteorder()
    restore = _restorer(map_location)
    storages: Dict[str, Tuple[torch.dtype, int, Any]] = {}

    def persistent_load(pid):
        dtype, key, location, numel = _storage_id(pid, 5)
        if key in storages:
            seen_dtype, seen_numel, typed = storages[key]
            if (seen_dtype, seen_numel) != (dtype, numel):
                raise CheckpointRefusedError(
                    f'storage {brief(key)} declared twice, as {seen_numel} '
                    f'{seen_dtype} and as {numel} {dtype}'
                )
            return typed
        nbytes = numel * element_size(dtype)
        info = infos.get(f'{prefix}data/{key}')
        if info is None:
            raise CheckpointRefusedError(
                f'its pickle uses storage {brief(key)}, which the archive '
                'does not hold'
            )
        if info.file_size != nbytes:
            raise CheckpointRefusedError(
                f'storage {brief(key)} is declared as {numel} {dtype} '
                f'({nbytes} bytes) but its record holds {info.file_size} '
                'bytes'
            )
        storage = _storage_from_bytes(archive.read(info), dtype, swap)
        typed = _place(restore, storage, location, dtype)
        storages[key] = (dtype, numel, typed)
        return typed

    reader = _reader_class(unpickler_cls, persistent_load)
    return reader(
        io.BytesIO(archive.read(prefix + 'data.pkl')), encoding='utf-8'
    ).load()


def _native_byteorder() -> str:
    import sys

    return sys.byteorder


def _read_legacy(
    data: bytes, unpickler_cls: type, map_location, source: str
) -> Any:
    if len(data) > 262 and data[257:262] == b'ustar':
        raise _refused(
            source,
            "this is torch < 0.4's tar checkpoint format, which mmaniso does "
            'not read; load it once where you trust it and torch.save it '
            'again with a current torch',
        )
    stream = io.BytesIO(data)
    try:
        magic = unpickler_cls(stream).load()
    except Exception as e:
        raise _broken(
            source,
            'it is neither a zip archive (what torch.save writes) nor '
            "torch's legacy format: its first bytes are "
            f'{brief(data[:16])} ({_describe_error(e)}; {len(data)} bytes '
            'in all)',
        ) from None
    if type(magic) is not int or magic != LEGACY_MAGIC_NUMBER:
        raise _broken(
            source,
            'it is neither a zip archive (what torch.save writes) nor '
            "torch's legacy format (it starts with a pickle of "
            f"{brief(magic)}, not torch's magic number)",
        )
    try:
        protocol = unpickler_cls(stream).load()
        sys_info = unpickler_cls(stream).load()
    except Exception as e:
        raise _broken(
            source, f'its legacy header is cut short ({_describe_error(e)})'
        ) from None
    if (
        type(protocol) is not int
        or protocol != LEGACY_PROTOCOL_VERSION
        or not isinstance(sys_info, dict)
    ):
        raise _broken(
            source,
            f'its legacy header has protocol {brief(protocol)} and system '
            f'information {brief(sys_info)}; torch writes protocol '
            f'{LEGACY_PROTOCOL_VERSION} and a dict',
        )
    little = sys_info.get('little_endian', True)
    swap = bool(little) != (_native_byteorder() == 'little')
    pickle_start = stream.tell()

    # First pass: the pickle, on storages that take no memory, to learn
    # which storages it declares; their bytes come after it.
    declared: Dict[str, Tuple[torch.dtype, int, str]] = {}

    def declare(pid):
        dtype, key, location, numel, view = _storage_id(pid, 6)
        if view is not None:
            raise CheckpointRefusedError(
                f'a storage view {brief(view)}, which torch stopped writing '
                'in 2018; save the checkpoint again with a current torch'
            )
        nbytes = numel * element_size(dtype)
        if key in declared:
            if declared[key][:2] != (dtype, numel):
                raise CheckpointRefusedError(
                    f'storage {brief(key)} declared twice, with different '
                    'types or sizes'
                )
        else:
            total = sum(
                n * element_size(d) + 8 for d, n, _ in declared.values()
            )
            left = len(data) - stream.tell()
            if total + nbytes + 8 > left:
                # Cut short, or forged to make torch allocate: either way
                # nothing is allocated for it.
                raise _broken(
                    source,
                    f'its pickle declares storages of {total + nbytes} '
                    f'bytes or more, but the file has only {left} bytes '
                    'left to hold them (cut short, or written to make the '
                    'loader allocate what the file does not hold)',
                )
            declared[key] = (dtype, numel, location)
        return _typed(
            torch.UntypedStorage(nbytes, device='meta'), dtype
        )  # fmt: skip

    reader = _reader_class(unpickler_cls, declare)
    reader(stream, encoding='utf-8').load()
    try:
        keys = unpickler_cls(stream).load()
    except CheckpointRefusedError:
        raise
    except Exception as e:
        raise _broken(
            source,
            f'it ends before its list of storages ({_describe_error(e)})',
        ) from None
    if (
        not isinstance(keys, list)
        or not all(isinstance(k, str) for k in keys)
        or len(set(keys)) != len(keys)
        or set(keys) != set(declared)
    ):
        raise CheckpointRefusedError(
            f'its pickle declares the storages {brief(sorted(declared))} '
            f'but the file fills {brief(keys)}: each must be filled exactly '
            'once (an unfilled storage would hand out uninitialised memory)'
        )
    # Then each storage's element count and bytes, in that order.
    restore = _restorer(map_location)
    filled: Dict[str, Any] = {}
    order = '<' if little else '>'
    for key in keys:
        dtype, numel, location = declared[key]
        head = stream.read(8)
        if len(head) < 8:
            raise _broken(source, f'it ends before storage {brief(key)}')
        (count,) = struct.unpack(order + 'q', head)
        if count != numel:
            raise CheckpointRefusedError(
                f'storage {brief(key)} is declared as {numel} {dtype} but '
                f'the file says {count}'
            )
        nbytes = numel * element_size(dtype)
        raw = stream.read(nbytes)
        if len(raw) != nbytes:
            raise _broken(
                source,
                f'it ends inside storage {brief(key)} ({len(raw)} of '
                f'{nbytes} bytes)',
            )
        storage = _storage_from_bytes(raw, dtype, swap)
        filled[key] = _place(restore, storage, location, dtype)

    # Second pass: the same pickle on the filled storages.
    def lookup(pid):
        return filled[_storage_id(pid, 6)[1]]

    stream.seek(pickle_start)
    return _reader_class(unpickler_cls, lookup)(
        stream, encoding='utf-8'
    ).load()


def read_bytes(file: Union[str, os.PathLike, BinaryIO], source: str) -> bytes:
    """All bytes of a path or of a binary file object from its position."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, 'rb') as f:
            return f.read()
    data = file.read()
    if not isinstance(data, bytes):
        raise TypeError(
            f"{source}: a checkpoint file object must be opened in binary "
            "mode ('rb')"
        )
    return data


def read_torch_file(
    file: Union[str, os.PathLike, BinaryIO],
    unpickler_cls: type,
    map_location=None,
    source: Optional[str] = None,
) -> Any:
    """Loads a ``torch.save`` file, its pickle read by ``unpickler_cls``.

    Args:
        file: A path or a binary file object (read from its position).
        unpickler_cls: A ``pickle._Unpickler`` subclass; it sees every
            global the file names except torch's storage classes.
        map_location: As for ``torch.load``.
        source: What to call the file in errors; the path by default.

    Returns:
        What the file's pickle builds, its tensors on ``map_location``.

    Raises:
        BrokenCheckpointError: the file is not one of torch's two formats,
            or is cut short.
        CheckpointRefusedError: it is a TorchScript archive or another
            format torch.load would read differently, its storages do not
            match their declarations, or ``unpickler_cls`` refused it. The
            message starts with ``source``.
    """
    if source is None:
        source = str(file) if isinstance(file, (str, os.PathLike)) else (
            'checkpoint'
        )  # fmt: skip
    data = read_bytes(file, source)
    if not data:
        raise _broken(source, 'the file is empty (0 bytes)')
    reader = _read_zip if data[:4] == ZIP_MAGIC else _read_legacy
    try:
        return reader(data, unpickler_cls, map_location, source)
    except BrokenCheckpointError:
        raise
    except _PlacementError as e:
        raise RuntimeError(
            f'{source}: cannot put a storage saved on {brief(e.location)} '
            f'where map_location={brief(map_location)} sends it: '
            f'{_describe_error(e.error)}'
        ) from e.error
    except zipfile.BadZipFile as e:
        raise _broken(
            source, f'its zip archive is damaged ({_describe_error(e)})'
        ) from None
    except CheckpointRefusedError as e:
        message = str(e)
        if message.startswith(f'{source}: '):
            raise
        raise CheckpointRefusedError(
            f'{source}: refused to load this checkpoint: {message}. mmaniso '
            'reads checkpoints with a restricted unpickler, so that a file '
            'cannot run code; only tensors, containers, plain numpy arrays '
            f'and scalars and MMEngine metadata are accepted ({DOC}). If '
            'you made this file yourself, save only its state_dict.'
        ) from None
    except RecursionError:
        raise _refused(source, 'its pickle nests too deeply') from None
    except MemoryError:
        raise _refused(source, 'its pickle asks for too much memory') from None
    except Exception as e:
        raise _broken(
            source, f'its pickle is malformed ({_describe_error(e)})'
        ) from None
