"""Runner hooks and the optimiser constructor."""

from .hooks import ChannelsLastHook, PoseBalancingHook
from .optimizers import LearnedScalesOptimWrapperConstructor

__all__ = [
    'ChannelsLastHook',
    'LearnedScalesOptimWrapperConstructor',
    'PoseBalancingHook',
]
