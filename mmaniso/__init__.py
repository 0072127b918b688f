"""mmaniso: the anisotropic landmark cost of Rayhan, Galata and Cootes
(BMVC 2020) for MMPose.

Importing this package registers every component into MMPose's registries
(``custom_imports = dict(imports=['mmaniso'])`` in a config).
"""

import warnings

# mmcv-lite (the default stack) has no compiled ops by design, and mmcv says
# so on import of its transformer bricks; mmaniso uses none of them, so the
# message tells a user nothing. Any other warning still shows.
warnings.filterwarnings(
    'ignore',
    message='Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning,
)

from . import datasets, engine, evaluation, models  # noqa: E402, F401
from .checkpoint import register_checkpoint_loaders  # noqa: E402
from .version import __version__  # noqa: E402

# Every checkpoint MMEngine loads (load_from, resume, Pretrained init,
# tools/test.py, mmpose.apis.init_model), from a file or a URL, goes through
# mmaniso's restricted unpickler (mmaniso/checkpoint/). torch's own global
# allow-list is left as it is.
register_checkpoint_loaders()

__all__ = ['__version__', 'datasets', 'engine', 'evaluation', 'models']
