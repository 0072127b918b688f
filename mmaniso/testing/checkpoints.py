"""Malicious checkpoint contents, for tests of the loading policy.

Each class pickles into what an attacker would put in a checkpoint; the
tests save them with ``torch.save`` and check that every loading path
refuses them. Unpickled by an unrestricted loader they do harm, so they
live here, not in the package's import path (``import mmaniso`` does not
import :mod:`mmaniso.testing`).
"""

import os

import numpy as np


class RunsCode:
    """Unpickling this runs ``touch MARKER``: the classic malicious pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class ForgedDtype:
    """A float64 dtype whose pickled state adds an object field at 0.

    ``np.dtype.__setstate__`` accepts it; an array of that dtype then reads
    its 8 data bytes as a PyObject pointer.
    """

    def __reduce__(self):
        fields = {'x': (np.dtype('O'), 0)}
        state = (3, '|', None, ('x',), fields, 8, 8, 63)
        return np.dtype, ('f8', False, True), state


class ForgedArray:
    """An array of the forged dtype whose data bytes are 0x4141..."""

    def __reduce__(self):
        reconstruct = np.zeros(1).__reduce__()[0]  # numpy's _reconstruct
        return (
            reconstruct,
            (np.ndarray, (0,), b'b'),
            (1, (1,), ForgedDtype(), False, b'A' * 8),
        )


def save_torchscript_archive(path, marker) -> None:
    """Writes a TorchScript archive whose ``__setstate__`` creates
    ``marker`` (with ``torch.from_file(shared=True)``) when it is loaded.

    ``torch.load`` hands such a zip to ``torch.jit.load``, which runs the
    code and never looks at the pickle module it was given.
    """
    import warnings
    from typing import Tuple

    import torch

    class SetsState(torch.nn.Module):
        def __init__(self, target: str):
            super().__init__()
            self.target = target
            self.touched = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        @torch.jit.export
        def __getstate__(self) -> Tuple[str, bool]:
            return (self.target, self.training)

        @torch.jit.export
        def __setstate__(self, state: Tuple[str, bool]) -> None:
            self.target = state[0]
            self.training = state[1]
            # Used, so that TorchScript does not drop the call.
            mapped = torch.from_file(state[0], True, 4, dtype=torch.uint8)
            self.touched = int(mapped.sum())

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch.jit is deprecated
        torch.jit.script(SetsState(str(marker))).save(str(path))


def nested_pairs(levels: int = 60) -> list:
    """A list holding the level below twice, ``levels`` deep: a pickle of
    it is tiny (the memo shares each level), its ``repr`` never ends."""
    nested: list = []
    for _ in range(levels):
        nested = [nested, nested]
    return nested


class Reduces:
    """Pickles as ``func(*args)`` with an optional ``state``."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return self.func, self.args
        return self.func, self.args, self.state


class NewObject:
    """Pickles as ``cls.__new__(cls)`` (NEWOBJ) with ``state`` (BUILD)."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    @property
    def __class__(self):
        # pickle checks that NEWOBJ's class is the object's own.
        return self.cls

    def __reduce_ex__(self, protocol):
        import copyreg

        return copyreg.__newobj__, (self.cls,), self.state


class DeclaredStorage:
    """A storage a hand-written legacy checkpoint declares (see
    :func:`legacy_checkpoint`)."""

    def __init__(self, key: str, storage_type, numel: int):
        self.key, self.storage_type, self.numel = key, storage_type, numel


class DeclaredTensor:
    """A 1-D tensor over a :class:`DeclaredStorage`."""

    def __init__(self, storage: DeclaredStorage, numel: int, offset=0):
        self.storage, self.numel, self.offset = storage, numel, offset

    def __reduce__(self):
        from collections import OrderedDict

        import torch

        return torch._utils._rebuild_tensor_v2, (
            self.storage, self.offset, (self.numel,), (1,), False,
            OrderedDict(),
        )  # fmt: skip


def legacy_checkpoint(obj, filled) -> bytes:
    """The bytes of a legacy-format (``_use_new_zipfile_serialization=
    False``) checkpoint, written by hand so that its storage section can
    say anything.

    Args:
        obj: What the pickle holds; :class:`DeclaredStorage` objects in it
            become the persistent ids torch writes for storages.
        filled: ``(key, count, data)`` for each storage record after the
            pickle: the key list, then per key an element count and bytes.
    """
    import io
    import pickle
    import struct

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, DeclaredStorage):
                return ('storage', obj.storage_type, obj.key, 'cpu',
                        obj.numel, None)  # fmt: skip
            return None

    out = io.BytesIO()
    for header in (
        0x1950A86A20F9469CFC6C,
        1001,
        dict(protocol_version=1001, little_endian=True,
             type_sizes=dict(short=2, int=4, long=4)),
    ):  # fmt: skip
        pickle.dump(header, out, protocol=2)
    Pickler(out, protocol=2).dump(obj)
    pickle.dump([key for key, _, _ in filled], out, protocol=2)
    for _, count, data in filled:
        out.write(struct.pack('<q', count))
        out.write(data)
    return out.getvalue()
