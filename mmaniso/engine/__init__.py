"""Runner hooks."""

from .hooks import PoseBalancingHook

__all__ = ['PoseBalancingHook']
