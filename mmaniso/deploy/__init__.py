"""Deployment of trained models: ONNX export and an ONNX Runtime runner.

Needs the ``deploy`` extra (``pip install 'mmaniso[deploy]'``: onnx,
onnxruntime, onnxscript). Not imported by ``import mmaniso``: only the tools
(``tools/deployment/export_onnx.py``) import it, and onnx and onnxruntime
are imported when a function here first needs them.
"""

from .onnx import (
    LandmarkGraph,
    OnnxLandmarkModel,
    crop_ellipses,
    export_onnx,
    max_crop_difference,
    median_latency,
    preprocessing_metadata,
    require_mean_shape,
    run_onnx,
    scales_metadata,
)

__all__ = [
    'LandmarkGraph',
    'OnnxLandmarkModel',
    'crop_ellipses',
    'export_onnx',
    'max_crop_difference',
    'median_latency',
    'preprocessing_metadata',
    'require_mean_shape',
    'run_onnx',
    'scales_metadata',
]
