from .mean_shape_head import MeanShapeRegressionHead

__all__ = ['MeanShapeRegressionHead']
