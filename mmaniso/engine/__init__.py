"""Runner hooks."""

from .hooks import (
    AnnotationFingerprintHook,
    AtomicCheckpointHook,
    ChannelsLastHook,
    NonFiniteLossHook,
    PoseBalancingHook,
)

__all__ = [
    'AnnotationFingerprintHook',
    'AtomicCheckpointHook',
    'ChannelsLastHook',
    'NonFiniteLossHook',
    'PoseBalancingHook',
]
