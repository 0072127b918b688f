"""mmaniso: the anisotropic landmark cost of Rayhan, Galata and Cootes
(BMVC 2020) for MMPose.

Importing this package registers every component into MMPose's registries
(``custom_imports = dict(imports=['mmaniso'])`` in a config).
"""

from . import datasets, engine, evaluation, models  # noqa: F401  (registers)
from .utils import register_checkpoint_loaders
from .version import __version__

# Every checkpoint MMEngine loads (load_from, resume, Pretrained init,
# tools/test.py, mmpose.apis.init_model), from a file or a URL, goes through
# mmaniso's restricted unpickler (mmaniso/utils/checkpoint.py). torch's own
# global allow-list is left as it is.
register_checkpoint_loaders()

__all__ = ['__version__', 'datasets', 'engine', 'evaluation', 'models']
