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
import secrets
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from mmaniso.datasets.checks import (
    PIXEL_STD,
    ImageFileError,
    face_geometry_problem,
    file_name_problem,
    image_file_size,
)

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
    """(height, width) of an image as MMPose decodes it, from its header.

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If it is empty, unreadable or truncated.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    try:
        return image_file_size(path)
    except ImageFileError as e:
        raise ValueError(
            f'{e}; restore it from the download (nothing was written)'
        ) from None


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


def _check_geometry(face: Face, size: Tuple[int, int]) -> None:
    """Raises ValueError naming the face's source and field if its file
    name leaves the image folder, or its box or keypoints are out of
    bounds for its (height, width) image
    (:func:`mmaniso.datasets.checks.face_geometry_problem`, the pre-check's
    rules: every point is labelled in the converters' output)."""
    where = f'{face.source or face.file_name}: the face of {face.file_name!r}'
    problem = file_name_problem(face.file_name)
    if problem:
        raise ValueError(
            f'{where}: its image path {problem}; give the path relative to '
            'the image folder (nothing was written)'
        )
    pts = np.asarray(face.keypoints, dtype=np.float64)
    # The points against their image first: a stray point also stretches
    # a box made from the landmarks' extent (WFLW, 300W), and the message
    # should name the point rather than the box.
    height, width = size
    found = face_geometry_problem(
        pts,
        np.zeros(len(pts)),
        (width / 2, height / 2),
        (width / 2, height / 2),
        size,
    )
    half = float(face.scale) * PIXEL_STD / 2
    found = found or face_geometry_problem(
        pts, np.ones(len(pts)), face.center, (half, half), size, 'scale'
    )
    if found is None:
        x, y, w, h = (float(v) for v in face.bbox)
        corners = [[x, y], [x + w, y + h]]
        found = face_geometry_problem(
            corners, [0, 0], face.center, (half, half), size, 'scale'
        )
        if found is not None:
            found = 'bbox', found[1].replace('point 1 ', 'its corner ')
            found = found[0], found[1].replace('point 0 ', 'its corner ')
    if found is not None:
        field_name, problem = found
        raise ValueError(
            f'{where}: field "{field_name}" {problem}; fix the source '
            'annotation before converting (nothing was written)'
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
            keypoint, box, centre, scale or extra value is NaN or infinite,
            or the box or keypoints are out of bounds for the image.
    """
    images: List[dict] = []
    image_ids: Dict[str, int] = {}
    anns: List[dict] = []
    faces = list(faces)
    for face in faces:
        _check_finite(face)
        _check_geometry(face, sizes[face.file_name])
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


def _write_temporary(path: str, text: str) -> str:
    """Writes ``text`` to a new hidden file beside ``path``; returns its
    name. A failed write removes it."""
    folder = osp.dirname(osp.abspath(path))
    tmp = osp.join(folder, f'.{osp.basename(path)}.{secrets.token_hex(4)}.tmp')
    try:
        with open(tmp, 'x', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return tmp


def _make_folders(paths: Iterable[str]) -> List[str]:
    """Creates the missing folders of ``paths``; returns them, outermost
    first."""
    made: List[str] = []
    for path in paths:
        missing = []
        folder = osp.dirname(osp.abspath(path))
        while not osp.isdir(folder):
            missing.append(folder)
            folder = osp.dirname(folder)
        for folder in reversed(missing):
            os.mkdir(folder)
            made.append(folder)
    return made


def write_coco_files(
    outputs: Dict[str, Tuple[Iterable[Face], str]],
    sizes: Dict[str, Tuple[int, int]],
    overwrite: bool = False,
) -> Dict[str, str]:
    """Writes the files of one conversion together; returns their paths.

    Every file is built and checked first, then written under a temporary
    name in its folder; only when all are written are they renamed to
    their names. A bad face or a failed write (a full disk) leaves no new
    file and every existing one as it was.

    Args:
        outputs: ``name: (faces, path)`` of each file.
        sizes: (height, width) of each ``file_name``.
        overwrite: Replace existing files.

    Raises:
        FileExistsError: If a path exists and ``overwrite`` is False.
        ValueError: If a face is refused (:func:`build_coco`).
        OSError: If a file cannot be written; nothing was written then.
    """
    paths = {name: path for name, (_, path) in outputs.items()}
    refuse_existing(paths.values(), overwrite)
    # Serialised strictly (no NaN/Infinity, which Python's json would
    # write) before anything is opened.
    texts = {
        name: json.dumps(build_coco(faces, sizes), allow_nan=False)
        for name, (faces, _) in outputs.items()
    }
    made = _make_folders(paths.values())
    temporary: Dict[str, str] = {}

    def undo():
        for tmp in temporary.values():
            os.remove(tmp)
        for folder in reversed(made):
            if not os.listdir(folder):
                os.rmdir(folder)

    try:
        for name, text in texts.items():
            temporary[name] = _write_temporary(paths[name], text)
    except OSError as e:
        undo()
        raise OSError(
            e.errno,
            f'could not write {paths[name]} ({e.strerror or e}); nothing '
            f'was written: the files of a conversion are written under '
            f'temporary names and renamed only when all are complete. Free '
            f'the space (or fix the folder) and run the converter again',
        ) from e
    except BaseException:
        undo()
        raise
    for name, tmp in temporary.items():
        os.replace(tmp, paths[name])
    return paths


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
        ValueError: If a face holds a NaN or infinite value or is out of
            bounds; nothing is written then.
        OSError: If the file cannot be written; ``path`` is left as it was.
    """
    return write_coco_files({path: (faces, path)}, sizes, overwrite)[path]


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


def read_text(path: str, what: str) -> str:
    """The UTF-8 (or ASCII) text of ``path``; names the file, the byte and
    the fix when it is not UTF-8."""
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ValueError(
            f'{path}: the {what} is not UTF-8 text (byte {e.start}: '
            f'{raw[e.start : e.start + 4]!r}); re-save it as UTF-8 (e.g. '
            f'iconv -f latin1 -t utf-8) or restore it from the download '
            f'(nothing was written)'
        ) from None


def _require(path: str, what: str, hint: str, kind: str) -> str:
    """``path`` if it is a ``kind`` ('file' or 'folder'); else raises
    FileNotFoundError naming ``what``, the path and the ``hint``."""
    if not (osp.isdir if kind == 'folder' else osp.isfile)(path):
        raise FileNotFoundError(
            f'{what} not found: expected the {kind} {path}'
            + (f' ({hint})' if hint else '')
        )
    return path


def require_dir(path: str, what: str, hint: str = '') -> str:
    """Raises FileNotFoundError naming ``what`` if ``path`` is no folder."""
    return _require(path, what, hint, 'folder')


def require_file(path: str, what: str, hint: str = '') -> str:
    """Raises FileNotFoundError naming ``what`` if ``path`` is no file."""
    return _require(path, what, hint, 'file')


def summary_lines(
    paths: Dict[str, str], standard: Dict[str, int]
) -> List[str]:
    """One line per written file with its face count, flagging counts that
    differ from the standard split sizes (an incomplete download)."""
    lines = []
    for name, path in paths.items():
        with open(path, encoding='utf-8') as f:
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
    except (OSError, ValueError) as e:
        raise SystemExit(f'error: {e}') from None
    for line in summary_lines(paths, standard_sizes):
        print(line)
    return paths
