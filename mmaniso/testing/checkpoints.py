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
