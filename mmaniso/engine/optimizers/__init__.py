from .learned_scales_constructor import LearnedScalesOptimWrapperConstructor

__all__ = ['LearnedScalesOptimWrapperConstructor']
