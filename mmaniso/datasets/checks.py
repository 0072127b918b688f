"""Checks of a config's data that run before any model is built.

A missing data folder otherwise surfaces minutes later, deep inside a
dataloader worker; a keypoint count that differs from the metainfo surfaces
as a shape error in a loss, or not at all. Both are caught here and reported
with the file, the record and the fix.
"""

import json
import math
import os
import os.path as osp
import re
import sys
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from mmaniso.utils.image_files import truncation

DOC = 'docs/data_preparation.md'

# How each dataset is prepared, quoted in the missing-data message.
_MMPOSE_LAYOUT = (
    "unpack the images to <data_root>/images/ and put MMPose's JSON "
    'annotations in <data_root>/annotations/.'
)
PREPARATION = {
    'WFLWDataset': (
        'WFLW: download WFLW_images.tar.gz and WFLW_annotations.tar.gz from '
        'https://wywu.github.io/projects/LAB/WFLW.html, then '
        'python tools/dataset_converters/convert_wflw.py <data_root>'
    ),
    'Face300WDataset': (
        '300W: download the iBUG 300W images and .pts files (afw, helen, '
        'lfpw, ibug, 300W private), then '
        'python tools/dataset_converters/convert_300w.py <data_root>'
    ),
    'AFLWDataset': (
        'AFLW: get the images and AFLWinfo_release.mat, then '
        'python tools/dataset_converters/convert_aflw.py <data_root>'
    ),
    'COFWDataset': 'COFW: download the COFW images, ' + _MMPOSE_LAYOUT,
}
FIXTURE_HINT = (
    'Without any download, generate SynthFace (rendered faces in the WFLW '
    'layout): python tools/dataset_converters/make_synthface.py '
    'data/synthface'
)


class DataCheckError(Exception):
    """Raised when a config's data is missing or inconsistent."""


# MMPose's face datasets store the face box side divided by this (scale).
PIXEL_STD = 200.0


def _dataset_cfgs(cfg) -> Iterator[Tuple[str, dict]]:
    """Yields ``(split, dataset_cfg)`` for every leaf dataset of a config."""

    def leaves(ds):
        if ds is None:
            return
        if 'datasets' in ds:
            for sub in ds['datasets']:
                yield from leaves(sub)
        elif 'dataset' in ds:
            yield from leaves(ds['dataset'])
        else:
            yield ds

    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            for ds in leaves(loader.get('dataset')):
                yield split, ds


def _missing_or_empty(folder: str) -> bool:
    if not osp.isdir(folder):
        return True
    with os.scandir(folder) as entries:
        return next(entries, None) is None


def _join(root: Optional[str], path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def expected_files(ds: dict) -> Tuple[Optional[str], Optional[str]]:
    """The annotation file and image folder a dataset config points to."""
    root = ds.get('data_root') or ''
    ann = ds.get('ann_file')
    img = (ds.get('data_prefix') or {}).get('img')
    return (
        _join(root, ann) if ann else None,
        _join(root, img) if img is not None else None,
    )


def _dataset_class(ds: dict):
    """The registered class of a dataset config, or None."""
    from mmpose.registry import DATASETS

    ds_type = ds.get('type')
    return DATASETS.get(ds_type) if isinstance(ds_type, str) else ds_type


def _metainfo_keypoints(ds: dict) -> Tuple[Optional[int], str]:
    """Number of keypoints the dataset's metainfo declares, and its source."""
    cls = _dataset_class(ds)
    if cls is None or not hasattr(cls, '_load_metainfo'):
        return None, ''
    raw = ds.get('metainfo')
    meta = cls._load_metainfo(dict(raw) if raw else None)
    source = (raw or getattr(cls, 'METAINFO', {})).get('from_file', '')
    name = getattr(cls, '__name__', str(ds.get('type')))
    return meta.get('num_keypoints'), f'{name} metainfo {source}'.strip()


# MMPose's face datasets whose parse_data_info builds the box from
# ann['center'] and ann['scale'] (a KeyError mid-load when one is missing);
# COFW, LaPa and the COCO-style base read ann['bbox'] instead.
CENTRE_SCALE_DATASETS = ('WFLWDataset', 'Face300WDataset', 'AFLWDataset')
# CocoWholeBodyFaceDataset reads the face's own fields of a whole-body
# annotation, and skips faces marked invalid.
WHOLEBODY_FACE_DATASET = 'CocoWholeBodyFaceDataset'


def _type_name(type_) -> str:
    """The class name of a config's ``type`` (string, scoped or class)."""
    if isinstance(type_, str):
        return type_.rsplit('.', 1)[-1]
    return getattr(type_, '__name__', '')


def _reader_names(ds: dict) -> List[str]:
    """Names of the dataset's class and its bases (to spot subclasses)."""
    cls = _dataset_class(ds)
    if isinstance(cls, type):
        return [c.__name__ for c in cls.__mro__]
    return [_type_name(ds.get('type'))]


def pose_balancing_users(cfg) -> Optional[str]:
    """What in ``cfg`` bins the training faces by pose, or None.

    Both :class:`~mmaniso.datasets.PoseBalancedSampler` and
    :class:`~mmaniso.engine.PoseBalancingHook` (which also fills the mean
    shape) align every training face by its visible points.
    """
    users = []
    sampler = (cfg.get('train_dataloader') or {}).get('sampler') or {}
    if _type_name(sampler.get('type')) == 'PoseBalancedSampler':
        users.append("train_dataloader's PoseBalancedSampler")
    for hook in cfg.get('custom_hooks') or []:
        if isinstance(hook, dict):
            if _type_name(hook.get('type')) == 'PoseBalancingHook':
                users.append('PoseBalancingHook in custom_hooks')
    return ' and '.join(users) or None


# ------------------------------------------------ geometry and bounds
# How far a labelled keypoint may lie outside the face box MMPose crops
# from, and outside its image, in sides of that box. Measured on the real
# 300W test faces (1,289 faces of 68 points, ../shared/data/real_shapes):
# against HRNet's box (side = scale * 200) max 3.7e-8 box sides, p99.9
# 3.6e-8 (rounding: that box is the landmarks' extent); on the converters'
# output of .pts files rebuilt from them max 1.6e-15 (the box is the
# landmarks' extent), and of an AFLW .mat rebuilt from them (19 of the
# points, HRNet's box as the released box) max 2.5e-8. No WFLW list or
# detector box was at hand to measure. 0.5 box sides leaves a wide margin
# for datasets whose box is a detector's rectangle and for hidden points
# annotated beyond the image edge, and still refuses a point 200 px
# outside a 100 px box (2 box sides).
KEYPOINT_OUTSIDE_TOLERANCE = 0.5
# The face box side: at least this many pixels, and at most this many
# times the image's longer side (no face is ten images wide).
MIN_BOX_SIDE = 1.0
MAX_BOX_SIDE_IN_IMAGES = 10.0
# Every coordinate (unlabelled points and box corners too) lies within
# this many image sizes beyond the image's edges ...
COORDINATE_EXTENT_IN_IMAGES = 1.0
# ... or, where the image size is not known, within this many pixels of 0.
MAX_COORDINATE = 1e6
# Image sides above this are refused as corrupt sizes.
MAX_IMAGE_SIDE = 1e6
# The visibility flags MMPose and COCO use: 0 unlabelled, 1 labelled but
# hidden, 2 visible. MMPose weights 0.5 as hidden while a pose check
# would count it visible; any other value is refused.
VISIBILITY_VALUES = (0, 1, 2)

_OK, _SMALL, _LARGE, _OFF_IMAGE, _CENTRE, _COORD, _BOX, _IMAGE = range(8)


def _geometry_codes(pts, vis, centre, half, size):
    """The first broken rule of each face (vectorised).

    Args:
        pts: Keypoints, shape (N, K, 2).
        vis: Visibility flags, shape (N, K).
        centre: Box centres, shape (N, 2).
        half: Half the box width and height, shape (N, 2).
        size: Image (width, height), shape (N, 2); NaN where unknown.

    Returns:
        ``(code, point, beyond)``: the rule (``_OK`` when none), the point
        index and its distance outside the box or image, each (N,).
    """
    known = np.isfinite(size).all(1)  # (N,)
    img_hi = np.where(known[:, None], size, 0.0)
    longer = img_hi.max(1)
    ext = np.where(known, COORDINATE_EXTENT_IN_IMAGES * longer, 0.0)
    lo = np.where(known[:, None], -ext[:, None], -MAX_COORDINATE)  # (N, 2)
    hi = np.where(known[:, None], img_hi + ext[:, None], MAX_COORDINATE)
    side = 2 * half.max(1)
    max_side = np.where(
        known, MAX_BOX_SIDE_IN_IMAGES * longer, 2 * MAX_COORDINATE
    )
    code = np.full(len(pts), _OK)
    point = np.zeros(len(pts), dtype=np.int64)
    beyond = np.zeros(len(pts))

    def mark(bad, value):
        new = bad & (code == _OK)
        code[new] = value
        return new

    mark(~(half.min(1) * 2 >= MIN_BOX_SIDE), _SMALL)
    mark(side > max_side, _LARGE)
    mark(
        known & (((centre + half) < 0) | ((centre - half) > img_hi)).any(1),
        _OFF_IMAGE,
    )
    mark(((centre < lo) | (centre > hi)).any(1), _CENTRE)
    labelled = vis > 0
    tol = KEYPOINT_OUTSIDE_TOLERANCE * side  # (N,)
    dist = np.abs(pts - centre[:, None]) - half[:, None]
    dist = np.where(labelled, np.maximum(dist, 0).max(2), 0)  # (N, K)
    new = mark(dist.max(1) > tol, _BOX)
    point[new] = dist[new].argmax(1)
    beyond[new] = dist[new].max(1)
    dist = np.maximum(-pts, pts - img_hi[:, None]).max(2)
    dist = np.where(labelled & known[:, None], np.maximum(dist, 0), 0)
    new = mark(dist.max(1) > tol, _IMAGE)
    point[new] = dist[new].argmax(1)
    beyond[new] = dist[new].max(1)
    out = ((pts < lo[:, None]) | (pts > hi[:, None])).any(2)  # (N, K)
    new = mark(out.any(1), _COORD)
    point[new] = out[new].argmax(1)
    return code, point, beyond


def _geometry_message(
    code, k, beyond, pts, centre, half, size, box_field
) -> Tuple[str, str]:
    """``(field, problem)`` of one face whose rule ``code`` broke."""
    side = 2 * max(half)
    box = (
        f'the face box (centre {centre[0]:.4g}, {centre[1]:.4g}, '
        f'{2 * half[0]:.4g} x {2 * half[1]:.4g} px, from "{box_field}")'
    )
    if np.isfinite(size).all():
        image = f'the {size[0]:g}x{size[1]:g} image'
        bound = f'within {COORDINATE_EXTENT_IN_IMAGES:g} image size of {image}'
    else:
        image = 'the image'
        bound = f'within {MAX_COORDINATE:.0e} px of 0 (image size unknown)'
    centre_field = 'center' if box_field == 'scale' else box_field
    at = f'puts point {k} at ({pts[k][0]:.4g}, {pts[k][1]:.4g})'
    tolerance = (
        f'the tolerance is {KEYPOINT_OUTSIDE_TOLERANCE:g} box sides '
        f'({KEYPOINT_OUTSIDE_TOLERANCE * side:.4g} px)'
    )
    if code == _SMALL:
        return box_field, (
            f'gives {box}; a face box is at least {MIN_BOX_SIDE:g} px wide'
        )
    if code == _LARGE:
        limit = (
            f'{MAX_BOX_SIDE_IN_IMAGES:g} times {image}'
            if np.isfinite(size).all()
            else f'{2 * MAX_COORDINATE:.0e} px'
        )
        return box_field, f'gives {box}, larger than {limit}'
    if code == _OFF_IMAGE:
        return centre_field, f'puts {box} entirely outside {image}'
    if code == _CENTRE:
        return centre_field, f'puts {box} not {bound}'
    if code == _COORD:
        return 'keypoints', f'{at}, not {bound}'
    where = box if code == _BOX else image
    return 'keypoints', (
        f'{at}, {beyond:.4g} px ({beyond / side:.3g} box sides) outside '
        f'{where}; {tolerance}'
    )


def face_geometry_problem(
    points,
    visible,
    center: Sequence[float],
    half: Sequence[float],
    image_size: Optional[Tuple[float, float]] = None,
    box_field: str = 'scale',
) -> Optional[Tuple[str, str]]:
    """What is wrong with one face's box and keypoints, or None.

    The box is ``center`` +- ``half`` (half its width and height); its
    side is the longer of the two. Refused, in this order: a side below
    ``MIN_BOX_SIDE`` or above ``MAX_BOX_SIDE_IN_IMAGES`` image sizes, a box
    entirely outside its image, a centre beyond
    ``COORDINATE_EXTENT_IN_IMAGES`` image sizes from the image
    (``MAX_COORDINATE`` from 0 without the size), a labelled point
    (``visible`` > 0) more than ``KEYPOINT_OUTSIDE_TOLERANCE`` box sides
    outside the box or the image, and any point beyond the centre's
    bound.

    Args:
        points: Keypoints in pixels, shape (K, 2).
        visible: Visibility flag of each point, shape (K,).
        center: Box centre (cx, cy).
        half: Half the box's width and height.
        image_size: (height, width) of the image, or None when unknown.
        box_field: The annotation field the box comes from, for messages.

    Returns:
        ``(field, problem)``: the field to name and what is wrong with it.

    Example:
        >>> pts = [[10.0, 10.0], [20.0, 20.0]]
        >>> face_geometry_problem(pts, [1, 1], (15, 15), (5, 5), (40, 40))
        >>> face_geometry_problem(pts, [1, 1], (15, 15), (5, 5), (12, 12))[0]
        'keypoints'
    """
    pts = np.asarray(points, dtype=np.float64).reshape(1, -1, 2)
    vis = np.asarray(visible, dtype=np.float64).reshape(1, -1)
    centre = np.asarray(center, dtype=np.float64).reshape(1, 2)
    half = np.asarray(half, dtype=np.float64).reshape(1, 2)
    size = np.full((1, 2), np.nan)
    if image_size is not None:
        size[0] = image_size[1], image_size[0]
    code, point, beyond = _geometry_codes(pts, vis, centre, half, size)
    if code[0] == _OK:
        return None
    return _geometry_message(
        code[0],
        point[0],
        beyond[0],
        pts[0],
        centre[0],
        half[0],
        size[0],
        box_field,
    )


# ------------------------------------------------------------- images
# EXIF orientations that swap width and height; MMPose's image loading
# (OpenCV) applies the EXIF orientation.
_TRANSPOSING = (5, 6, 7, 8)


class ImageFileError(ValueError):
    """Raised when an image file is missing, empty or unreadable."""


def image_file_size(path: str) -> Tuple[int, int]:
    """(height, width) of an image as MMPose decodes it, from its header.

    Reads the header only (and the file's last kilobyte for PNG and JPEG):
    a missing, empty, unreadable or truncated file is refused. The EXIF
    orientation is applied as OpenCV applies it when MMPose loads the
    image (orientations 5-8 swap width and height).

    Raises:
        ImageFileError: naming the file and what is wrong with it.
    """
    from PIL import Image

    try:
        file_size = os.stat(path).st_size
    except OSError as e:
        raise ImageFileError(f'image file not found: {path} ({e})') from e
    if file_size == 0:
        raise ImageFileError(f'image file is empty (0 bytes): {path}')
    try:
        with Image.open(path) as img:
            width, height = img.size
            fmt = img.format
            orientation = img.getexif().get(0x0112) if fmt == 'JPEG' else 1
    except Exception as e:  # PIL raises several types on broken files
        raise ImageFileError(
            f'image file is not a readable image (truncated or corrupt: '
            f'{type(e).__name__}: {e}): {path}'
        ) from e
    cut = truncation(path, fmt)
    if cut is not None:
        raise ImageFileError(
            f'image file is not a readable image (truncated or corrupt: '
            f'{cut}): {path}'
        )
    if orientation in _TRANSPOSING:
        width, height = height, width
    return height, width


_RECREATE = f're-create the file with the converter for its dataset ({DOC})'


def _load_json(ann_file: str) -> Tuple[object, bool]:
    """The file's JSON, and whether its text holds a JSON true/false."""
    with open(ann_file, 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise DataCheckError(
            f'{ann_file}: not UTF-8 text (byte {e.start}: '
            f'{raw[e.start : e.start + 4]!r}); MMPose reads annotation files '
            f'as UTF-8 JSON. Re-save it as UTF-8 (e.g. iconv -f latin1 -t '
            f'utf-8), or {_RECREATE}'
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataCheckError(
            f'{ann_file}: not valid JSON ({e}); {_RECREATE}'
        ) from e
    return data, _JSON_BOOL.search(text) is not None


# A JSON true/false as a value (a cheap test before the per-field one).
_JSON_BOOL = re.compile(r'[:\[,]\s*(?:true|false)\b')


def _hashable(value) -> bool:
    return isinstance(value, (int, float, str)) or value is None


def _first_bad_number(
    values, bools: bool = True
) -> Optional[Tuple[int, object]]:
    """(position, value) of the first non-numeric, non-finite or boolean
    entry of a flat list, or None when all are finite numbers.

    ``bools=False`` skips the search for booleans (the file has none)."""
    if bools and bool in set(map(type, values)):
        pos = next(i for i, v in enumerate(values) if isinstance(v, bool))
        earlier = _first_bad_number(values[:pos], bools=False)
        return earlier or (pos, values[pos])
    try:
        # Fast path: a sum is finite only if every term is (json.load turns
        # NaN/Infinity into floats); a string or None raises TypeError.
        if math.isfinite(sum(values)):
            return None
    except TypeError:
        pass
    for pos, value in enumerate(values):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return pos, value
    return None  # a finite sum that overflowed


def _bad_number_message(where, field, value, at) -> str:
    if isinstance(value, bool):
        return (
            f'{where}: field "{field}" holds the JSON boolean '
            f'{json.dumps(value)}{at} where a number is expected; MMPose '
            f'would read it as {int(value)}. Write the number, or '
            f'{_RECREATE}'
        )
    return (
        f'{where}: field "{field}" holds {value!r}{at}, not a finite '
        f'number; MMPose would train on it and the loss turns NaN. Fix '
        f'or drop the annotation, or {_RECREATE}'
    )


def _check_numbers(
    where: str, field: str, values, length: int, bools: bool = True
) -> None:
    """Raises unless ``values`` is ``length`` finite numbers (a scalar when
    ``length`` is 0)."""
    flat = [values] if length == 0 else values
    shape = 'a number' if length == 0 else f'a list of {length} numbers'
    if not isinstance(flat, list) or (length and len(flat) != length):
        raise DataCheckError(
            f'{where}: field "{field}" must be {shape}, got {values!r}; '
            f'fix the annotation or {_RECREATE}'
        )
    bad = _first_bad_number(flat, bools)
    if bad is not None:
        pos, value = bad
        at = f' at position {pos}' if length else ''
        raise DataCheckError(_bad_number_message(where, field, value, at))


def _check_keypoints(
    where: str, field: str, kpts, num_keypoints, source, bools: bool = True
) -> None:
    if not isinstance(kpts, list) or len(kpts) % 3:
        raise DataCheckError(
            f'{where}: field "{field}" must be a flat list '
            f'[x1, y1, v1, x2, y2, v2, ...] with 3 numbers per point'
        )
    if num_keypoints and len(kpts) // 3 != num_keypoints:
        raise DataCheckError(
            f'{where} has {len(kpts) // 3} keypoints, but the '
            f'{source} declares {num_keypoints}. Fix the annotation, or '
            f'give the dataset a metainfo=dict(from_file=...) for a '
            f'{len(kpts) // 3}-point layout.'
        )
    bad = _first_bad_number(kpts, bools)
    if bad is not None:
        pos, value = bad
        at = f' at position {pos} (point {pos // 3}, {"xyv"[pos % 3]})'
        raise DataCheckError(_bad_number_message(where, field, value, at))
    flags = kpts[2::3]
    if not set(flags) <= _VISIBILITY_SET:
        pos = next(i for i, v in enumerate(flags) if v not in _VISIBILITY_SET)
        raise DataCheckError(
            f'{where}: field "{field}" gives point {pos} the visibility '
            f'{flags[pos]!r} (position {3 * pos + 2}); MMPose and COCO use '
            f'0 (unlabelled), 1 (labelled, hidden) and 2 (visible); MMPose '
            f'would read min(1, v) = {min(1, flags[pos]):g} as its '
            f'visibility and weight. Set it to 0, '
            f'1 or 2, or {_RECREATE}'
        )


_VISIBILITY_SET = frozenset(VISIBILITY_VALUES)


def file_name_problem(name) -> Optional[str]:
    """Why ``name`` is not a usable image path below the image folder, or
    None: it must be a non-empty relative path that stays in the folder
    (no absolute path, drive letter or ``..``)."""
    if not isinstance(name, str) or not name.strip():
        return 'is not the path of an image below the image folder'
    parts = re.split(r'[\\/]', osp.normpath(name))
    if osp.isabs(name) or re.match(r'^[A-Za-z]:', name) or '..' in parts:
        return (
            'leaves the image folder (an absolute path or ".."); MMPose '
            'joins it to data_root and data_prefix, so the dataset would '
            'read a file outside its images'
        )
    return None


def _check_file_name(ann_file: str, i: int, img: dict) -> str:
    """The image's ``file_name``; refuses one that is not a path below the
    image folder."""
    name = img.get('file_name')
    problem = file_name_problem(name)
    if problem:
        raise DataCheckError(
            f'{ann_file}: image #{i} (id={img.get("id")!r}): field '
            f'"file_name" is {name!r}, which {problem}. Give the path '
            f'relative to the image folder (e.g. "0--Parade/a.jpg"), or '
            f'{_RECREATE}'
        )
    return name


def _recorded_size(ann_file: str, i: int, img: dict):
    """The image entry's (width, height), or None where it records none."""
    where = f'{ann_file}: image #{i} ({img.get("file_name")!r})'
    if 'width' not in img and 'height' not in img:
        return None
    size = []
    for field in ('width', 'height'):
        value = img.get(field)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value <= MAX_IMAGE_SIDE
            or value != int(value)
        ):
            raise DataCheckError(
                f'{where}: field "{field}" is {json.dumps(value)}, not a '
                f'whole number of pixels in 1..{MAX_IMAGE_SIDE:.0e}; write '
                f"the image's {field}, or {_RECREATE}"
            )
        size.append(int(value))
    return tuple(size)


def _check_image_file(where: str, path: str, recorded) -> Tuple[int, int]:
    """(width, height) of the image at ``path`` as MMPose decodes it;
    refuses a missing, empty, unreadable or truncated file and a size other
    than the ``recorded`` one."""
    try:
        height, width = image_file_size(path)
    except ImageFileError as e:
        raise DataCheckError(
            f'{where}: {e}. MMPose would fail on it mid-epoch. Restore the '
            f'file from the download (or drop its annotations), or '
            f'{_RECREATE}'
        ) from None
    if recorded is not None and tuple(recorded) != (width, height):
        raise DataCheckError(
            f'{where}: the annotation says {recorded[0]}x{recorded[1]} '
            f'(width x height) but {path} is {width}x{height} as MMPose '
            f'decodes it (EXIF orientation applied), so its keypoints may '
            f'belong to another image or version of it. Put the image the '
            f'annotation was made on in its place, or {_RECREATE}'
        )
    return width, height


def _image_index(
    ann_file: str, data: dict, img_dir: Optional[str], bools: bool
) -> Tuple[Dict[object, dict], Dict[object, Optional[Tuple[int, int]]]]:
    """The file's images by id and their (width, height) (None where
    unknown); refuses a missing list, repeated ids, names outside the image
    folder and, with ``img_dir``, missing, broken or mis-sized images."""
    images = data.get('images')
    if not isinstance(images, list):
        raise DataCheckError(
            f'{ann_file}: no "images" list; MMPose pairs each annotation '
            f'with its image through "images" ([{{"id", "file_name", '
            f'"height", "width"}}, ...]); {_RECREATE}'
        )
    by_id: Dict[object, dict] = {}
    sizes: Dict[object, Optional[Tuple[int, int]]] = {}
    first_index: Dict[object, int] = {}
    start = last = time.monotonic()
    for i, img in enumerate(images):
        if not isinstance(img, dict) or not _hashable(img.get('id')):
            raise DataCheckError(
                f'{ann_file}: image #{i} ({img!r:.80}) has no usable "id"; '
                f'every entry of "images" needs an id, a file_name, a '
                f'height and a width; {_RECREATE}'
            )
        img_id = img['id']
        if img_id in by_id:
            raise DataCheckError(
                f'{ann_file}: image #{i} ({img.get("file_name")!r}) has '
                f'the id {img_id!r} of image #{first_index[img_id]} '
                f'({by_id[img_id].get("file_name")!r}); MMPose would pair '
                f"one image's annotations with the other. Give every image "
                f"its own id (and point each annotation's image_id at it), "
                f'or {_RECREATE}'
            )
        name = _check_file_name(ann_file, i, img)
        size = _recorded_size(ann_file, i, img)
        if img_dir is not None:
            size = _check_image_file(
                f'{ann_file}: image #{i} ({name!r})',
                osp.join(img_dir, name),
                size,
            )
            now = time.monotonic()
            if now - last > _PROGRESS_EVERY:
                last = now
                print(
                    f'[data check] {ann_file}: {i + 1:,} of {len(images):,} '
                    f'image headers read ({now - start:.0f} s)',
                    file=sys.stderr,
                    flush=True,
                )
        by_id[img_id] = img
        sizes[img_id] = size
        first_index[img_id] = i
    return by_id, sizes


# Seconds between progress lines while image headers are read.
_PROGRESS_EVERY = 10.0
# Faces checked together by the vectorised geometry check.
_GEOMETRY_CHUNK = 4096


class _GeometryBatch:
    """Faces gathered for the vectorised geometry check; refuses the first
    face that breaks a rule, naming its record."""

    def __init__(self, fix: str) -> None:
        self.fix = fix
        self.rows: Dict[int, list] = {}

    def add(self, where, kpts, centre, half, size, box_field) -> None:
        row = (where, kpts, centre, half, size, box_field)
        rows = self.rows.setdefault(len(kpts), [])
        rows.append(row)
        if len(rows) >= _GEOMETRY_CHUNK:
            self.flush(len(kpts))

    def flush(self, length: Optional[int] = None) -> None:
        for key in [length] if length is not None else list(self.rows):
            rows = self.rows.pop(key, [])
            if rows:
                self._check(rows)

    def _check(self, rows) -> None:
        flat = np.array([r[1] for r in rows], dtype=np.float64)
        flat = flat.reshape(len(rows), -1, 3)
        pts, vis = flat[..., :2], flat[..., 2]
        centre = np.array([r[2] for r in rows], dtype=np.float64)
        half = np.array([r[3] for r in rows], dtype=np.float64)
        size = np.array(
            [r[4] if r[4] is not None else (np.nan, np.nan) for r in rows],
            dtype=np.float64,
        )
        with np.errstate(invalid='ignore', over='ignore'):
            code, point, beyond = _geometry_codes(pts, vis, centre, half, size)
        bad = np.flatnonzero(code != _OK)
        if bad.size:
            j = int(bad[0])
            field, problem = _geometry_message(
                code[j],
                point[j],
                beyond[j],
                pts[j],
                centre[j],
                half[j],
                size[j],
                rows[j][5],
            )
            raise DataCheckError(
                f'{rows[j][0]}: field "{field}" {problem}. {self.fix}'
            )


def check_annotation_file(
    ann_file: str,
    num_keypoints: Optional[int] = None,
    source: str = '',
    reader: Sequence[str] = (),
    require_visible: Optional[str] = None,
    img_dir: Optional[str] = None,
) -> None:
    """Raises if a COCO-style face annotation file would load wrongly.

    Reads the file once and refuses, naming the file, the record (index,
    id, image file name) and the field: invalid JSON or text that is not
    UTF-8, a missing ``images`` or empty ``annotations`` list, repeated
    image or annotation ids, a ``file_name`` outside the image folder, an
    annotation without ``image_id`` or whose image is not listed, a
    keypoint list of the wrong shape or count, a NaN, infinite, boolean or
    non-numeric keypoint, ``bbox``, ``center``, ``scale``, ``width`` or
    ``height``, a visibility flag other than 0, 1 or 2, a missing
    ``center``/``scale`` where the dataset reads them, a face box or
    keypoint out of bounds (:func:`face_geometry_problem`: keypoints more
    than ``KEYPOINT_OUTSIDE_TOLERANCE`` box sides outside the face box or
    the image) and (with ``require_visible``) a face without any visible
    point. With ``img_dir`` it also reads the header of every listed image
    and refuses a missing, empty, unreadable or truncated file and a size
    other than the recorded ``width``/``height``.

    Args:
        ann_file: Path of the JSON annotation file.
        num_keypoints: The count the dataset's metainfo declares; None
            skips the count.
        source: Where that count comes from, for the message.
        reader: Names of the dataset class and its bases; decides which
            fields the dataset reads (see ``CENTRE_SCALE_DATASETS``).
        require_visible: What needs a visible point on every face (e.g.
            pose balancing of the train split), for the message; None
            allows faces without one.
        img_dir: The image folder the ``file_name``s are relative to;
            None skips reading the images.
    """
    data, bools = _load_json(ann_file)
    anns = data.get('annotations') if isinstance(data, dict) else None
    if not isinstance(anns, list):
        raise DataCheckError(
            f'{ann_file}: no "annotations" list; MMPose expects a '
            f'COCO-style file with "images", "annotations" and '
            f'"categories" ({DOC})'
        )
    images, sizes = _image_index(ann_file, data, img_dir, bools)
    if not anns:
        raise DataCheckError(
            f'{ann_file}: the "annotations" list is empty, so the dataset '
            f'has no face to train or evaluate on; {_RECREATE}'
        )
    wholebody = WHOLEBODY_FACE_DATASET in reader
    kpt_field = 'face_kpts' if wholebody else 'keypoints'
    box_fields = ('face_box',) if wholebody else ('bbox',)
    centre_scale = any(name in CENTRE_SCALE_DATASETS for name in reader)
    reader_name = reader[0] if reader else 'the dataset'
    geometry = _GeometryBatch(
        'MMPose would train (or score the test NME) on it. Fix or drop '
        f'the annotation, or {_RECREATE}'
    )
    ann_index: Dict[object, int] = {}
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise DataCheckError(
                f'{ann_file}: annotation #{i} is {ann!r:.80}, not an object '
                f'of "id", "image_id", "keypoints", ...; {_RECREATE}'
            )
        ann_id, img_id = ann.get('id'), ann.get('image_id')
        image = images.get(img_id) if _hashable(img_id) else None
        where = (
            f'{ann_file}: annotation #{i} (id={ann_id}, image '
            f'{(image or {}).get("file_name")!r})'
        )
        if 'image_id' not in ann:
            raise DataCheckError(
                f'{where}: no field "image_id"; MMPose finds the image of '
                f'an annotation through it. Add the id of its entry in '
                f'"images", or {_RECREATE}'
            )
        if image is None:
            raise DataCheckError(
                f'{where}: field "image_id" is {img_id!r}, which no entry '
                f'of "images" has, so MMPose would silently drop the face. '
                f'Add its image to "images" or fix the image_id, or '
                f'{_RECREATE}'
            )
        if not _hashable(ann_id):
            raise DataCheckError(
                f'{where}: no usable field "id"; every annotation needs its '
                f'own id; {_RECREATE}'
            )
        if ann_id in ann_index:
            raise DataCheckError(
                f'{where}: field "id" repeats the id of annotation '
                f'#{ann_index[ann_id]}; MMPose keys annotations by id, so '
                f'one would silently replace the other. Give every '
                f'annotation its own id, or {_RECREATE}'
            )
        ann_index[ann_id] = i
        if wholebody and not ann.get('face_valid', True):
            continue  # MMPose skips invalid faces without reading them
        kpts = ann.get(kpt_field)
        _check_keypoints(where, kpt_field, kpts, num_keypoints, source, bools)
        if wholebody and max(kpts, default=0) <= 0:
            continue  # an unlabelled face, skipped by MMPose too
        for field in box_fields:
            if field in ann:
                _check_numbers(where, field, ann[field], 4, bools)
        if centre_scale:
            for field in ('center', 'scale'):
                if field not in ann:
                    raise DataCheckError(
                        f'{where}: no field "{field}"; {reader_name} builds '
                        f'the face box from "center" ([cx, cy]) and '
                        f'"scale" (box side / 200). Add both, or '
                        f'{_RECREATE}'
                    )
        if 'center' in ann:
            _check_numbers(where, 'center', ann['center'], 2, bools)
        if 'scale' in ann:
            _check_numbers(where, 'scale', ann['scale'], 0, bools)
            if centre_scale and ann['scale'] <= 0:
                raise DataCheckError(
                    f'{where}: field "scale" is {ann["scale"]!r}; the face '
                    f'box side / 200 must be positive. Fix the annotation, '
                    f'or {_RECREATE}'
                )
        if require_visible and max(kpts[2::3], default=0) <= 0:
            raise DataCheckError(
                f'{where}: no visible point (every visibility flag v of '
                f'field "{kpt_field}" is 0), but the {require_visible} '
                f'aligns each training face by its visible points. Set v to '
                f'1 or 2 for its labelled points, or drop the annotation '
                f'from the train file.'
            )
        if centre_scale:
            half = ann['scale'] * PIXEL_STD / 2
            geometry.add(
                where,
                kpts,
                ann['center'],
                (half, half),
                sizes[img_id],
                'scale',
            )
        elif box_fields[0] in ann:
            x, y, w, h = ann[box_fields[0]]
            geometry.add(
                where,
                kpts,
                (x + w / 2, y + h / 2),
                (w / 2, h / 2),
                sizes[img_id],
                box_fields[0],
            )
    geometry.flush()


def check_keypoint_counts(
    ann_file: str, num_keypoints: int, source: str
) -> None:
    """Raises if any annotation of a COCO-style file has another count.

    Runs :func:`check_annotation_file` with the dataset-independent checks.

    Args:
        ann_file: Path of the JSON annotation file.
        num_keypoints: The count the dataset's metainfo declares.
        source: Where that count comes from, for the message.
    """
    check_annotation_file(ann_file, num_keypoints, source)


def check_data_files(cfg, splits=('train', 'val', 'test')) -> None:
    """Checks that every dataset of ``cfg`` in ``splits`` has its data.

    Args:
        cfg (mmengine.Config): A full run config.
        splits: Which dataloaders to check.

    Raises:
        DataCheckError: naming the expected files and how to prepare them,
            or the file, annotation and field that would load wrongly
            (:func:`check_annotation_file`, which also reads the header
            of every listed image in the dataset's image folder). Train
            files must give every face a visible point when the config
            balances poses.
    """
    problems: List[str] = []
    hints = set()
    to_check: Dict[Tuple[str, Optional[str]], dict] = {}
    balancing = pose_balancing_users(cfg)
    needs_visible = set()
    for split, ds in _dataset_cfgs(cfg):
        if split not in splits:
            continue
        ann, img = expected_files(ds)
        missing = []
        if ann and not osp.isfile(ann):
            missing.append(f'  {ann}  (annotation file)')
        if img is not None and _missing_or_empty(img):
            missing.append(f'  {img}  (image folder, missing or empty)')
        if missing:
            problems.append(
                f'{split} data of {ds.get("type")}:\n' + '\n'.join(missing)
            )
            hints.add(PREPARATION.get(ds.get('type'), ''))
        elif ann:
            to_check.setdefault((ann, img), ds)
            if split == 'train' and balancing:
                needs_visible.add(ann)
    if problems:
        steps = '\n'.join(f'  - {h}' for h in sorted(hints) if h)
        raise DataCheckError(
            'Expected data files are missing:\n'
            + '\n'.join(problems)
            + f'\nPrepare the data as described in {DOC}'
            + (f':\n{steps}' if steps else '.')
            + f'\n{FIXTURE_HINT}'
        )
    # val and test often share a file: read each file once.
    for (ann, img), ds in to_check.items():
        count, source = _metainfo_keypoints(ds)
        check_annotation_file(
            ann,
            count,
            source,
            reader=_reader_names(ds),
            require_visible=balancing if ann in needs_visible else None,
            img_dir=img,
        )
