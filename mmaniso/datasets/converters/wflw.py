"""WFLW: ``list_98pt_rect_attr_{train,test}.txt`` to MMPose's JSON.

Each line of the official lists holds 207 fields: 196 landmark coordinates
``x0 y0 ... x97 y97``, the face rectangle ``x_min y_min x_max y_max``, six
0/1 attribute flags (pose, expression, illumination, make-up, occlusion,
blur) and the image path relative to ``WFLW_images``.
"""

import os.path as osp
from typing import Dict, List

import numpy as np

from mmaniso.datasets.layouts import LAYOUTS

from .coco import (
    Face,
    landmark_box,
    read_image_sizes,
    read_text,
    refuse_existing,
    require_dir,
    require_file,
    write_coco_files,
)

_LAYOUT = LAYOUTS['wflw']
NUM_KEYPOINTS = _LAYOUT.num_keypoints
# Subset names of MMPose's file layout, in the order of the flags.
ATTRIBUTES = _LAYOUT.subset_flags
NUM_FIELDS = 2 * NUM_KEYPOINTS + 4 + len(ATTRIBUTES) + 1  # 207
LIST_NAME = 'list_98pt_rect_attr_{split}.txt'
DEFAULT_LIST_DIR = 'WFLW_annotations/list_98pt_rect_attr_train_test'
# Faces per output file in the official release.
STANDARD_SIZES = dict(
    train=7500,
    test=2500,
    test_largepose=326,
    test_expression=314,
    test_illumination=698,
    test_makeup=206,
    test_occlusion=736,
    test_blur=773,
)


def parse_wflw_line(line: str, where: str) -> Face:
    """One face from one line of a WFLW list.

    Args:
        line: The line's text.
        where: ``path:line_number`` for error messages.

    Example:
        >>> line = ' '.join(['1.5'] * 196 + ['0', '0', '9', '9'] +
        ...                 ['1', '0', '0', '0', '0', '0', 'a/b.jpg'])
        >>> face = parse_wflw_line(line, 'list.txt:1')
        >>> face.file_name, face.attributes['largepose'], face.bbox
        ('a/b.jpg', 1, [0.0, 0.0, 9.0, 9.0])
    """
    fields = line.split()
    if len(fields) != NUM_FIELDS:
        raise ValueError(
            f'{where}: expected {NUM_FIELDS} fields, got {len(fields)} '
            f'(196 coordinates, 4 box values, 6 attribute flags and the '
            f'image path)'
        )
    try:
        numbers = np.array(fields[:-1], dtype=np.float64)
    except ValueError:
        bad = next(i for i, f in enumerate(fields[:-1]) if not _is_num(f))
        raise ValueError(
            f'{where}: field {bad + 1} {fields[bad]!r} is not a number'
        ) from None
    finite = np.isfinite(numbers)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ValueError(
            f'{where}: field {bad + 1} {fields[bad]!r} ({_field_name(bad)}) '
            'is not a finite number; fix it in the list'
        )
    points = numbers[: 2 * NUM_KEYPOINTS].reshape(NUM_KEYPOINTS, 2)
    x0, y0, x1, y1 = numbers[2 * NUM_KEYPOINTS : 2 * NUM_KEYPOINTS + 4]
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f'{where}: empty face rectangle x_min={x0:g} y_min={y0:g} '
            f'x_max={x1:g} y_max={y1:g}'
        )
    flags = numbers[2 * NUM_KEYPOINTS + 4 :]
    if not np.isin(flags, (0, 1)).all():
        raise ValueError(
            f'{where}: attribute flags must be 0 or 1, got '
            f'{" ".join(f"{v:g}" for v in flags)}'
        )
    _, centre, scale = landmark_box(points)
    return Face(
        file_name=fields[-1],
        keypoints=points,
        bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        center=centre,
        scale=scale,
        attributes={a: int(v) for a, v in zip(ATTRIBUTES, flags)},
        source=where,
    )


def _field_name(index: int) -> str:
    """What the 0-based numeric field ``index`` of a WFLW line holds."""
    if index < 2 * NUM_KEYPOINTS:
        return f'{"xy"[index % 2]} of point {index // 2}'
    index -= 2 * NUM_KEYPOINTS
    if index < 4:
        return ('x_min', 'y_min', 'x_max', 'y_max')[index] + ' of the box'
    return f'flag {ATTRIBUTES[index - 4]}'


def _is_num(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_wflw_list(path: str) -> List[Face]:
    """All faces of a ``list_98pt_rect_attr_*.txt`` file, ids from 1."""
    from tqdm import tqdm

    require_file(path, 'WFLW landmark list')
    name = osp.basename(path)
    faces = []
    lines = read_text(path, 'WFLW landmark list').splitlines()
    for lineno, line in enumerate(tqdm(lines, desc=name, unit='face'), 1):
        if not line.strip():
            continue
        face = parse_wflw_line(line, f'{path}:{lineno}')
        face.ann_id = len(faces) + 1
        faces.append(face)
    if not faces:
        raise ValueError(f'{path}: no faces in the file')
    return faces


def convert_wflw(
    list_dir: str, img_dir: str, out_dir: str, overwrite: bool = False
) -> Dict[str, str]:
    """Writes MMPose's WFLW annotation files.

    ``face_landmarks_wflw_{train,test}.json`` and one
    ``face_landmarks_wflw_test_<attribute>.json`` per attribute; every test
    annotation carries its six flags as ``attributes`` and keeps its id in
    the subset files.

    Args:
        list_dir: Folder of ``list_98pt_rect_attr_{train,test}.txt``.
        img_dir: The unpacked ``WFLW_images`` folder (MMPose's
            ``<data_root>/images``); file names are relative to it.
        out_dir: Where the JSON files go.
        overwrite: Replace existing output files; without it an existing
            one stops the conversion before anything is read.

    Returns:
        The path written for each split and subset.

    Raises:
        FileExistsError: If an output file exists and not ``overwrite``.
    """
    names = ['train', 'test'] + [f'test_{attr}' for attr in ATTRIBUTES]
    out = {
        name: osp.join(out_dir, _LAYOUT.ann_file.format(split=name))
        for name in names
    }
    refuse_existing(out.values(), overwrite)
    require_dir(
        list_dir,
        'WFLW annotation folder',
        'unpack WFLW_annotations.tar.gz; it holds '
        'list_98pt_rect_attr_train_test/',
    )
    require_dir(
        img_dir,
        'WFLW image folder',
        'unpack WFLW_images.tar.gz and rename WFLW_images to images',
    )
    # Both lists are read and checked before anything is written, so that a
    # bad test line leaves no train file behind.
    faces, sizes = {}, {}
    for split in ('train', 'test'):
        faces[split] = read_wflw_list(
            osp.join(list_dir, LIST_NAME.format(split=split))
        )
        sizes.update(
            read_image_sizes(
                img_dir,
                (f.file_name for f in faces[split]),
                f'WFLW {split} images',
            )
        )
    splits = dict(faces)
    for attr in ATTRIBUTES:
        splits[f'test_{attr}'] = [
            f for f in faces['test'] if f.attributes[attr]
        ]
    return write_coco_files(
        {name: (split, out[name]) for name, split in splits.items()},
        sizes,
        overwrite=overwrite,
    )
