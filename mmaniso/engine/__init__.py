"""Runner hooks."""

from .hooks import ChannelsLastHook, PoseBalancingHook

__all__ = ['ChannelsLastHook', 'PoseBalancingHook']
