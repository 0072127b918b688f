"""AFLW-19: ``AFLWinfo_release.mat`` to MMPose's JSON.

The release (Zhu et al., CVPR 2016) holds, for N = 24,386 faces:
``nameList`` (image paths), ``data`` (N, 38: the 19 x then the 19 y),
``bbox`` (N, 4: x1 x2 y1 y2), ``mask_new`` (N, 19: 1 where the point is
visible; the coordinates of hidden points are annotated too) and ``ra``
(a 1-based permutation of the faces: the first 20,000 are the training set,
the remaining 4,386 the test set, "AFLW-Full").

Conventions written into the JSON (docs/data_preparation.md):

- box: the released box; ``box_size`` = √(w·h), and the crop box MMPose
  builds from ``center``/``scale`` is the square of that side, so
  :class:`~mmaniso.evaluation.FaceLandmarkMetric` with ``norm='bbox'``
  normalises by √(w·h) (AWing's definition);
- frontal: a test face whose 19 points are all visible (``mask_new`` all 1),
  the definition of LAB and HRNet (1,314 faces in HRNet's release);
- every point is labelled (``v`` = 2 visible, 1 hidden) so that all 19
  points are trained and evaluated, as in the published protocol.
"""

import os.path as osp
from typing import Dict, List

import numpy as np

from mmaniso.datasets.layouts import LAYOUTS

from .coco import (
    Face,
    read_image_sizes,
    refuse_existing,
    require_dir,
    require_file,
    write_coco_files,
)

_LAYOUT = LAYOUTS['aflw']
NUM_KEYPOINTS = _LAYOUT.num_keypoints
NUM_TRAIN = 20000
# HRNet's and LAB's frontal count; some papers report 1,165.
STANDARD_SIZES = dict(train=20000, test=4386, test_frontal=1314)
# Folders the release's names may be relative to, below the image root.
NAME_PREFIXES = ('', 'flickr/')


def _as_str(value) -> str:
    """A MATLAB string as loadmat returns it (possibly in nested arrays)."""
    while isinstance(value, np.ndarray):
        if value.size != 1 and value.dtype.kind not in 'US':
            raise ValueError(f'not a string: {value!r}')
        if value.dtype.kind in 'US':
            return ''.join(str(v) for v in value.ravel())
        value = value.ravel()[0]
    return str(value)


def load_aflw_mat(path: str) -> Dict[str, np.ndarray]:
    """The checked fields of ``AFLWinfo_release.mat``.

    Returns:
        ``names`` (N,) str, ``points`` (N, 19, 2), ``boxes`` (N, 4) as
        x1 x2 y1 y2, ``visible`` (N, 19) and ``order`` (N,) 0-based.

    Raises:
        ValueError: naming the file, and the record (1-based row) and field
            of a NaN or infinite value, or what else is malformed.
    """
    from scipy.io import loadmat

    require_file(
        path,
        'AFLW annotation file',
        'AFLWinfo_release.mat, the 19-point release of Zhu et al. (CVPR 2016)',
    )
    try:
        mat = loadmat(path)
    except Exception as e:  # scipy raises several types on bad files
        raise ValueError(f'{path}: not a readable .mat file ({e})') from e
    missing = [
        k
        for k in ('nameList', 'data', 'bbox', 'mask_new', 'ra')
        if k not in mat
    ]
    if missing:
        raise ValueError(f'{path}: missing fields {missing}')
    names = [_as_str(v) for v in np.asarray(mat['nameList']).ravel()]
    n = len(names)
    shapes = dict(
        data=(n, 2 * NUM_KEYPOINTS),
        bbox=(n, 4),
        mask_new=(n, NUM_KEYPOINTS),
    )
    for key, shape in shapes.items():
        if np.shape(mat[key]) != shape:
            raise ValueError(
                f'{path}: field {key!r} has shape {np.shape(mat[key])}, '
                f'expected {shape} for {n} names'
            )
    arrays = {}
    for key in shapes:
        try:
            arrays[key] = np.asarray(mat[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f'{path}: field {key!r} is not numeric '
                f'({np.asarray(mat[key]).dtype})'
            ) from None
        finite = np.isfinite(arrays[key])
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise ValueError(
                f'{path}: record {row + 1} ({names[row]!r}), field {key!r} '
                f'column {col + 1}: {arrays[key][row, col]} is not a finite '
                f'number; fix that record of the release'
            )
    mask = arrays['mask_new']
    if not np.isin(mask, (0, 1)).all():
        row, col = np.argwhere(~np.isin(mask, (0, 1)))[0]
        raise ValueError(
            f"{path}: record {row + 1} ({names[row]!r}), field 'mask_new' "
            f'column {col + 1}: {mask[row, col]:g} is not a visibility flag; '
            f'the release marks each point 1 (visible) or 0 (hidden). Fix '
            f'that record of the release'
        )
    data = arrays['data']
    order = np.asarray(mat['ra']).ravel()
    if sorted(order.astype(np.int64).tolist()) != list(range(1, n + 1)):
        raise ValueError(
            f"{path}: field 'ra' must be a permutation of 1..{n} (MATLAB "
            f'indices), got {order.size} values'
        )
    points = np.stack(
        [data[:, :NUM_KEYPOINTS], data[:, NUM_KEYPOINTS:]], -1
    )  # (N, 19, 2)
    return dict(
        names=np.array(names, dtype=object),
        points=points,
        boxes=arrays['bbox'],
        visible=arrays['mask_new'].astype(np.int64),
        order=order.astype(np.int64) - 1,
    )


def _face(name: str, points, box, visible, where: str) -> Face:
    x1, x2, y1, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if not np.isfinite([x1, x2, y1, y2]).all():
        # A NaN side would pass the empty-box test below.
        raise ValueError(
            f"{where}: field 'bbox' is not finite: x1={x1:g} x2={x2:g} "
            f'y1={y1:g} y2={y2:g}'
        )
    if w <= 0 or h <= 0:
        raise ValueError(
            f'{where}: empty box x1={x1:g} x2={x2:g} y1={y1:g} y2={y2:g}'
        )
    if not np.isfinite(points).all():
        raise ValueError(f"{where}: field 'data' has non-finite landmarks")
    size = float(np.sqrt(w * h))
    return Face(
        file_name=name,
        keypoints=points,
        bbox=[x1, y1, w, h],
        center=[(x1 + x2) / 2, (y1 + y2) / 2],
        scale=size / 200.0,
        attributes=dict(frontal=int(np.all(visible > 0))),
        visible=[int(v > 0) for v in visible],
        extra=dict(box_size=size),
        source=where,
    )


def _name_prefix(img_dir: str, first: str) -> str:
    for prefix in NAME_PREFIXES:
        if osp.isfile(osp.join(img_dir, prefix + first)):
            return prefix
    tried = ', '.join(osp.join(img_dir, p + first) for p in NAME_PREFIXES)
    raise FileNotFoundError(
        f'AFLW image not found: looked for {tried}; unpack the AFLW images '
        f'(flickr/0, 2, 3) into {img_dir}'
    )


def convert_aflw(
    mat_file: str,
    img_dir: str,
    out_dir: str,
    num_train: int = NUM_TRAIN,
    overwrite: bool = False,
) -> Dict[str, str]:
    """Writes ``face_landmarks_aflw_{train,test,test_frontal}.json``.

    Args:
        mat_file: Path of ``AFLWinfo_release.mat``.
        img_dir: MMPose's ``<data_root>/images`` (holding ``flickr/``); the
            release's names are taken relative to it, or to its
            ``flickr/`` folder when that is where the images are.
        out_dir: Where the JSON files go.
        num_train: Faces of the training set: the first ``num_train`` of the
            release's permutation ``ra``.
        overwrite: Replace existing output files; without it an existing
            one stops the conversion before anything is read.

    Returns:
        The path written for each split.

    Raises:
        FileExistsError: If an output file exists and not ``overwrite``.
    """
    out = {
        name: osp.join(out_dir, _LAYOUT.ann_file.format(split=name))
        for name in STANDARD_SIZES
    }
    refuse_existing(out.values(), overwrite)
    release = load_aflw_mat(mat_file)
    require_dir(img_dir, 'AFLW image folder')
    n = len(release['names'])
    if not 0 < num_train < n:
        raise ValueError(
            f'num_train must be in [1, {n - 1}] for {n} faces, got {num_train}'
        )
    prefix = _name_prefix(img_dir, release['names'][0])
    faces: List[Face] = []
    for i in range(n):
        faces.append(
            _face(
                prefix + release['names'][i],
                release['points'][i],
                release['boxes'][i],
                release['visible'][i],
                f'{mat_file}: record {i + 1} ({release["names"][i]!r})',
            )
        )
    order = release['order']
    splits = dict(
        train=[faces[i] for i in order[:num_train]],
        test=[faces[i] for i in order[num_train:]],
    )
    for split in splits.values():
        for k, face in enumerate(split, 1):
            face.ann_id = k
    splits['test_frontal'] = [
        f for f in splits['test'] if f.attributes['frontal']
    ]
    sizes = read_image_sizes(
        img_dir, (f.file_name for f in faces), 'AFLW images'
    )
    return write_coco_files(
        {name: (split, out[name]) for name, split in splits.items()},
        sizes,
        overwrite=overwrite,
    )
