from .checkpoint import (
    CHECKPOINT_SAFE_GLOBALS,
    register_checkpoint_safe_globals,
)
from .dist import prepare_cpu_distributed

__all__ = [
    'CHECKPOINT_SAFE_GLOBALS',
    'register_checkpoint_safe_globals',
    'prepare_cpu_distributed',
]
