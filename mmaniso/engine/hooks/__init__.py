from .channels_last_hook import ChannelsLastHook
from .pose_balancing_hook import PoseBalancingHook

__all__ = ['ChannelsLastHook', 'PoseBalancingHook']
