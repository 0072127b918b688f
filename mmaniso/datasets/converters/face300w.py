"""300W: the iBUG ``.pts`` folders to MMPose's JSON.

A ``.pts`` file lies beside each image::

    version: 1
    n_points:  68
    {
    446.000 91.000
    ...
    }

Coordinates are kept as written, with no shift (the iBUG files count
pixels from 1, as Matlab does; MMPose's converters copy coordinates
unchanged too). ``zero_based=True`` subtracts 1 for a 0-based convention.
"""

import math
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np

from mmaniso.datasets.layouts import LAYOUTS

from .coco import (
    # The shared helpers each converter imports: a list, not logic.
    Face,
    landmark_box,
    read_image_sizes,
    read_text,
    refuse_existing,
    require_dir,
    write_coco_files,
)

_LAYOUT = LAYOUTS['300w']
NUM_KEYPOINTS = _LAYOUT.num_keypoints
IMAGE_EXTS = ('.jpg', '.png', '.jpeg', '.JPG', '.PNG', '.JPEG')
# Source folders of each split, relative to the image root (MMPose's layout;
# the private set's folder is given separately).
TRAIN = ('lfpw/trainset', 'helen/trainset', 'afw')
COMMON = ('lfpw/testset', 'helen/testset')
CHALLENGING = ('ibug',)
PRIVATE = ('01_Indoor', '02_Outdoor')
STANDARD_SIZES = dict(
    train=3148, valid=689, valid_common=554, valid_challenge=135, test=600
)


def read_pts(path: str, num_points: int = NUM_KEYPOINTS) -> np.ndarray:
    """The points of an iBUG ``.pts`` file, shape (n_points, 2).

    Raises:
        ValueError: naming ``path:line`` of a malformed line or a NaN or
            infinite coordinate, or a point count other than ``num_points``.
    """
    lines = read_text(path, 'iBUG .pts file').splitlines()
    declared = None
    points: List[Tuple[float, float]] = []
    state = 'header'
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        where = f'{path}:{lineno}'
        if not line:
            continue
        if state == 'header':
            if line == '{':
                state = 'points'
            elif line.startswith('n_points'):
                value = line.split(':', 1)[-1].strip()
                if not value.isdigit():
                    raise ValueError(f'{where}: bad n_points line {raw!r}')
                declared = int(value)
            elif not line.startswith('version'):
                raise ValueError(
                    f'{where}: expected "version:", "n_points:" or "{{", '
                    f'got {raw!r}'
                )
        elif state == 'points':
            if line == '}':
                state = 'done'
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError
                x, y = float(parts[0]), float(parts[1])
            except ValueError:
                raise ValueError(
                    f'{where}: expected a point "x y", got {raw!r}'
                ) from None
            # float() accepts 'nan' and 'inf'; MMPose would train on them.
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(
                    f'{where}: point {len(points) + 1} is not finite '
                    f'({raw!r}); fix its coordinates'
                )
            points.append((x, y))
        else:
            raise ValueError(f'{where}: text after the closing "}}": {raw!r}')
    if state != 'done':
        raise ValueError(
            f'{path}:{lineno}: unexpected end of file (no '
            f'{"opening {" if state == "header" else "closing }"})'
        )
    if declared is None:
        raise ValueError(f'{path}: no n_points line')
    if len(points) != declared:
        raise ValueError(
            f'{path}: n_points says {declared} but {len(points)} points follow'
        )
    if declared != num_points:
        raise ValueError(
            f'{path}: expected {num_points} points, the file has {declared}'
        )
    return np.array(points, dtype=np.float64)


def _find_image(pts_path: str) -> str:
    stem = osp.splitext(pts_path)[0]
    for ext in IMAGE_EXTS:
        if osp.isfile(stem + ext):
            return stem + ext
    raise FileNotFoundError(
        f'no image beside {pts_path} (looked for {stem}'
        f'{{{",".join(IMAGE_EXTS)}}})'
    )


def read_pts_folder(
    img_root: str, folder: str, zero_based: bool = False
) -> List[Face]:
    """The faces of one source folder, sorted by file name.

    Args:
        img_root: The image root; file names are relative to it.
        folder: The folder below ``img_root`` (e.g. ``'helen/trainset'``).
        zero_based: Subtract 1 from the 1-based iBUG coordinates.
    """
    from tqdm import tqdm

    path = require_dir(
        osp.join(img_root, folder),
        f'300W folder {folder}',
        'download it from https://ibug.doc.ic.ac.uk/resources/300-W/ and '
        'unpack the images with their .pts files there',
    )
    names = sorted(n for n in os.listdir(path) if n.endswith('.pts'))
    if not names:
        raise FileNotFoundError(f'no .pts files in {path}')
    faces = []
    for name in tqdm(names, desc=folder, unit='face'):
        pts_path = osp.join(path, name)
        points = read_pts(pts_path)
        if zero_based:
            points = points - 1.0
        image = _find_image(pts_path)
        bbox, centre, scale = landmark_box(points)
        faces.append(
            Face(
                file_name=osp.relpath(image, img_root).replace(os.sep, '/'),
                keypoints=points,
                bbox=bbox,
                center=centre,
                scale=scale,
                source=pts_path,
            )
        )
    return faces


def _collect(
    img_root: str, folders: Sequence[str], zero_based: bool
) -> List[Face]:
    faces = []
    for folder in folders:
        faces.extend(read_pts_folder(img_root, folder, zero_based))
    return faces


def _number(faces: List[Face]) -> List[Face]:
    for i, face in enumerate(faces, 1):
        face.ann_id = i
    return faces


# Its docstring's overwrite, Returns and Raises read as convert_aflw's.
def convert_300w(
    img_root: str,
    out_dir: str,
    private_dir: str = 'Test',
    with_private: bool = True,
    zero_based: bool = False,
    overwrite: bool = False,
) -> Dict[str, str]:
    """Writes MMPose's 300W annotation files.

    - ``train``: LFPW train + HELEN train + AFW (3,148 faces);
    - ``valid``: the full test set, ``valid_common`` (LFPW test + HELEN
      test, 554) + ``valid_challenge`` (iBUG, 135) = 689; its annotations
      carry ``attributes`` ``common``/``challenging`` and the two subset
      files keep its ids;
    - ``test``: the private 300W set (300 indoor + 300 outdoor), flagged
      ``indoor``/``outdoor``.

    Args:
        img_root: MMPose's ``<data_root>/images`` holding ``afw``,
            ``helen``, ``lfpw``, ``ibug`` and the private set.
        out_dir: Where the JSON files go.
        private_dir: Folder of ``01_Indoor`` and ``02_Outdoor`` below
            ``img_root`` (``Test`` in MMPose's layout; the download unpacks
            as ``300W``).
        with_private: Also write ``face_landmarks_300w_test.json``.
        zero_based: Subtract 1 from every coordinate.
        overwrite: Replace existing output files; without it an existing
            one stops the conversion before anything is read.

    Returns:
        The path written for each split.

    Raises:
        FileExistsError: If an output file exists and not ``overwrite``.
    """
    names = ['train', 'valid', 'valid_common', 'valid_challenge']
    names += ['test'] if with_private else []
    out = {
        name: osp.join(out_dir, _LAYOUT.ann_file.format(split=name))
        for name in names
    }
    refuse_existing(out.values(), overwrite)
    require_dir(img_root, '300W image root')
    splits: Dict[str, List[Face]] = {}
    splits['train'] = _number(_collect(img_root, TRAIN, zero_based))
    common = _collect(img_root, COMMON, zero_based)
    challenging = _collect(img_root, CHALLENGING, zero_based)
    for face in common:
        face.attributes = dict(common=1, challenging=0)
    for face in challenging:
        face.attributes = dict(common=0, challenging=1)
    splits['valid'] = _number(common + challenging)
    splits['valid_common'] = common
    splits['valid_challenge'] = challenging
    if with_private:
        private = []
        for folder, flag in zip(PRIVATE, ('indoor', 'outdoor')):
            faces = read_pts_folder(
                img_root, f'{private_dir}/{folder}', zero_based
            )
            for face in faces:
                face.attributes = dict(indoor=0, outdoor=0)
                face.attributes[flag] = 1
            private.extend(faces)
        splits['test'] = _number(private)

    everything = [
        f for name in ('train', 'valid', 'test') for f in splits.get(name, [])
    ]
    sizes = read_image_sizes(
        img_root, (f.file_name for f in everything), '300W images'
    )
    return write_coco_files(
        {name: (faces, out[name]) for name, faces in splits.items()},
        sizes,
        overwrite=overwrite,
    )
