"""Converters from the official face-landmark downloads to MMPose's JSON.

Pure python/numpy (plus PIL for image headers and scipy for AFLW's .mat);
``tools/dataset_converters/convert_*.py`` are their command lines.
"""

from .aflw import convert_aflw, load_aflw_mat
from .coco import Face, build_coco, write_coco
from .face300w import convert_300w, read_pts
from .wflw import convert_wflw, parse_wflw_line, read_wflw_list

__all__ = [
    'Face',
    'build_coco',
    'convert_300w',
    'convert_aflw',
    'convert_wflw',
    'load_aflw_mat',
    'parse_wflw_line',
    'read_pts',
    'read_wflw_list',
    'write_coco',
]
