"""Runner hooks and the optimiser constructor."""

from .hooks import (
    AnnotationFingerprintHook,
    AtomicCheckpointHook,
    ChannelsLastHook,
    NonFiniteLossHook,
    PoseBalancingHook,
)
from .optimizers import LearnedScalesOptimWrapperConstructor

__all__ = [
    'AnnotationFingerprintHook',
    'AtomicCheckpointHook',
    'ChannelsLastHook',
    'LearnedScalesOptimWrapperConstructor',
    'NonFiniteLossHook',
    'PoseBalancingHook',
]
