"""Test helpers, as ``mmpose.testing``: a generated fixture dataset and an
in-memory pose dataset, for the tests and the benchmarks.

Not imported by ``import mmaniso``. The test hooks of :mod:`.hooks` register
only when a config imports them
(``custom_imports=dict(imports=['mmaniso', 'mmaniso.testing.hooks'])``).
"""

from .fixture import write_face_fixture
from .pose_dataset import InMemoryPoseDataset

__all__ = ['InMemoryPoseDataset', 'write_face_fixture']
