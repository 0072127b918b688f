"""Loading MMEngine checkpoints with torch's ``weights_only`` unpickler.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses any
global that is not allow-listed. MMEngine checkpoints carry, besides tensors,
the message hub (``HistoryBuffer`` objects holding numpy arrays) and the
dataset metainfo (numpy arrays and scalars). We allow exactly those types;
``weights_only`` stays on, so a checkpoint still cannot run code.
"""

import pickle
from typing import List

import numpy as np
import torch


def _numpy_globals() -> List[object]:
    # numpy pickles arrays through ``_reconstruct`` (numpy.core became
    # numpy._core in numpy 2), scalars through ``scalar`` with their raw
    # ``bytes``, and dtypes as ``np.dtype(...)`` whose state is then set on
    # an instance of the concrete dtype class (numpy >= 1.25). Only boolean
    # and numeric dtypes are allowed: metainfo holds nothing else.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    found = [
        multiarray._reconstruct,
        multiarray.scalar,
        np.ndarray,
        np.dtype,
        bytes,
    ]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for kind in (
            np.bool_,
            np.int8,
            np.int16,
            np.int32,
            np.int64,
            np.uint8,
            np.uint16,
            np.uint32,
            np.uint64,
            np.float16,
            np.float32,
            np.float64,
            np.longdouble,
        ):
            found.append(type(np.dtype(kind)))
    return found


_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj: object, name: str) -> object:
    """``getattr`` restricted to HistoryBuffer's statistics methods.

    A pickled ``HistoryBuffer`` refers to its ``min``/``max``/``current``/
    ``mean`` methods as ``builtins.getattr(HistoryBuffer, 'min')``. Allowing
    the real ``getattr`` would let a pickle reach any attribute of any
    allowed object (``__globals__`` included); this stand-in is registered
    under the name ``builtins.getattr`` and answers only those lookups.
    """
    from mmengine.logging import HistoryBuffer

    # The four built-in methods are only added to _statistics_methods when
    # a first buffer is created, so they are named here as well.
    allowed = set(_HISTORY_BUFFER_METHODS).union(
        HistoryBuffer._statistics_methods
    )
    if (
        obj is HistoryBuffer
        and name in allowed
        and callable(getattr(HistoryBuffer, name, None))
    ):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        'HistoryBuffer statistics methods are allowed'
    )


def _mmengine_globals() -> List[object]:
    from mmengine.logging import HistoryBuffer

    return [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')]


def checkpoint_safe_globals() -> List[object]:
    """Every global an MMEngine/MMPose checkpoint holds beyond tensors.

    Items are objects or ``(object, 'qualified.name')`` pairs, as
    ``torch.serialization.add_safe_globals`` takes them.
    """
    return _numpy_globals() + _mmengine_globals()


CHECKPOINT_SAFE_GLOBALS = checkpoint_safe_globals()


def register_checkpoint_safe_globals() -> None:
    """Allow-lists :data:`CHECKPOINT_SAFE_GLOBALS` for ``torch.load``.

    A no-op on torch versions without ``add_safe_globals`` (< 2.4), which
    load checkpoints with the full unpickler anyway.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:
        add(CHECKPOINT_SAFE_GLOBALS)
