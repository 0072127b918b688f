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

Ties to the source: the cache's ``info`` records a content hash of the
source annotation file, ``[size, mtime_ns]`` of every source image, the
byte size of every crop, a hash of its own ``images`` and ``annotations``
and the command that rebuilds it; :func:`check_crop_cache` refuses a cache
that no longer matches (``tools/train.py`` and ``tools/test.py`` run it in
their pre-check, :class:`~mmaniso.datasets.CropFeedDataset` when it opens
one). The crop array's index records the hash of the annotation file it
was packed from, its ids in row order, its shape and dtype
(:func:`check_crop_array`).
"""

import hashlib
import json
import math
import os
import os.path as osp
import re
import shlex
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import (
    Any,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np

from mmaniso.datasets.checks import DataCheckError
from mmaniso.datasets.converters.coco import PIXEL_STD
from mmaniso.utils.file_digest import file_sha256
from mmaniso.utils.image_files import truncation

# Written into the annotation files' ``info``: marks a file as this cache's,
# which may be rewritten; any other file at an output path is the user's.
CACHE_TAG = 'mmaniso crop cache'
ARRAY_TAG = CACHE_TAG + ' array'
TOOL = 'tools/dataset_converters/make_crop_cache.py'
# The fields a cache (or array index) written with its fingerprint has; a
# cache without them was written before they existed and is refused.
_CACHE_FINGERPRINT = ('source_sha256', 'source_images', 'content_sha256')
_ARRAY_FINGERPRINT = ('annotation_sha256', 'shape', 'dtype', 'sample_sha256')


class CropCacheError(DataCheckError, ValueError):
    """A face-crop cache or crop array that does not match what it was cut
    from, or that cannot be read; the message names the file, what changed
    and the command that rebuilds it."""

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
    cut = truncation(path)
    if cut is not None:
        # OpenCV 4 would decode it, the missing part grey, and the cache
        # would keep that crop for every epoch.
        raise ValueError(
            f'{path}: the image file is cut short ({cut}); restore it from '
            'the download, then build the cache again'
        )
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


def image_stamp(path: str) -> Optional[List[int]]:
    """``[size, mtime_ns]`` of a source image, None if it is missing.

    A stamp, not a content hash: hashing every source image (1.5 GB for
    WFLW) at each training start would cost more than the start itself,
    while one ``stat`` per image is milliseconds, and every tool that
    rewrites an image (an editor, a converter, a new download) changes its
    modification time. A ``touch`` without a change only costs a rebuild.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def _content_sha256(data: Mapping) -> str:
    """Hash of a cache annotation file's content as JSON, less the hash
    itself (key order and spacing do not count; floats survive JSON)."""
    info = {
        k: v for k, v in data['info'].items() if k != 'content_sha256'
    }
    text = json.dumps(
        dict(data, info=info), sort_keys=True, separators=(',', ':')
    )
    return hashlib.sha256(text.encode()).hexdigest()


def make_cache_command(
    out_root: str,
    ann_files: Sequence[str],
    margin: Optional[float] = None,
    max_size: int = 512,
    image_format: str = 'jpg',
    quality: int = 95,
    array: bool = False,
    config: str = 'CONFIG',
) -> str:
    """The ``make_crop_cache.py`` command line that writes a cache.

    Args:
        margin: None leaves ``--margin`` out: the tool then takes the reach
            of the config's training pipeline.
        config: The training config (``CONFIG`` when it is not known).
    """
    args = ['python', TOOL, config, '--out', out_root]
    args += ['--ann-files', *ann_files] if ann_files else []
    args += [] if margin is None else ['--margin', f'{margin:g}']
    args += ['--max-size', str(int(max_size)), '--format', image_format]
    args += ['--quality', str(int(quality))] if image_format == 'jpg' else []
    args += ['--array'] if array else []
    return ' '.join(shlex.quote(a) for a in args)


def _without_margin(command: str) -> str:
    """A rebuild command that takes the pipeline's reach as the margin."""
    return re.sub(r' --margin \S+', '', command)


def _with_array(command: str) -> str:
    return command if ' --array' in command else command + ' --array'


def _write_crops(job) -> int:
    """Worker: cuts and writes the crops of one source image."""
    import cv2

    src, crops, quality = job
    img = None
    written = 0
    for dst, (x0, y0, span, size, reuse) in crops:
        if reuse and osp.isfile(dst):
            # The same window of the same source image, cut by the cache
            # this run replaces from a source with the same stamp.
            continue
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


def _reusable_crops(dst_ann: str) -> Dict[str, List[int]]:
    """Crops of the cache at ``dst_ann`` that may be kept: crop file name ->
    the stamp its source image had when it was cut. Empty for a cache
    written without stamps (its crops are cut again)."""
    if not osp.isfile(dst_ann):
        return {}
    with open(dst_ann) as f:
        data = json.load(f)
    stamps = (data.get('info') or {}).get('source_images')
    if not isinstance(stamps, dict):
        return {}
    return {
        img['file_name']: stamps.get(img.get('source_file_name'))
        for img in data.get('images', [])
        if stamps.get(img.get('source_file_name')) is not None
    }


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
    command: Optional[str] = None,
) -> Dict[str, str]:
    """Writes the crop cache of some annotation files.

    Each annotation file's ``info`` records what the cache was cut from
    (:func:`check_crop_cache` reads it): the source annotation file's
    content hash, every source image's ``[size, mtime_ns]``, every crop's
    byte size, a hash of the cached ``images`` and ``annotations``, and the
    command that rebuilds the cache. A crop already on disk is kept only if
    the cache it replaces cut it from a source image with the same stamp.
    The annotation files are written under temporary names and renamed
    together once every crop is cut.

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
        command: The command line that rebuilds this cache, quoted in the
            errors of a stale cache; None: :func:`make_cache_command` with
            ``CONFIG`` for the config.

    Returns:
        Each annotation file's cached copy, keyed by its relative path.

    Raises:
        ValueError: Bad arguments or a face without a usable box.
        FileExistsError: An output annotation file that is not the cache's.
        FileNotFoundError: A source image that is missing.
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
    if command is None:
        command = make_cache_command(
            out_root, ann_files, margin, max_size, image_format, quality
        )
    outputs, jobs = {}, {}
    for rel in ann_files:
        src_ann = osp.join(data_root, rel)
        dst_ann = osp.join(out_root, rel)
        _check_output(dst_ann)
        reusable = _reusable_crops(dst_ann)
        # Hashed before it is read: an edit in between shows as a change.
        source_sha256 = file_sha256(src_ann)
        with open(src_ann) as f:
            data = json.load(f)
        by_id = {img['id']: img for img in data.get('images', [])}
        images, anns, stamps, gone = [], [], {}, []
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
            if image['file_name'] not in stamps:
                # Stamped before it is cut: a change after this shows.
                stamps[image['file_name']] = image_stamp(src_img)
                if stamps[image['file_name']] is None:
                    gone.append(f'{where}: its image {src_img}')
            dst_img = osp.join(out_root, img_prefix, name)
            reuse = reusable.get(name) == stamps[image['file_name']]
            window = (x0, y0, span, size)
            known = jobs.setdefault(src_img, {}).get(dst_img)
            # Shared by two files: kept only if both may keep it.
            reuse = reuse and (known is None or known[-1])
            jobs[src_img][dst_img] = window + (reuse,)
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
        if gone:
            raise FileNotFoundError(
                f'{_describe(gone, 3)} is missing; restore it or remove the '
                'annotation (nothing was written)'
            )
        # ``info`` first: readers find the tag in the file's first bytes.
        out = dict(
            info=dict(
                description=CACHE_TAG,
                source=osp.abspath(src_ann),
                source_sha256=source_sha256,
                data_root=osp.abspath(data_root),
                img_prefix=img_prefix,
                annotation_file=rel,
                margin=margin,
                max_size=int(max_size),
                source_images=stamps,
                command=command,
            )
        )
        out.update(
            (key, v)
            for key, v in data.items()
            if key not in ('images', 'annotations', 'info')
        )
        out['images'], out['annotations'] = images, anns
        outputs[rel] = (dst_ann, out)
    _cut_all(jobs, quality, workers, progress)
    img_root = osp.join(out_root, img_prefix)
    for _, out in outputs.values():
        out['info']['crop_bytes'] = {
            img['file_name']: osp.getsize(osp.join(img_root, img['file_name']))
            for img in out['images']
        }
        out['info']['content_sha256'] = _content_sha256(out)
    _write_json_together([(dst, out) for dst, out in outputs.values()])
    return {rel: dst for rel, (dst, _) in outputs.items()}


def _write_json_together(files: Sequence[Tuple[str, Any]]) -> None:
    """Writes every file under a temporary name, then renames them all: a
    failure while writing leaves none of them changed."""
    written = []
    try:
        for path, data in files:
            os.makedirs(osp.dirname(path) or '.', exist_ok=True)
            tmp = path + '.part'
            written.append(tmp)
            with open(tmp, 'w') as f:
                json.dump(data, f)
    except BaseException:
        for tmp in written:
            if osp.exists(tmp):
                os.remove(tmp)
        raise
    for path, _ in files:
        os.replace(path + '.part', path)


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


# Same shape as _check_output: an array's tag lives in its index file,
# and the refusal names both files.
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
    # As the cache's tag check above: each file kind names its tag and fix.
    if tag != ARRAY_TAG:
        raise FileExistsError(
            f'{path} or {index} exists and was not written by the crop '
            'cache; move it away (nothing was written)'
        )


def _array_sample_sha256(array: np.ndarray) -> str:
    """Hash of the first, middle and last rows: tells a swapped array of the
    same shape for the cost of three rows, not of the whole file."""
    digest = hashlib.sha256()
    num = len(array)
    for row in sorted({0, num // 2, num - 1}):
        digest.update(np.ascontiguousarray(array[row]).tobytes())
    return digest.hexdigest()


def write_crop_array(
    ann_path: str,
    img_root: str,
    size: Optional[int] = None,
    progress: bool = True,
    command: Optional[str] = None,
) -> str:
    """Packs the images of an annotation file into one uint8 array.

    Row ``n`` holds the image of the file's ``n``-th annotation, BGR,
    channels first, padded with black at its bottom and right to
    ``size`` x ``size``: shape (N, 3, S, S), a ``.npy`` file that
    ``np.load(mmap_mode=...)`` maps without reading it (what
    :class:`~mmaniso.datasets.CropFeedDataset` does). The index file
    lists the annotation ids in row order, the array's shape and dtype, the
    SHA-256 of the annotation file and of three rows
    (:func:`check_crop_array` compares them). Coordinates need no change:
    the padding is beyond every annotated pixel. Meant for the face-crop
    cache (crops of at most ``max_size`` px); it takes N S² 3 bytes of disk
    (WFLW's 7,500 training faces at 512 px: 5.9 GB).

    Both files are written under temporary names; the old index is removed
    before the new array is renamed into place, so an array is never found
    beside an index of another.

    Args:
        ann_path: The annotation file (COCO style, ``images`` and
            ``annotations``).
        img_root: The folder its ``file_name``s are relative to.
        size: Side S; None: the largest image side the file's ``images``
            record (their ``width`` and ``height``).
        progress: Show a progress bar.
        command: The command that rebuilds the array, quoted in errors;
            None: the cache's own (with ``--array``).

    Returns:
        The array's path (``<stem>.crops.npy``).

    Raises:
        ValueError: An image larger than ``size``, no size to take, or
            repeated annotation ids.
        FileExistsError: An array or index there that is not the cache's.
    """
    from tqdm import tqdm

    ann_sha256 = file_sha256(ann_path)
    with open(ann_path) as f:
        data = json.load(f)
    by_id = {img['id']: img for img in data.get('images', [])}
    anns = data.get('annotations', [])
    if not anns:
        raise ValueError(f'{ann_path} has no annotations')
    ids = [a.get('id', n) for n, a in enumerate(anns)]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f'{ann_path}: annotation ids repeat, so array rows cannot be '
            'found by id; give every annotation its own id'
        )
    if command is None:
        info = data.get('info') or {}
        command = _with_array(
            info.get('command')
            or make_cache_command('DIR', [], array=True)
        )
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
    shape = (len(anns), 3, size, size)
    out = np.lib.format.open_memmap(
        tmp, mode='w+', dtype=np.uint8, shape=shape
    )
    try:  # `out` is closed (deleted) before its file is removed or renamed
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
        sample = _array_sample_sha256(out)
        out = None
        with open(index_path + '.part', 'w') as f:
            json.dump(
                dict(
                    description=ARRAY_TAG,
                    annotation_file=osp.basename(ann_path),
                    annotation_sha256=ann_sha256,
                    size=int(size),
                    shape=list(shape),
                    dtype='uint8',
                    sample_sha256=sample,
                    command=command,
                    layout='(N, 3, size, size) uint8 BGR, padded at the '
                    'bottom and right',
                    ids=ids,
                ),
                f,
            )
    except BaseException:
        out = None  # noqa: F841 (closes the mapping)
        for part in (tmp, index_path + '.part'):
            if osp.exists(part):
                os.remove(part)
        raise
    if osp.exists(index_path):
        os.remove(index_path)
    os.replace(tmp, array_path)
    os.replace(index_path + '.part', index_path)
    return array_path


def _rebuild(command: str) -> str:
    return f'rebuild it: {command}'


def _read_json(path: str, what: str, command: str) -> Any:
    try:
        with open(path, 'rb') as f:
            return json.loads(f.read().decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as e:
        raise CropCacheError(
            f'{path}: the {what} is not valid UTF-8 JSON ({e}); '
            + _rebuild(command)
        ) from None


def _describe(names: Sequence[str], limit: int = 5) -> str:
    shown = ', '.join(names[:limit])
    more = f' ({len(names)} in all)' if len(names) > limit else ''
    return shown + more


def check_crop_cache(
    ann_path: str,
    pipeline: Optional[Sequence[Mapping]] = None,
    check_crops: bool = True,
    data: Optional[Mapping] = None,
) -> Optional[dict]:
    """Checks a face-crop cache annotation file against its source.

    Refuses, naming what changed and the command that rebuilds the cache:
    a cache written without a fingerprint; an edited cache file (its
    content hash); a source annotation file whose annotation ids or order,
    or whose content, changed; a source image changed or missing (size and
    mtime); a crop missing or of another size; a margin smaller than the
    reach of ``pipeline``. A source annotation file that is gone (the cache
    was moved) cannot be compared: that is warned about, not refused.

    Args:
        ann_path: An annotation file; one the cache did not write is left
            alone (None is returned).
        pipeline: The training pipeline (config dicts) to compare the
            margin with; None: not compared.
        check_crops: Also stat the crop files (not needed when training
            reads the crop array).
        data: The file's content, if already read.

    Returns:
        The cache's ``info``, or None for a file the cache did not write.

    Raises:
        CropCacheError: On any mismatch.
    """
    generic = make_cache_command('DIR', [], config='CONFIG')
    if data is None:
        data = _read_json(ann_path, 'annotation file', generic)
    info = data.get('info') if isinstance(data, dict) else None
    if not isinstance(info, dict) or info.get('description') != CACHE_TAG:
        return None
    command = info.get('command') or (
        make_cache_command('DIR', [], max_size=info.get('max_size', 512))
        + f' (CONFIG: the training config of {info.get("source")}; DIR: '
        'the root of this cache)'
    )
    missing = [k for k in _CACHE_FINGERPRINT if k not in info]
    if missing or not info.get('command'):
        raise CropCacheError(
            f'{ann_path}: this face-crop cache was written without a '
            'fingerprint of its source (no info.'
            f'{(missing or ["command"])[0]}), so a change of the source '
            'annotations or images since cannot be told; '
            + _rebuild(command)
        )
    if _content_sha256(data) != info['content_sha256']:
        raise CropCacheError(
            f'{ann_path}: the cache annotation file was edited after the '
            'cache wrote it (its content hash differs from '
            'info.content_sha256); the crops may no longer match it; '
            + _rebuild(command)
        )
    _check_source(ann_path, data, info, command)
    if check_crops:
        _check_crops(ann_path, info, command)
    if pipeline is not None:
        _check_margin(ann_path, info, pipeline, command)
    return info


def _check_source(ann_path, data, info, command) -> None:
    source = info['source']
    if not osp.isfile(source):
        warnings.warn(
            f'{ann_path}: the source annotation file of this face-crop '
            f'cache, {source}, is gone, so the cache cannot be compared '
            'with its source; training from the cache as it was written',
            stacklevel=2,
        )
        return
    if file_sha256(source) != info['source_sha256']:
        src = _read_json(source, 'source annotation file', command)
        old_ids = [a.get('id') for a in data.get('annotations', [])]
        new_ids = [a.get('id') for a in src.get('annotations', [])]
        if old_ids != new_ids:
            if sorted(map(str, old_ids)) == sorted(map(str, new_ids)):
                what = 'the same annotation ids in another order'
            else:
                what = (
                    f'{len(new_ids)} annotations (ids '
                    f'{_describe(list(map(str, new_ids)))}) where the '
                    f'cache holds {len(old_ids)} (ids '
                    f'{_describe(list(map(str, old_ids)))})'
                )
        else:
            what = 'the same ids in the same order, other content'
        raise CropCacheError(
            f'{ann_path}: the source annotation file {source} changed '
            f'since the cache was cut from it (its SHA-256 differs; it now '
            f'holds {what}); the cached crops and coordinates are stale; '
            + _rebuild(command)
        )
    img_root = osp.join(info['data_root'], info['img_prefix'])
    changed = []
    for name, stamp in info['source_images'].items():
        now = image_stamp(osp.join(img_root, name))
        if now is None:
            changed.append(f'{name} (missing)')
        elif list(now) != list(stamp):
            changed.append(
                f'{name} (size, mtime_ns {stamp[0]}, {stamp[1]} -> '
                f'{now[0]}, {now[1]})'
            )
    if changed:
        raise CropCacheError(
            f'{ann_path}: {len(changed)} source image(s) under {img_root} '
            'changed since the cache was cut from them: '
            f'{_describe(changed, 3)}; the crops are stale; '
            + _rebuild(command)
        )


def _check_crops(ann_path, info, command) -> None:
    rel = info.get('annotation_file', '')
    full = osp.normpath(osp.abspath(ann_path))
    tail = osp.normpath(rel)
    if not rel or not full.endswith(os.sep + tail):
        warnings.warn(
            f'{ann_path} is not at {rel!r} under its cache root, so its '
            'crops are not checked',
            stacklevel=2,
        )
        return
    img_root = osp.join(full[: -len(tail)], info['img_prefix'])
    wrong = []
    for name, size in info['crop_bytes'].items():
        path = osp.join(img_root, name)
        if not osp.isfile(path):
            wrong.append(f'{name} (missing)')
        elif osp.getsize(path) != size:
            wrong.append(f'{name} ({size} -> {osp.getsize(path)} bytes)')
    if wrong:
        raise CropCacheError(
            f'{ann_path}: {len(wrong)} crop(s) under {img_root} are not the '
            f'ones the cache wrote: {_describe(wrong, 3)}; '
            + _rebuild(command)
        )


def _check_margin(ann_path, info, pipeline, command) -> None:
    try:
        reach = augmentation_margin(pipeline)
    except ValueError as e:
        warnings.warn(
            f'{ann_path}: the margin of the face-crop cache '
            f'({info["margin"]:g} box sides) is not compared with the '
            f'training pipeline: {e}',
            stacklevel=2,
        )
        return
    if float(info['margin']) < reach * (1 - 1e-6):
        raise CropCacheError(
            f'{ann_path}: the cache holds {info["margin"]:g} box sides '
            f'around each face, but the training pipeline reaches '
            f'{reach:.4g} box sides (padding, shift, scale, rotation): '
            'augmented crops would read black beyond the cached square; '
            "rebuild it with the pipeline's margin: "
            + _without_margin(command)
        )


def _npy_header(path: str, command: str) -> Tuple[tuple, np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file, read from its
    header; refuses anything ``np.load`` would need pickle for, a Fortran
    order, or a file shorter or longer than its header says."""
    fmt = np.lib.format
    try:
        with open(path, 'rb') as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f'unsupported .npy version {version}')
            offset = f.tell()
    except (OSError, ValueError, EOFError) as e:
        raise CropCacheError(
            f'{path}: not a readable .npy crop array ({e}); '
            + _rebuild(command)
        ) from None
    if dtype.hasobject or fortran:
        what = 'Python objects' if dtype.hasobject else 'a Fortran array'
        raise CropCacheError(
            f"{path}: holds {what}, not the crop cache's uint8 rows; "
            + _rebuild(command)
        )
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    actual = osp.getsize(path)
    if actual != expected:
        what = 'truncated' if actual < expected else 'longer than its data'
        raise CropCacheError(
            f'{path}: {actual} bytes, but its header ({shape}, {dtype}) '
            f'needs {expected}: the file is {what}; ' + _rebuild(command)
        )
    return tuple(shape), dtype, offset


def check_crop_array(array_path: str, ann_path: str) -> dict:
    """Checks a crop array and its index against the annotation file.

    Refuses, naming the file, what differs and the command that rebuilds
    it: an index that is not the cache's or has no fingerprint; a file that
    is not a ``.npy`` array, is truncated, or whose shape or dtype differ
    from the index's (N, 3, size, size) uint8; an annotation file changed
    since the array was packed (its SHA-256); ids that are not the
    annotation file's in its order; rows other than those packed (a hash
    of three rows).

    Args:
        array_path: The ``.npy`` file.
        ann_path: The annotation file the array is read with.

    Returns:
        The index.

    Raises:
        FileNotFoundError: No array or no index.
        CropCacheError: On any mismatch.
    """
    index = crop_array_index(array_path)
    generic = _with_array(make_cache_command('DIR', [], array=True))
    if not (osp.isfile(array_path) and osp.isfile(index)):
        raise FileNotFoundError(
            f'crop array not found: {array_path} (and its index {index}); '
            f"write it with {generic}, or use source='decode'"
        )
    meta = _read_json(index, 'crop array index', generic)
    if not isinstance(meta, dict) or meta.get('description') != ARRAY_TAG:
        raise CropCacheError(
            f'{index}: not a crop array index written by the crop cache; '
            + _rebuild(generic)
        )
    command = meta.get('command') or generic
    missing = [k for k in _ARRAY_FINGERPRINT if k not in meta]
    if missing:
        raise CropCacheError(
            f'{index}: this crop array was written without a fingerprint '
            f'of its annotation file (no {missing[0]}), so rows may not '
            "be the annotations' crops; " + _rebuild(command)
        )
    ids, size = meta.get('ids'), meta.get('size')
    want = [len(ids or []), 3, size, size]
    if meta['shape'] != want or meta['dtype'] != 'uint8':
        raise CropCacheError(
            f'{index}: says shape {meta["shape"]} {meta["dtype"]}, but its '
            f'{len(ids or [])} ids and size {size} make {want} uint8: the '
            'index was edited; ' + _rebuild(command)
        )
    shape, dtype, _ = _npy_header(array_path, command)
    if list(shape) != want or dtype != np.uint8:
        raise CropCacheError(
            f'{array_path}: shape {list(shape)} {dtype}, but its index '
            f'{index} says {want} uint8; the array and the index are not a '
            'pair; ' + _rebuild(command)
        )
    if file_sha256(ann_path) != meta['annotation_sha256']:
        raise CropCacheError(
            f'{array_path}: packed from another version of {ann_path} (its '
            "SHA-256 differs from the index's annotation_sha256); its rows "
            'are stale; ' + _rebuild(command)
        )
    data = _read_json(ann_path, 'annotation file', command)
    order = [a.get('id', n) for n, a in enumerate(data.get('annotations'))]
    if order != ids:
        at = next(
            (n for n, (a, b) in enumerate(zip(order, ids)) if a != b),
            min(len(order), len(ids)),
        )
        raise CropCacheError(
            f'{index}: its ids are not those of {ann_path} in order (row '
            f'{at}: id {ids[at] if at < len(ids) else None}, the '
            f'annotation: {order[at] if at < len(order) else None}); rows '
            'would pair with the wrong faces; ' + _rebuild(command)
        )
    try:
        array = np.load(array_path, mmap_mode='r')
        sample = _array_sample_sha256(array)
    except (OSError, ValueError) as e:
        raise CropCacheError(
            f'{array_path}: cannot be read ({e}); ' + _rebuild(command)
        ) from None
    if sample != meta['sample_sha256']:
        raise CropCacheError(
            f'{array_path}: its rows are not the ones packed with {index} '
            '(the hash of rows 0, N/2 and N-1 differs): another array of '
            'the same shape; ' + _rebuild(command)
        )
    return meta


def open_crop_array(path: str, shape: Sequence[int], command: str):
    """``np.load(path, mmap_mode='c')``, its errors naming the file and the
    rebuild command, and its shape checked against the index's."""
    try:
        array = np.load(path, mmap_mode='c')
    except (OSError, ValueError, EOFError) as e:
        raise CropCacheError(
            f'{path}: cannot be opened as a crop array ({e}); '
            + _rebuild(command)
        ) from None
    if list(array.shape) != list(shape) or array.dtype != np.uint8:
        raise CropCacheError(
            f'{path}: shape {list(array.shape)} {array.dtype}, not the '
            f'{list(shape)} uint8 its index says; the file changed while '
            'training; ' + _rebuild(command)
        )
    return array


def is_crop_cache_file(path: str) -> bool:
    """Whether an annotation file looks like the cache's: its tag within
    its first megabyte (the cache writes ``info`` first; a cache of any
    version has it before ``images``). Reads no more than that."""
    try:
        with open(path, 'rb') as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    return CACHE_TAG.encode() in head


def check_crop_caches(cfg, splits: Sequence[str]) -> None:
    """:func:`check_crop_cache` for every dataset of ``cfg`` in ``splits``
    whose annotation file is a face-crop cache's, against its own
    pipeline (``tools/train.py`` and ``tools/test.py`` run it with the data
    pre-check).

    Raises:
        CropCacheError: A stale or edited cache, or one whose margin is
            smaller than its pipeline's reach.
    """
    from mmaniso.datasets.checks import _dataset_cfgs, expected_files

    seen = set()
    for split, ds in _dataset_cfgs(cfg):
        if split not in splits:
            continue
        ann, _ = expected_files(ds)
        pipeline = ds.get('pipeline')
        key = (ann, repr(pipeline))
        if not ann or key in seen or not is_crop_cache_file(ann):
            continue
        seen.add(key)
        check_crop_cache(ann, pipeline=pipeline)


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
    'CropCacheError',
    'augmentation_margin',
    'check_crop_array',
    'check_crop_cache',
    'check_crop_caches',
    'crop_array_index',
    'crop_array_paths',
    'crop_window',
    'cut_crop',
    'face_box',
    'file_sha256',
    'is_crop_cache_file',
    'image_stamp',
    'make_cache_command',
    'move_annotation',
    'open_crop_array',
    'pipeline_margin_of',
    'write_crop_array',
    'write_crop_cache',
]
