from .pose_balancing_hook import PoseBalancingHook

__all__ = ['PoseBalancingHook']
