from .annotation_fingerprint_hook import (
    AnnotationFingerprintHook,
    ChangedAnnotationsError,
)
from .atomic_checkpoint_hook import AtomicCheckpointHook, write_atomically
from .channels_last_hook import ChannelsLastHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .pose_balancing_hook import PoseBalancingHook

__all__ = [
    'AnnotationFingerprintHook',
    'AtomicCheckpointHook',
    'ChangedAnnotationsError',
    'ChannelsLastHook',
    'NonFiniteLossError',
    'NonFiniteLossHook',
    'PoseBalancingHook',
    'write_atomically',
]
