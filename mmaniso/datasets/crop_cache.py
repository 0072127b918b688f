"""Face-crop cache: each face cut out once, so training decodes crops.

MMPose's top-down pipeline decodes the whole image for every sample although
the model sees a 256-px crop of it; face datasets' images are about 1000 px.
:func:`write_crop_cache` writes, once, a square around each face that holds
every crop the training augmentation can take (:func:`augmentation_margin`),
downscaled to at most ``max_size`` px, and an annotation file per source
file in MMPose's layout with every coordinate moved into the crop's frame.
A config then trains from it by changing ``data_root``:
``tools/dataset_converters/make_crop_cache.py`` is the command line.

Frames: MMPose puts pixel centres at integer coordinates. A crop whose
top-left source pixel is ``(x0, y0)``, ``R`` px wide, resized to ``S`` px
(``k = S / R``, OpenCV's centre-aligned resize) maps a point by
``p' = (p - x0 + 0.5) k - 0.5`` and a length by ``l' = k l``. Outside the
image the crop is black, as ``TopdownAffine``'s warp fills it.

Fields moved into the crop frame: every flat ``keypoints*`` list
(``[x, y, v] * K``), ``bbox`` ``[x, y, w, h]``, ``center``; scaled by k:
``scale``, ``box_size``, ``interocular``; by k²: ``area``. Others are
copied as they are. Each image entry keeps its source as ``source_file_name``,
``source_image_id`` and ``crop`` ``[x0, y0, R, k]``.
"""

import json
import math
import os
import os.path as osp
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mmaniso.datasets.converters.coco import PIXEL_STD

# Written into the annotation files' ``info``: marks a file as this cache's,
# which may be rewritten; any other file at an output path is the user's.
CACHE_TAG = 'mmaniso crop cache'

# Transforms that do not move the crop window (MMPose 1.x names). A
# transform not listed here, nor in the geometric ones read below, stops
# :func:`augmentation_margin`: it cannot know how far that one reaches.
_NEUTRAL = {
    'LoadImage',
    'RandomFlip',
    'GenerateTarget',
    'PackPoseInputs',
    'PhotometricDistortion',
    'YOLOXHSVRandomAug',
    'FilterAnnotations',
}


def augmentation_margin(pipeline: Sequence[Mapping]) -> float:
    """Side of the square that holds every crop ``pipeline`` can take, as a
    multiple of the face box side.

    Reads MMPose's defaults where the config leaves them out:
    ``GetBBoxCenterScale`` pads the box (1.25); ``RandomBBoxTransform``
    shifts it by up to ``shift_factor`` of its size (0.16), scales it by up
    to ``scale_factor[1]`` (1.5) and rotates it by up to ``rotate_factor``
    degrees (80; its truncated normals stop at one factor); ``TopdownAffine``
    widens the box to the input's aspect ratio.

    Args:
        pipeline: The training pipeline, as config dicts.

    Returns:
        The margin m: a square of side m × (box side) centred on the box
        holds every pixel the warp can read.

    Raises:
        ValueError: A transform whose reach is unknown; pass a margin by hand.
    """
    padding, shift, scale, rotate, aspect = 1.0, 0.0, 1.0, 0.0, 1.0
    for step in pipeline:
        kind = step.get('type')
        if kind == 'GetBBoxCenterScale':
            padding = float(step.get('padding', 1.25))
        elif kind == 'RandomBBoxTransform':
            if float(step.get('shift_prob', 0.3)) > 0:
                shift = float(step.get('shift_factor', 0.16))
            if float(step.get('scale_prob', 1.0)) > 0:
                scale = max(
                    1.0, float(step.get('scale_factor', (0.5, 1.5))[1])
                )
            if float(step.get('rotate_prob', 0.6)) > 0:
                rotate = abs(float(step.get('rotate_factor', 80.0)))
        elif kind == 'TopdownAffine':
            w, h = step['input_size']
            aspect = float(w) / float(h)
        elif kind not in _NEUTRAL:
            raise ValueError(
                f'augmentation_margin: the pipeline step {kind!r} may move '
                'the crop window and its reach is unknown here; give the '
                'margin yourself (make_crop_cache.py --margin M, M times the '
                'box side)'
            )
    # The padded box, widened to the input's aspect ratio, in box sides.
    half_w = 0.5 * padding * max(1.0, aspect) * scale
    half_h = 0.5 * padding * max(1.0, 1.0 / aspect) * scale
    theta = np.radians(np.linspace(0.0, min(rotate, 180.0), 721))
    cos, sin = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    reach = max(
        (half_w * cos + half_h * sin).max(),
        (half_w * sin + half_h * cos).max(),
    )
    # The centre moves by up to `shift` of the padded box on each axis.
    reach += shift * padding * max(1.0, aspect, 1.0 / aspect)
    return float(2.0 * reach)


def face_box(ann: Mapping, where: str = '') -> Tuple[float, float, float]:
    """Centre and side of the face box the dataset builds from ``ann``.

    MMPose's WFLW, 300W and AFLW datasets read ``center`` and ``scale``
    (side / 200); COCO-style ones read ``bbox`` ``[x, y, w, h]``.

    Returns:
        ``(cx, cy, side)`` in pixels.
    """
    if 'center' in ann and 'scale' in ann:
        cx, cy = (float(v) for v in ann['center'])
        scale = ann['scale']
        scale = max(scale) if isinstance(scale, (list, tuple)) else scale
        side = float(scale) * PIXEL_STD
    elif 'bbox' in ann:
        x, y, w, h = (float(v) for v in ann['bbox'])
        cx, cy, side = x + w / 2, y + h / 2, max(w, h)
    else:
        raise ValueError(
            f'{where}: the annotation has neither "center" and "scale" nor '
            '"bbox"; the crop cache needs the face box'
        )
    if not all(math.isfinite(v) for v in (cx, cy, side)) or side <= 0:
        raise ValueError(
            f'{where}: the face box (centre {cx}, {cy}, side {side}) is not '
            'a finite, positive box; fix the annotation'
        )
    return cx, cy, side


def crop_window(
    cx: float, cy: float, side: float, margin: float, max_size: int
) -> Tuple[int, int, int, int]:
    """The cached square of one face, in whole source pixels.

    Returns:
        ``(x0, y0, R, S)``: top-left source pixel, side in source pixels,
        side of the stored crop (``min(R, max_size)``).
    """
    # Two pixels of slack: bilinear interpolation at the window's edge
    # reads one pixel beyond it.
    span = int(math.ceil(margin * side)) + 2
    x0 = int(math.floor(cx - span / 2.0 + 0.5))
    y0 = int(math.floor(cy - span / 2.0 + 0.5))
    return x0, y0, span, min(span, int(max_size))


def move_annotation(ann: Mapping, x0: int, y0: int, k: float) -> dict:
    """A copy of ``ann`` with its coordinates in the crop's frame.

    Args:
        ann: A COCO-style face annotation.
        x0: Left column of the crop in the source image.
        y0: Top row of the crop in the source image.
        k: Crop pixels per source pixel.
    """
    out = dict(ann)
    offset = np.array([x0, y0], dtype=np.float64)

    def point(xy):
        return (np.asarray(xy, dtype=np.float64) - offset + 0.5) * k - 0.5

    for key, value in ann.items():
        if key.startswith('keypoints') and isinstance(value, list):
            if len(value) % 3:
                raise ValueError(
                    f'annotation id={ann.get("id")}: "{key}" holds '
                    f'{len(value)} numbers, not [x, y, v] triples'
                )
            flat = np.asarray(value, dtype=np.float64).reshape(-1, 3)
            flat[:, :2] = point(flat[:, :2])
            out[key] = [round(float(v), 4) for v in flat.ravel()]
    if 'bbox' in ann:
        x, y, w, h = (float(v) for v in ann['bbox'])
        c = point([x + w / 2, y + h / 2])
        w, h = w * k, h * k
        out['bbox'] = [
            round(float(v), 4) for v in (c[0] - w / 2, c[1] - h / 2, w, h)
        ]
    if 'center' in ann:
        out['center'] = [round(float(v), 4) for v in point(ann['center'])]
    for key in ('scale', 'box_size', 'interocular'):
        if key in ann:
            value = ann[key]
            if isinstance(value, (list, tuple)):
                out[key] = [round(float(v) * k, 6) for v in value]
            else:
                out[key] = round(float(value) * k, 6)
    if 'area' in ann:
        out['area'] = round(float(ann['area']) * k * k, 4)
    return out


def read_image(path: str) -> np.ndarray:
    """BGR image as MMPose's ``LoadImage`` decodes it (OpenCV, colour, EXIF
    orientation applied)."""
    import cv2

    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'{path}: not a readable image')
    return img


def cut_crop(img: np.ndarray, x0: int, y0: int, span: int, size: int):
    """The square ``[x0, x0 + span) × [y0, y0 + span)`` of ``img``, black
    outside it, resized to ``size`` px.

    Args:
        img: Source image, shape (H, W, C).

    Returns:
        The crop, shape (size, size, C).
    """
    import cv2

    h, w = img.shape[:2]
    crop = np.zeros((span, span) + img.shape[2:], dtype=img.dtype)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + span), min(h, y0 + span)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
    if size != span:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop


def crop_name(file_name: str, x0: int, y0: int, span: int, ext: str) -> str:
    """Where a crop is stored, relative to the image folder: beside its
    source's path, named by its window (so equal windows are cut once)."""
    stem, _ = osp.splitext(file_name)
    return f'{stem}_x{x0}_y{y0}_s{span}.{ext}'


def _write_crops(job) -> int:
    """Worker: cuts and writes the crops of one source image."""
    import cv2

    src, crops, quality = job
    img = None
    written = 0
    for dst, (x0, y0, span, size) in crops:
        if osp.isfile(dst):
            continue  # the same window of the same image: already cut
        if img is None:
            img = read_image(src)
        crop = cut_crop(img, x0, y0, span, size)
        os.makedirs(osp.dirname(dst), exist_ok=True)
        params = (
            [cv2.IMWRITE_JPEG_QUALITY, quality] if dst.endswith('.jpg') else []
        )
        tmp = dst + '.part' + osp.splitext(dst)[1]
        if not cv2.imwrite(tmp, crop, params):
            raise OSError(f'could not write {tmp}')
        os.replace(tmp, dst)
        written += 1
    return written


def _check_output(path: str) -> None:
    """Refuses to replace a file this cache did not write."""
    if not osp.exists(path):
        return
    try:
        with open(path) as f:
            tag = json.load(f).get('info', {}).get('description')
    except (OSError, ValueError, AttributeError):
        tag = None
    if tag != CACHE_TAG:
        raise FileExistsError(
            f'{path} exists and was not written by the crop cache; choose '
            'another --out folder (nothing was written)'
        )


def write_crop_cache(
    data_root: str,
    ann_files: Iterable[str],
    out_root: str,
    margin: float,
    max_size: int = 512,
    img_prefix: str = 'images/',
    image_format: str = 'jpg',
    quality: int = 95,
    workers: int = 2,
    progress: bool = True,
) -> Dict[str, str]:
    """Writes the crop cache of some annotation files.

    Args:
        data_root: The dataset's root (the configs' ``data_root``).
        ann_files: Annotation files relative to ``data_root``.
        out_root: The cache's root; it gets ``<img_prefix>`` and the
            annotation files under the same relative paths.
        margin: Crop side as a multiple of the face box side
            (:func:`augmentation_margin` of the training pipeline).
        max_size: Largest crop side in pixels; larger crops are downscaled.
        img_prefix: Image folder relative to both roots
            (``data_prefix.img``).
        image_format: ``'jpg'`` (fast to decode) or ``'png'`` (lossless).
        quality: JPEG quality.
        workers: Processes cutting crops.
        progress: Show a progress bar over source images.

    Returns:
        Each annotation file's cached copy, keyed by its relative path.

    Raises:
        ValueError: Bad arguments or a face without a usable box.
        FileExistsError: An output annotation file that is not the cache's.
    """
    if image_format not in ('jpg', 'png'):
        raise ValueError(
            f"image_format must be 'jpg' or 'png', got {image_format!r}"
        )
    if not margin > 0 or not max_size > 0:
        raise ValueError(
            f'margin and max_size must be > 0, got {margin}, {max_size}'
        )
    if osp.abspath(out_root) == osp.abspath(data_root):
        raise ValueError(
            f'the cache would be written into its source {data_root}; give '
            'another --out folder'
        )
    ann_files = list(ann_files)
    outputs, jobs = {}, {}
    for rel in ann_files:
        src_ann = osp.join(data_root, rel)
        dst_ann = osp.join(out_root, rel)
        _check_output(dst_ann)
        with open(src_ann) as f:
            data = json.load(f)
        by_id = {img['id']: img for img in data.get('images', [])}
        images, anns = [], []
        for n, ann in enumerate(data.get('annotations', [])):
            where = f'{src_ann}: annotation {n} (id={ann.get("id")})'
            if ann.get('image_id') not in by_id:
                raise ValueError(
                    f'{where}: image_id={ann.get("image_id")} is not in '
                    '"images"; fix the annotation file'
                )
            image = by_id[ann['image_id']]
            x0, y0, span, size = crop_window(
                *face_box(ann, where), margin, max_size
            )
            k = size / span
            name = crop_name(image['file_name'], x0, y0, span, image_format)
            src_img = osp.join(data_root, img_prefix, image['file_name'])
            dst_img = osp.join(out_root, img_prefix, name)
            jobs.setdefault(src_img, {})[dst_img] = (x0, y0, span, size)
            image_id = len(images) + 1
            moved = move_annotation(ann, x0, y0, k)
            moved['image_id'] = image_id
            anns.append(moved)
            images.append(
                dict(
                    id=image_id,
                    file_name=name,
                    height=size,
                    width=size,
                    source_file_name=image['file_name'],
                    source_image_id=image['id'],
                    crop=[x0, y0, span, round(k, 8)],
                )
            )
        out = {
            key: v
            for key, v in data.items()
            if key not in ('images', 'annotations')
        }
        out['info'] = dict(
            description=CACHE_TAG,
            source=osp.abspath(src_ann),
            margin=margin,
            max_size=int(max_size),
        )
        out['images'], out['annotations'] = images, anns
        outputs[rel] = (dst_ann, out)
    _cut_all(jobs, quality, workers, progress)
    for dst_ann, out in outputs.values():
        os.makedirs(osp.dirname(dst_ann) or '.', exist_ok=True)
        with open(dst_ann + '.part', 'w') as f:
            json.dump(out, f)
        os.replace(dst_ann + '.part', dst_ann)
    return {rel: dst for rel, (dst, _) in outputs.items()}


def _cut_all(
    jobs: Mapping, quality: int, workers: int, progress: bool
) -> None:
    from tqdm import tqdm

    work = [
        (src, sorted(crops.items()), quality) for src, crops in jobs.items()
    ]
    bar = tqdm(
        total=len(work), desc='crop cache', unit='img', disable=not progress
    )
    try:
        if workers > 1 and len(work) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for _ in pool.map(_write_crops, work, chunksize=8):
                    bar.update()
        else:
            for job in work:
                _write_crops(job)
                bar.update()
    finally:
        bar.close()


def crop_array_paths(ann_path: str) -> Tuple[str, str]:
    """Where :func:`write_crop_array` puts the array of an annotation file
    and its index: ``<stem>.crops.npy`` and ``<stem>.crops.json``."""
    stem = osp.splitext(ann_path)[0]
    return stem + '.crops.npy', stem + '.crops.json'


def crop_array_index(array_path: str) -> str:
    """The index file of a crop array (``.npy`` -> ``.json``)."""
    return osp.splitext(array_path)[0] + '.json'


def _check_array_output(path: str) -> None:
    """Refuses to replace an array this cache did not write."""
    index = crop_array_index(path)
    if not osp.exists(path) and not osp.exists(index):
        return
    try:
        with open(index) as f:
            tag = json.load(f).get('description')
    except (OSError, ValueError, AttributeError):
        tag = None
    if tag != CACHE_TAG + ' array':
        raise FileExistsError(
            f'{path} or {index} exists and was not written by the crop '
            'cache; move it away (nothing was written)'
        )


def write_crop_array(
    ann_path: str,
    img_root: str,
    size: Optional[int] = None,
    progress: bool = True,
) -> str:
    """Packs the images of an annotation file into one uint8 array.

    Row ``n`` holds the image of the file's ``n``-th annotation, BGR,
    channels first, padded with black at its bottom and right to
    ``size`` x ``size``: shape (N, 3, S, S), a ``.npy`` file that
    ``np.load(mmap_mode=...)`` maps without reading it (what
    :class:`~mmaniso.datasets.CropFeedDataset` does). The index file
    lists the annotation ids in row order. Coordinates need no change: the
    padding is beyond every annotated pixel. Meant for the face-crop cache
    (crops of at most ``max_size`` px); it takes N S² 3 bytes of disk (WFLW's
    7,500 training faces at 512 px: 5.9 GB).

    Args:
        ann_path: The annotation file (COCO style, ``images`` and
            ``annotations``).
        img_root: The folder its ``file_name``s are relative to.
        size: Side S; None: the largest image side the file's ``images``
            record (their ``width`` and ``height``).
        progress: Show a progress bar.

    Returns:
        The array's path (``<stem>.crops.npy``).

    Raises:
        ValueError: An image larger than ``size``, or no size to take.
        FileExistsError: An array or index there that is not the cache's.
    """
    from tqdm import tqdm

    with open(ann_path) as f:
        data = json.load(f)
    by_id = {img['id']: img for img in data.get('images', [])}
    anns = data.get('annotations', [])
    if not anns:
        raise ValueError(f'{ann_path} has no annotations')
    if size is None:
        sides = [
            max(
                int(by_id[a['image_id']].get(k, 0))
                for k in ('width', 'height')
            )
            for a in anns
        ]
        size = max(sides)
        if size <= 0:
            raise ValueError(
                f'{ann_path}: its images record no width/height; give size'
            )
    array_path, index_path = crop_array_paths(ann_path)
    _check_array_output(array_path)
    tmp = array_path + '.part.npy'
    out = np.lib.format.open_memmap(
        tmp, mode='w+', dtype=np.uint8, shape=(len(anns), 3, size, size)
    )
    try:
        for n, ann in enumerate(
            tqdm(anns, desc='crop array', disable=not progress)
        ):
            image = by_id.get(ann.get('image_id'))
            if image is None:
                raise ValueError(
                    f'{ann_path}: annotation {n} (id={ann.get("id")}) has '
                    f'image_id={ann.get("image_id")}, not in "images"'
                )
            path = osp.join(img_root, image['file_name'])
            img = read_image(path)
            h, w = img.shape[:2]
            if h > size or w > size:
                raise ValueError(
                    f"{path} is {w}x{h} px, larger than the array's {size} "
                    'px; give a larger size'
                )
            out[n, :, :h, :w] = img.transpose(2, 0, 1)
        out.flush()
    except BaseException:
        del out
        os.remove(tmp)
        raise
    del out
    os.replace(tmp, array_path)
    with open(index_path + '.part', 'w') as f:
        json.dump(
            dict(
                description=CACHE_TAG + ' array',
                annotation_file=osp.basename(ann_path),
                size=int(size),
                layout='(N, 3, size, size) uint8 BGR, padded at the bottom '
                'and right',
                ids=[a.get('id', n) for n, a in enumerate(anns)],
            ),
            f,
        )
    os.replace(index_path + '.part', index_path)
    return array_path


def pipeline_margin_of(config_path: str) -> float:
    """:func:`augmentation_margin` of a config's training pipeline."""
    from mmengine.config import Config

    cfg = Config.fromfile(config_path)
    pipeline = cfg.train_dataloader.dataset.get('pipeline')
    if not pipeline:
        raise ValueError(
            f'{config_path}: train_dataloader.dataset has no pipeline'
        )
    return augmentation_margin(pipeline)


__all__: List[str] = [
    'augmentation_margin',
    'crop_array_index',
    'crop_array_paths',
    'crop_window',
    'cut_crop',
    'face_box',
    'move_annotation',
    'pipeline_margin_of',
    'write_crop_array',
    'write_crop_cache',
]
