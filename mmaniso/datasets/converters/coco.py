"""MMPose's COCO-style face annotation files, written from parsed faces.

Each converter parses its official format into :class:`Face` records; this
module turns them into the JSON that MMPose's ``WFLWDataset``,
``Face300WDataset`` and ``AFLWDataset`` read: ``images`` (``id``,
``file_name``, ``height``, ``width``), ``annotations`` (``id``,
``image_id``, ``category_id``, flat ``keypoints`` ``[x, y, v] * K``,
``num_keypoints``, ``bbox`` ``[x, y, w, h]``, ``center``, ``scale`` (box
side / 200), ``iscrowd``, ``area`` and, where known, ``attributes`` and
``box_size``) and ``categories``.
"""

import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

# MMPose's face datasets store the box side divided by this (``scale``).
PIXEL_STD = 200.0
CATEGORIES = [dict(id=1, name='face', supercategory='face')]


@dataclass
class Face:
    """One annotated face of an image.

    Attributes:
        file_name: Image path relative to the image folder.
        keypoints: Landmarks in pixels, shape (K, 2).
        bbox: Face box as [x, y, w, h].
        center: Centre of the crop box, (cx, cy).
        scale: Side of the square crop box divided by 200.
        attributes: 0/1 flags that define subsets (WFLW attributes, 300W
            common/challenging, AFLW frontal).
        visible: Per-point 0/1 flag (``v`` is 2 where 1, else 1: the
            coordinates of every point are annotated).
        extra: Further annotation fields (e.g. AFLW's ``box_size``).
        ann_id: Annotation id; kept when the face is written to several
            files so that subsets join on it.
        source: Where the face was read (``path:line``, or the file and
            record), for error messages.
    """

    file_name: str
    keypoints: np.ndarray
    bbox: Sequence[float]
    center: Sequence[float]
    scale: float
    attributes: Dict[str, int] = field(default_factory=dict)
    visible: Optional[Sequence[int]] = None
    extra: Dict[str, float] = field(default_factory=dict)
    ann_id: Optional[int] = None
    source: str = ''


def landmark_box(points: np.ndarray) -> Tuple[List[float], List[float], float]:
    """Box, centre and scale of the landmarks' extent (MMPose's WFLW/300W
    convention: the crop is centred on the landmarks, side = max(w, h)).

    Returns:
        ``([x, y, w, h], [cx, cy], max(w, h) / 200)``.
    """
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    w, h = float(x1 - x0), float(y1 - y0)
    centre = [float(x0 + x1) / 2, float(y0 + y1) / 2]
    return [float(x0), float(y0), w, h], centre, max(w, h) / PIXEL_STD


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) of an image, read from its header only."""
    from PIL import Image

    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    try:
        with Image.open(path) as img:
            width, height = img.size
    except OSError as e:
        raise ValueError(f'{path}: not a readable image ({e})') from e
    return height, width


def _check_finite(face: Face) -> None:
    """Raises ValueError naming the face's source and field if a
    coordinate or box value is NaN or infinite: MMPose would train on it."""
    fields = dict(
        keypoints=face.keypoints,
        bbox=face.bbox,
        center=face.center,
        scale=face.scale,
    )
    fields.update(face.extra)
    for name, values in fields.items():
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            bad = f'non-numeric values {values!r:.60}'
        else:
            if np.isfinite(values).all():
                continue
            bad = 'a NaN or infinite value'
        raise ValueError(
            f'{face.source or face.file_name}: field "{name}" of the face of '
            f'{face.file_name!r} holds {bad}; fix the source annotation '
            'before converting (nothing was written)'
        )


def _annotation(face: Face, ann_id: int, image_id: int) -> dict:
    pts = np.asarray(face.keypoints, dtype=np.float64)
    vis = np.ones(len(pts)) if face.visible is None else face.visible
    v = np.where(np.asarray(vis) > 0, 2, 1)
    flat = np.concatenate([pts, v[:, None]], 1).ravel()
    bbox = [float(b) for b in face.bbox]
    ann = dict(
        id=ann_id,
        image_id=image_id,
        category_id=1,
        iscrowd=0,
        num_keypoints=int(len(pts)),
        keypoints=[float(x) for x in flat],
        bbox=bbox,
        area=bbox[2] * bbox[3],
        center=[float(c) for c in face.center],
        scale=float(face.scale),
    )
    if face.attributes:
        ann['attributes'] = {k: int(v) for k, v in face.attributes.items()}
    if face.visible is not None:
        ann['visible'] = [int(x) for x in face.visible]
    ann.update(face.extra)
    return ann


def build_coco(
    faces: Iterable[Face], sizes: Dict[str, Tuple[int, int]]
) -> dict:
    """The COCO-style dict of ``faces``; faces of one image share its entry.

    Args:
        faces: The faces, in file order. A face without ``ann_id`` gets the
            next free id (from 1).
        sizes: (height, width) of each ``file_name``.

    Raises:
        ValueError: naming the face's ``source`` and the field if a
            keypoint, box, centre, scale or extra value is NaN or infinite.
    """
    images: List[dict] = []
    image_ids: Dict[str, int] = {}
    anns: List[dict] = []
    faces = list(faces)
    for face in faces:
        _check_finite(face)
    next_id = max([f.ann_id or 0 for f in faces] + [0]) + 1
    for face in faces:
        if face.file_name not in image_ids:
            image_ids[face.file_name] = len(images) + 1
            height, width = sizes[face.file_name]
            images.append(
                dict(
                    id=len(images) + 1,
                    file_name=face.file_name,
                    height=int(height),
                    width=int(width),
                )
            )
        if face.ann_id is None:
            face.ann_id = next_id
            next_id += 1
        anns.append(_annotation(face, face.ann_id, image_ids[face.file_name]))
    return dict(images=images, annotations=anns, categories=CATEGORIES)


def refuse_existing(paths: Iterable[str], overwrite: bool = False) -> None:
    """Raises FileExistsError naming every path of ``paths`` that exists,
    unless ``overwrite``.

    The converters call it on all their outputs before reading anything, so
    that a second run neither replaces files silently nor stops halfway.
    """
    if overwrite:
        return
    existing = [p for p in paths if osp.exists(p)]
    if existing:
        raise FileExistsError(
            'refusing to overwrite existing annotation files: '
            + ', '.join(existing)
            + '; pass --overwrite (overwrite=True) to replace them, or '
            'write elsewhere with --out-dir'
        )


def write_coco(
    faces: Iterable[Face],
    sizes: Dict[str, Tuple[int, int]],
    path: str,
    overwrite: bool = False,
) -> str:
    """Writes :func:`build_coco` of ``faces`` to ``path``; returns it.

    Args:
        faces: The faces, in file order.
        sizes: (height, width) of each ``file_name``.
        path: The JSON file to write.
        overwrite: Replace ``path`` if it exists.

    Raises:
        FileExistsError: If ``path`` exists and ``overwrite`` is False.
        ValueError: If a face holds a NaN or infinite value; nothing is
            written then.
    """
    refuse_existing([path], overwrite)
    # Serialised before the file is opened, and strictly (no NaN/Infinity,
    # which Python's json would write): a bad face leaves no partial file.
    text = json.dumps(build_coco(faces, sizes), allow_nan=False)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    return path


def read_image_sizes(
    img_dir: str, file_names: Iterable[str], desc: str = 'image sizes'
) -> Dict[str, Tuple[int, int]]:
    """(height, width) of each distinct file under ``img_dir``."""
    from tqdm import tqdm

    names = list(dict.fromkeys(file_names))
    return {
        name: image_size(osp.join(img_dir, name))
        for name in tqdm(names, desc=desc, unit='img')
    }


def require_dir(path: str, what: str, hint: str = '') -> str:
    """Raises FileNotFoundError naming ``what`` if ``path`` is no folder."""
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{what} not found: expected the folder {path}'
            + (f' ({hint})' if hint else '')
        )
    return path


def require_file(path: str, what: str, hint: str = '') -> str:
    """Raises FileNotFoundError naming ``what`` if ``path`` is no file."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{what} not found: expected the file {path}'
            + (f' ({hint})' if hint else '')
        )
    return path


def summary_lines(
    paths: Dict[str, str], standard: Dict[str, int]
) -> List[str]:
    """One line per written file with its face count, flagging counts that
    differ from the standard split sizes (an incomplete download)."""
    lines = []
    for name, path in paths.items():
        with open(path) as f:
            count = len(json.load(f)['annotations'])
        line = f'{name}: {path} ({count} faces)'
        if name in standard and count != standard[name]:
            line += f'; the standard split has {standard[name]}'
        lines.append(line)
    return lines


def converter_parser(description: str, dataset: str):
    """The argument parser every converter tool starts from.

    It takes the data root and the ``--img-dir``, ``--out-dir`` and
    ``--overwrite`` options all converters share; a tool adds its own.
    """
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        'root', help=f'{dataset} data root, e.g. data/{dataset.lower()}'
    )
    parser.add_argument('--img-dir', help='images (default <root>/images)')
    parser.add_argument(
        '--out-dir', help='output folder (default <root>/annotations)'
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace existing annotation files (by default an existing '
        'one stops the conversion before anything is read)',
    )
    return parser


def run_converter(convert, standard_sizes: Dict[str, int], *args, **kwargs):
    """Runs ``convert(*args, **kwargs)`` for a tool: a clean exit message
    on bad input, then one summary line per written file."""
    try:
        paths = convert(*args, **kwargs)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from None
    for line in summary_lines(paths, standard_sizes):
        print(line)
    return paths
