"""mmaniso: the anisotropic landmark cost of Rayhan, Galata and Cootes
(BMVC 2020) for MMPose.

Importing this package registers every component into MMPose's registries
(``custom_imports = dict(imports=['mmaniso'])`` in a config).
"""

from . import datasets, engine, evaluation, models  # noqa: F401  (registers)
from .utils import register_checkpoint_safe_globals
from .version import __version__

# Checkpoints are loaded with torch's weights_only unpickler on torch>=2.6;
# the few numpy/mmengine types MMEngine puts in checkpoint metadata are
# allow-listed here so that load_from, resume and tools/test.py work.
register_checkpoint_safe_globals()

__all__ = ['__version__', 'datasets', 'engine', 'evaluation', 'models']
