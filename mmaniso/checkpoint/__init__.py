"""Checkpoint safety: one loading policy for every checkpoint a user loads.

The public entry point is :func:`load_checkpoint_file`;
:func:`register_checkpoint_loaders` (run by ``import mmaniso``) puts it
behind every scheme MMEngine's ``CheckpointLoader`` knows. Beside it:
:mod:`.torch_file`, the reader of torch's zip and legacy formats that never
calls ``torch.load`` on an unchecked file, and :mod:`.stored_config`, the
check that config text stored in a checkpoint is plain data.
"""

from .safe_loader import (
    CheckpointRefusedError,
    load_checkpoint_file,
    register_checkpoint_loaders,
)

__all__ = [
    'CheckpointRefusedError',
    'load_checkpoint_file',
    'register_checkpoint_loaders',
]
