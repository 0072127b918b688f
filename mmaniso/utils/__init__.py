from .checkpoint import (
    CheckpointRefusedError,
    load_checkpoint_file,
    register_checkpoint_loaders,
)
from .dist import prepare_cpu_distributed

__all__ = [
    'CheckpointRefusedError',
    'load_checkpoint_file',
    'register_checkpoint_loaders',
    'prepare_cpu_distributed',
]
