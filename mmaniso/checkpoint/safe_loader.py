"""One loading policy for every checkpoint mmaniso's users load.

A checkpoint is a pickle, and a pickle can run code. ``import mmaniso``
registers, for every scheme MMEngine's ``CheckpointLoader`` knows (local
paths, ``http(s)://``, ``torchvision://``/``modelzoo://``,
``open-mmlab://``/``openmmlab://``, ``mmcls://``, ``s3://``/``petrel://``,
``pavi://``), a loader that reads the file with :class:`SafeUnpickler`. So
``load_from``, ``--resume``, ``init_cfg=dict(type='Pretrained')``,
``tools/test.py``, MMPose's own tools and ``mmpose.apis.init_model`` (all of
which go through ``CheckpointLoader``) load the same way, on every torch
version (torch 2.1 has no weights-only allow-list; this does not need one).
Downloads land in torch's hub cache first and are then read the same way.

``torch.load`` is not called: it would hand a TorchScript archive to
``torch.jit.load``, which runs the archive's code and never uses the pickle
module it was given. :mod:`mmaniso.checkpoint.torch_file` reads torch's zip and
legacy formats itself and refuses everything else by name.

What the unpickler accepts, and nothing else:

- tensors and parameters (torch's rebuild functions, no backward hooks),
  torch dtypes, ``torch.Size``, ``torch.device``;
- ``dict``/``list``/``tuple``/``set`` and ``OrderedDict``/``Counter``
  (MMEngine's ``MultiStepParamScheduler`` keeps its milestones in one);
- numpy arrays and scalars of a plain boolean or numeric dtype, written by
  numpy 1.x (``numpy.core``) or 2.x (``numpy._core``). A dtype's pickled
  state must be exactly that of a built-in dtype: ``np.dtype.__setstate__``
  otherwise accepts fields at any offset, with which a file can make eight
  data bytes be read as a pointer to a Python object;
- MMEngine's ``HistoryBuffer`` (the message hub's logs), whose state must be
  its four known fields, and ``getattr`` only in the form
  ``getattr(HistoryBuffer, 'min' | 'max' | 'current' | 'mean' | ...)``
  with which a buffer names its statistics methods.

Anything else (``os.system``, a class to build, ``getattr`` on any other
object) raises :class:`CheckpointRefusedError` naming the file and what it
asked for, before the object is built. What comes out is walked once more,
and every numpy dtype in it is checked to be plain before it is returned;
the config text MMEngine would run as Python (``meta.cfg`` and the like)
must be plain data (:mod:`mmaniso.checkpoint.stored_config`).
"""

import io
import os
import os.path as osp
import pickle
import re
import tempfile
import types
from collections import Counter, OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlparse

import numpy as np
import torch

from mmaniso.checkpoint.stored_config import (
    config_text_problem,
    stored_config_texts,
)
from mmaniso.checkpoint.torch_file import (
    DOC,
    BrokenCheckpointError,
    CheckpointRefusedError,
    brief,
    check_tensor_fits,
    read_bytes,
    read_torch_file,
)

__all__ = [
    'BrokenCheckpointError',
    'CheckpointRefusedError',
    'SafeUnpickler',
    'check_config_text',
    'check_loaded',
    'load_checkpoint_file',
    'register_checkpoint_loaders',
]


def _dotted(name: object) -> str:
    """A module or global name from a pickle, unquoted and at most 80
    characters (a pickle can name a global of any length)."""
    if not isinstance(name, str):
        return brief(name, 80)
    return name if len(name) <= 80 else name[:77] + '...'


# ---------------------------------------------------------------- numpy ---

# numpy type codes of the dtypes a checkpoint may hold, and the flags a
# built-in one of each kind has (0: no object, no fields).
_PLAIN_DTYPE_KINDS = frozenset('biufc')
_BYTE_ORDERS = frozenset('<>|=')


def is_plain_dtype(dtype: object) -> bool:
    """Whether ``dtype`` is a built-in boolean or numeric numpy dtype.

    Plain means: no fields, no sub-array, no object type, the flags and
    size of the built-in dtype of its type code (either byte order).
    """
    if not isinstance(dtype, np.dtype):
        return False
    if dtype.kind not in _PLAIN_DTYPE_KINDS or dtype.hasobject:
        return False
    if dtype.fields is not None or dtype.subdtype is not None:
        return False
    if dtype.names is not None or dtype.metadata is not None:
        return False
    reference = np.dtype(dtype.kind + str(dtype.itemsize))
    return dtype.flags == reference.flags and dtype.itemsize == (
        reference.itemsize
    )


def _dtype_spec_allowed(spec: object) -> bool:
    if not isinstance(spec, str):
        return False
    match = re.fullmatch(r'[<>|=]?([biufc])(\d{1,2})', spec)
    if not match:
        return False
    try:
        return is_plain_dtype(np.dtype(spec))
    except TypeError:
        return False


def _plain_dtype(spec, align=False, copy=False):
    """``np.dtype(spec, align, copy)`` for a plain numeric type code only."""
    if not _dtype_spec_allowed(spec) or align not in (False, 0):
        raise CheckpointRefusedError(
            f'a numpy dtype {brief(spec)} (align={brief(align)}); only '
            'boolean and '
            'numeric dtypes are allowed'
        )
    return np.dtype(spec, align=False, copy=bool(copy))


def _check_dtype_state(dtype: np.dtype, state: object) -> None:
    # (version, byteorder, subarray, names, fields, elsize, alignment,
    # flags): everything but the byte order must be what a built-in dtype
    # pickles; a different elsize or any fields would redefine its layout.
    if not (
        isinstance(state, tuple)
        and len(state) in (8, 9)
        and state[0] in (3, 4)
        and state[1] in _BYTE_ORDERS
        and state[2:5] == (None, None, None)
        and state[5:7] == (-1, -1)
        and state[7] == dtype.flags
        and (len(state) == 8 or state[8] is None)
    ):
        raise CheckpointRefusedError(
            f'a numpy dtype {dtype.str!r} with the state {brief(state)}; only '
            'the state of a built-in dtype (no fields, no sub-array, '
            'standard flags) is allowed'
        )


def _reconstruct(subtype, shape, typecode):
    """numpy's ``_reconstruct``: an empty bare ``ndarray`` to set state on.

    numpy always pickles it as ``_reconstruct(ndarray, (0,), b'b')``; the
    real shape, dtype and data come with the BUILD that follows.
    """
    if subtype is not np.ndarray:
        raise CheckpointRefusedError(
            f'an array of type {brief(subtype)}; only numpy.ndarray is allowed'
        )
    if shape != (0,) or typecode not in (b'b', 'b'):
        raise CheckpointRefusedError(
            f'numpy _reconstruct{brief((shape, typecode))}; numpy writes '
            "(0,), b'b'"
        )
    return np.ndarray.__new__(np.ndarray, (0,), np.int8)


def _check_array_state(array: np.ndarray, state: object) -> None:
    # (version, shape, dtype, is_fortran, data); the data of a plain dtype
    # is a bytes object, never a list of objects.
    ok = (
        isinstance(state, tuple)
        and len(state) == 5
        and isinstance(state[1], tuple)
        and all(isinstance(s, int) and s >= 0 for s in state[1])
        and is_plain_dtype(state[2])
        and isinstance(state[4], (bytes, bytearray))
    )
    if not ok:
        raise CheckpointRefusedError(
            'a numpy array whose state is not (shape, plain dtype, bytes)'
        )


def _scalar(dtype, data=None):
    """numpy's ``scalar``, for a plain dtype and raw bytes of its size."""
    if not is_plain_dtype(dtype):
        raise CheckpointRefusedError(
            f'a numpy scalar of dtype {brief(dtype)}; only boolean and '
            'numeric scalars are allowed'
        )
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CheckpointRefusedError(
            f'a numpy {dtype} scalar whose data is not {dtype.itemsize} bytes'
        )
    return np.frombuffer(data, dtype=dtype)[0].copy()


def _encode(text, encoding='latin1'):
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``."""
    if not isinstance(text, str) or encoding != 'latin1':
        raise CheckpointRefusedError(
            f'_codecs.encode({type(text).__name__}, {brief(encoding)}); only '
            'the latin1 encoding of a str, as pickle writes bytes, is allowed'
        )
    return text.encode('latin1')


def _bytes(*args):
    if args and not (
        len(args) == 1 and isinstance(args[0], (list, tuple, bytes))
    ):
        raise CheckpointRefusedError(f'bytes{brief(args)}')
    return bytes(*args)


# ---------------------------------------------------------------- torch ---


def _no_hooks(hooks) -> None:
    if hooks:
        raise CheckpointRefusedError(
            'a tensor with backward hooks; checkpoints hold plain tensors'
        )


def _check_tensor_args(storage, offset, size, stride, requires_grad, hooks,
                       metadata) -> None:  # fmt: skip
    _no_hooks(hooks)
    check_tensor_fits(storage, offset, size, stride)
    if not isinstance(requires_grad, bool):
        raise CheckpointRefusedError(
            f'a tensor whose requires_grad is {brief(requires_grad)}'
        )
    # torch writes {} or flags such as {'conj': True}.
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 8
        and all(
            isinstance(k, str) and isinstance(v, bool)
            for k, v in metadata.items()
        )
    ):
        raise CheckpointRefusedError(
            f'a tensor with the metadata {brief(metadata)}'
        )


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks,
                       metadata=None):  # fmt: skip
    _check_tensor_args(
        storage, offset, size, stride, requires_grad, hooks, metadata
    )
    return torch._utils._rebuild_tensor_v2(
        storage, offset, size, stride, requires_grad, OrderedDict(), metadata
    )


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks,
                       dtype, metadata=None):  # fmt: skip
    _check_tensor_args(
        storage, offset, size, stride, requires_grad, hooks, metadata
    )
    if not isinstance(dtype, torch.dtype):
        raise CheckpointRefusedError(f'a tensor whose dtype is {brief(dtype)}')
    return torch._utils._rebuild_tensor_v3(
        storage, offset, size, stride, requires_grad, OrderedDict(), dtype,
        metadata,
    )  # fmt: skip


def _rebuild_parameter(data, requires_grad, hooks):
    _no_hooks(hooks)
    if not isinstance(data, torch.Tensor):
        raise CheckpointRefusedError('a parameter whose data is no tensor')
    if not isinstance(requires_grad, bool):
        raise CheckpointRefusedError(
            f'a parameter whose requires_grad is {brief(requires_grad)}'
        )
    return torch.nn.Parameter(data, requires_grad)


def _device(spec, index=None):
    """``torch.device(spec[, index])`` for a short spec and a real index.

    torch wraps large indices silently (``torch.device('cuda', 10**6)`` is
    ``cuda:64``), so the device built must say what the file said.
    """
    ok = (
        isinstance(spec, str)
        and 0 < len(spec) <= 32
        and (
            index is None
            or (
                type(index) is int
                and 0 <= index < 2**16
                and re.fullmatch(r'[a-z_]+', spec) is not None
            )
        )
    )
    device = None
    if ok:
        try:
            device = (
                torch.device(spec)
                if index is None
                else torch.device(spec, index)
            )
        except (RuntimeError, ValueError, TypeError):
            device = None
    expected = spec if index is None else f'{spec}:{index}'
    if device is None or str(device) != expected:
        raise CheckpointRefusedError(
            f'torch.device{brief((spec, index))}, which is not a device '
            'torch names the same way'
        )
    return device


# -------------------------------------------------------------- mmengine ---

_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
_HISTORY_BUFFER_FIELDS = frozenset(
    ('max_length', '_log_history', '_count_history', 'statistics_methods',
     '_statistics_methods')
)  # fmt: skip


def _history_buffer_class():
    from mmengine.logging import HistoryBuffer

    return HistoryBuffer


def history_buffer_getattr(obj: object, name: str) -> object:
    """``getattr`` restricted to HistoryBuffer's statistics methods.

    A pickled ``HistoryBuffer`` refers to its ``min``/``max``/``current``/
    ``mean`` methods as ``builtins.getattr(HistoryBuffer, 'min')``. Allowing
    the real ``getattr`` would let a pickle reach any attribute of any
    allowed object (``__globals__`` included); this stand-in answers only
    those lookups.
    """
    history_buffer = _history_buffer_class()
    # The four built-in methods are only added to _statistics_methods when
    # a first buffer is created, so they are named here as well.
    allowed = set(_HISTORY_BUFFER_METHODS).union(
        history_buffer._statistics_methods
    )
    if (
        obj is history_buffer
        and name in allowed
        and callable(getattr(history_buffer, name, None))
    ):
        return getattr(history_buffer, name)
    raise CheckpointRefusedError(
        f'getattr({brief(obj)}, {brief(name)}); only HistoryBuffer '
        'statistics methods are allowed'
    )


def _check_history_buffer_state(buffer, state) -> None:
    if not (
        isinstance(state, dict)
        and all(isinstance(key, str) for key in state)
        and set(state) <= _HISTORY_BUFFER_FIELDS
    ):
        keys = list(state) if isinstance(state, dict) else state
        raise CheckpointRefusedError(
            f'a HistoryBuffer with the state {brief(keys)}; only '
            f'{sorted(_HISTORY_BUFFER_FIELDS)} are known'
        )
    max_length = state.get('max_length', 1)
    if type(max_length) is not int or max_length <= 0:
        raise CheckpointRefusedError(
            f'a HistoryBuffer whose max_length is {brief(max_length)}, not a '
            'positive integer'
        )
    lengths = set()
    for key in ('_log_history', '_count_history'):
        if key not in state:
            continue
        history = state[key]
        if not (
            type(history) is np.ndarray
            and history.ndim == 1
            and history.dtype.kind in 'biuf'
            and len(history) <= max_length
        ):
            raise CheckpointRefusedError(
                f'a HistoryBuffer whose {key} is {brief(history)}; MMEngine '
                f'keeps a 1-D numeric array of at most max_length '
                f'({max_length}) values'
            )
        lengths.add(len(history))
    if len(lengths) > 1:
        raise CheckpointRefusedError(
            'a HistoryBuffer whose _log_history and _count_history differ in '
            'length'
        )
    # Its statistics methods must be HistoryBuffer's own functions.
    cls = type(buffer)
    for key in ('statistics_methods', '_statistics_methods'):
        methods = state.get(key, {})
        if not isinstance(methods, dict) or any(
            getattr(cls, str(name), None) is not method
            for name, method in methods.items()
        ):
            raise CheckpointRefusedError(
                f'a HistoryBuffer whose {key} are not its own methods'
            )


# ---------------------------------------------------------- unpickler ---


# (module, name) -> what the unpickler hands out. numpy 1.x pickles name
# numpy.core, numpy 2.x numpy._core; both are read without importing them.
def _allowed_globals() -> Dict[Tuple[str, str], object]:
    allowed: Dict[Tuple[str, str], object] = {
        ('collections', 'OrderedDict'): OrderedDict,
        ('collections', 'Counter'): Counter,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('builtins', 'complex'): complex,
        ('builtins', 'bytes'): _bytes,
        ('builtins', 'getattr'): history_buffer_getattr,
        ('_codecs', 'encode'): _encode,
        ('numpy', 'dtype'): _plain_dtype,
        ('numpy', 'ndarray'): np.ndarray,
        ('torch', 'Size'): torch.Size,
        ('torch', 'device'): _device,
        ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
        ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
        ('mmengine.logging.history_buffer', 'HistoryBuffer'): (
            _history_buffer_class()
        ),
    }
    if hasattr(torch._utils, '_rebuild_tensor_v3'):
        allowed[('torch._utils', '_rebuild_tensor_v3')] = _rebuild_tensor_v3
    for core in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed[(core, '_reconstruct')] = _reconstruct
        allowed[(core, 'scalar')] = _scalar
    return allowed


_ALLOWED = None
_CALLABLE_IDS = None
# Classes a pickle may instantiate with NEWOBJ (``cls.__new__(cls)``).
_NEWOBJ_CLASSES = (OrderedDict, Counter, set, frozenset)


def _allowed() -> Dict[Tuple[str, str], object]:
    global _ALLOWED
    if _ALLOWED is None:
        _ALLOWED = _allowed_globals()
    return _ALLOWED


def _callable_ids() -> frozenset:
    """ids of the allowed globals a pickle may call (REDUCE): all but the
    classes it may only name (``ndarray`` for ``_reconstruct``,
    ``HistoryBuffer`` for ``getattr``). Built once, not per opcode."""
    global _CALLABLE_IDS
    if _CALLABLE_IDS is None:
        named_only = (np.ndarray, _history_buffer_class())
        _CALLABLE_IDS = frozenset(
            id(v) for v in _allowed().values() if v not in named_only
        )
    return _CALLABLE_IDS


class SafeUnpickler(pickle._Unpickler):
    """A pickle reader that builds only what a checkpoint holds.

    Pure Python (``pickle._Unpickler``), so that the opcodes which call or
    set state on objects (REDUCE, NEWOBJ, BUILD) can be checked one by
    one; checkpoints keep their tensors outside the pickle, so the pickle
    itself is small.
    """

    def find_class(self, module: str, name: str) -> object:
        module = {'__builtin__': 'builtins'}.get(module, module)
        found = _allowed().get((module, name))
        if found is None and module == 'torch':
            dtype = getattr(torch, name, None)
            if isinstance(dtype, torch.dtype):
                return dtype
        if found is None:
            raise CheckpointRefusedError(
                f'it asks for {_dotted(module)}.{_dotted(name)}, which is '
                'not a tensor, a plain numpy value or MMEngine metadata'
            )
        return found

    dispatch = dict(pickle._Unpickler.dispatch)

    def _callable(self, func) -> None:
        if id(func) not in _callable_ids():
            raise CheckpointRefusedError(f'it calls {brief(func)}')

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        self._callable(func)
        if not isinstance(args, tuple):
            raise CheckpointRefusedError(
                f'call of {brief(func)} with {brief(args)}'
            )
        self.stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        if cls is not _history_buffer_class() and cls not in _NEWOBJ_CLASSES:
            raise CheckpointRefusedError(f'it creates a {brief(cls)}')
        self.append(cls.__new__(cls, *args))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        raise CheckpointRefusedError('NEWOBJ_EX (keyword construction)')

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_inst(self):
        raise CheckpointRefusedError('INST/OBJ (old-style construction)')

    dispatch[pickle.INST[0]] = load_inst
    dispatch[pickle.OBJ[0]] = load_inst

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.dtype):
            _check_dtype_state(inst, state)
            inst.__setstate__(state)
            if not is_plain_dtype(inst):
                raise CheckpointRefusedError(f'a numpy dtype {brief(inst)}')
        elif type(inst) is np.ndarray:
            _check_array_state(inst, state)
            inst.__setstate__(state)
        elif type(inst) is OrderedDict:
            # A module's state_dict carries its version as ``_metadata``.
            if not (
                isinstance(state, dict)
                and set(state) <= {'_metadata'}
                and isinstance(state.get('_metadata', {}), dict)
            ):
                raise CheckpointRefusedError(
                    f'an OrderedDict with the attributes {brief(state)}; '
                    "only a state_dict's _metadata is allowed"
                )
            inst.__dict__.update(state)
        elif type(inst) is _history_buffer_class():
            _check_history_buffer_state(inst, state)
            # Its __setstate__ adds the (checked) methods to the class's
            # table, as an unrestricted load would.
            inst.__setstate__(dict(state))
        else:
            raise CheckpointRefusedError(
                f'it sets the state of a {type(inst).__name__}'
            )

    dispatch[pickle.BUILD[0]] = load_build


def _pickle_load(file, **kwargs):
    return SafeUnpickler(file, **kwargs).load()


def _safe_pickle_module() -> types.ModuleType:
    """A module object with the interface torch.load takes as pickle_module."""
    module = types.ModuleType('mmaniso_safe_pickle')
    module.Unpickler = SafeUnpickler
    module.load = _pickle_load
    module.UnpicklingError = pickle.UnpicklingError
    return module


SAFE_PICKLE = _safe_pickle_module()


def check_loaded(obj: Any, source: str = 'checkpoint') -> Any:
    """Walks a loaded checkpoint; raises on any non-plain numpy dtype.

    A second line of defence behind :class:`SafeUnpickler`, and what makes
    the guarantee testable: nothing leaves :func:`load_checkpoint_file`
    carrying a forged dtype.
    """
    todo = [obj]
    seen = set()
    history_buffer = _history_buffer_class()
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)
        elif isinstance(item, (np.ndarray, np.generic, np.dtype)):
            dtype = item if isinstance(item, np.dtype) else item.dtype
            if not is_plain_dtype(dtype):
                raise CheckpointRefusedError(
                    f'{source}: refused: it holds a numpy value of dtype '
                    f'{dtype!r}; only boolean and numeric dtypes are allowed '
                    f'({DOC})'
                )
        elif isinstance(item, history_buffer):
            todo.append(vars(item))
    return obj


def check_config_text(checkpoint: Any, source: str = 'checkpoint') -> Any:
    """Refuses a checkpoint whose stored config text is not plain data.

    MMEngine runs that text as a Python config (``--resume`` reads
    ``meta.config``; an inferencer given weights without a config reads
    ``message_hub.runtime_info.cfg`` or ``meta.cfg``). See
    :mod:`mmaniso.checkpoint.stored_config`.
    """
    for field, text in stored_config_texts(checkpoint):
        problem = config_text_problem(text)
        if problem is not None:
            raise CheckpointRefusedError(
                f'{source}: refused to load this checkpoint: its config text '
                f'`{field}` is not plain data ({problem}). MMEngine runs '
                'that text as Python on --resume and in inferencers given '
                "weights without a config; MMEngine's runner writes only "
                'assignments of literals and dict(...), so this file was '
                'written or edited by something else. If you trust it and '
                'need only the weights, keep them alone: '
                "torch.save({'state_dict': load_checkpoint_file(PATH, "
                "check_config=False)['state_dict']}, NEW_PATH) with "
                f'mmaniso.checkpoint.load_checkpoint_file ({DOC})'
            )
    return checkpoint


def load_checkpoint_file(
    file,
    map_location=None,
    source: Optional[str] = None,
    check_config: bool = True,
) -> Any:
    """Loads a ``torch.save`` file through :class:`SafeUnpickler`.

    ``torch.load`` is never called on the file before it has been read and
    checked here: :func:`~mmaniso.checkpoint.torch_file.read_torch_file` reads
    torch's zip and legacy formats itself and refuses TorchScript archives,
    tar files and storages the file does not hold.

    Args:
        file: A path or a binary file object.
        map_location: As for ``torch.load``.
        source: What to call the file in errors (a URL, say); the path by
            default.
        check_config: Refuse config text MMEngine would run that is not
            plain data (:func:`check_config_text`). Only to rescue the
            weights of a file you trust.

    Returns:
        The checkpoint, every numpy dtype in it checked to be plain.

    Raises:
        CheckpointRefusedError: naming the file and what it asked for.
        BrokenCheckpointError: naming the file, for one that is empty, cut
            short or not a checkpoint at all.
    """
    if source is None:
        source = file if isinstance(file, (str, os.PathLike)) else 'checkpoint'
    source = str(source)
    data = read_bytes(file, source)
    loaded = read_torch_file(
        io.BytesIO(data), SafeUnpickler, map_location, source=source
    )
    if os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '0').lower() in (
        '1',
        'y',
        'yes',
        'true',
    ):
        # The user asked for torch's own allow-list (stricter still: no
        # numpy). The bytes have passed the checks above, so torch.load
        # sees no TorchScript archive and no storage the file lacks.
        loaded = torch.load(
            io.BytesIO(data), map_location=map_location, weights_only=True
        )
    check_loaded(loaded, source)
    return check_config_text(loaded, source) if check_config else loaded


# ------------------------------------------------- CheckpointLoader ---


def load_from_local(filename, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_checkpoint_file(filename, map_location)


def checkpoint_cache_dir() -> str:
    """Where downloaded checkpoints are kept: torch's hub cache."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def download_checkpoint(url: str, model_dir: Optional[str] = None) -> str:
    """Downloads ``url`` into the cache once (rank 0 first); its path."""
    from mmengine.dist import get_dist_info

    model_dir = model_dir or checkpoint_cache_dir()
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    cached = osp.join(model_dir, name)

    def fetch():
        if not osp.isfile(cached):
            os.makedirs(model_dir, exist_ok=True)
            torch.hub.download_url_to_file(url, cached, progress=os.isatty(2))

    rank, world_size = get_dist_info()
    if rank == 0:
        fetch()
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            fetch()
    return cached


def load_from_http(filename, map_location=None, model_dir=None):
    cached = download_checkpoint(filename, model_dir)
    return load_checkpoint_file(
        cached, map_location, source=f'{filename} (cached as {cached})'
    )


def load_from_torchvision(filename, map_location=None):
    from mmengine.runner.checkpoint import get_torchvision_models

    name = filename.split('://', 1)[1]
    return load_from_http(get_torchvision_models()[name], map_location)


def load_from_openmmlab(filename, map_location=None):
    from mmengine.runner.checkpoint import (
        _get_mmengine_home,
        get_deprecated_model_names,
        get_external_models,
    )

    name = filename.split('://', 1)[1]
    name = get_deprecated_model_names().get(name, name)
    url = get_external_models()[name]
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location)
    return load_from_local(osp.join(_get_mmengine_home(), url), map_location)


def load_from_mmcls(filename, map_location=None):
    from mmengine.runner.checkpoint import (
        _process_mmcls_checkpoint,
        get_mmcls_models,
    )

    name = filename.split('://', 1)[1]
    checkpoint = load_from_http(get_mmcls_models()[name], map_location)
    return _process_mmcls_checkpoint(checkpoint)


def load_from_ceph(filename, map_location=None, backend='petrel'):
    from mmengine.fileio import get_file_backend

    file_backend = get_file_backend(
        filename, backend_args=dict(backend=backend)
    )
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return load_checkpoint_file(buffer, map_location, source=filename)


def load_from_pavi(filename, map_location=None):
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            f'{filename}: install pavi to load checkpoints from its model '
            'cloud'
        ) from None
    model = modelcloud.get(filename[len('pavi://') :])
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, model.name)
        model.download(path)
        return load_checkpoint_file(path, map_location, source=filename)


# MMEngine's prefixes, each with the loader that replaces its own.
SCHEMES: Dict[Tuple[str, ...], Callable] = {
    ('',): load_from_local,
    ('http://', 'https://'): load_from_http,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    ('mmcls://',): load_from_mmcls,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
    ('pavi://',): load_from_pavi,
}


def register_checkpoint_loaders() -> None:
    """Routes every MMEngine checkpoint scheme through the safe loader.

    MMEngine logs ``Loads checkpoint by <loader name[10:]> backend``; the
    loaders are named ``load_from_<scheme>`` as MMEngine's are, so its log
    reads as before.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    for prefixes, loader in SCHEMES.items():
        CheckpointLoader.register_scheme(list(prefixes), loader, force=True)
    # Every prefix MMEngine has must now be ours: a scheme added by a newer
    # MMEngine would otherwise bypass the policy.
    ours = set(SCHEMES.values())
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if loader not in ours:
            CheckpointLoader.register_scheme(
                prefix, _refuse_unknown, force=True
            )
    # A scheme another package registers after this (its loader may call
    # torch.load(weights_only=False)) is refused when it is looked up.
    lookup = CheckpointLoader.__dict__['_get_checkpoint_loader']
    if not getattr(lookup, '_mmaniso', False):
        find = lookup.__func__

        def _get_checkpoint_loader(cls, path):
            loader = find(cls, path)
            return loader if loader in ours else _refuse_unknown

        guarded = classmethod(_get_checkpoint_loader)
        guarded._mmaniso = True
        CheckpointLoader._get_checkpoint_loader = guarded


def _refuse_unknown(filename, map_location=None):
    raise CheckpointRefusedError(
        f'{filename}: mmaniso has no safe loader for this checkpoint scheme; '
        'download the file and give its local path'
    )


_refuse_unknown.__name__ = 'load_from_unknown_scheme'
