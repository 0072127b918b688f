"""SynthFace's writer: MMPose's JSON annotations and the images.

:func:`write_synthface` renders every image (:mod:`.renderer`), annotates
it with one of the along-curve noise models (:mod:`.noise`) and writes
MMPose's WFLW or 300W files; :func:`preview_grid` and :func:`summarise`
show what was written.
Everything is a function of ``(seed, split, index)``, so any number of
worker processes writes the same files.
"""

import json
import os
import os.path as osp
import zlib
from multiprocessing import get_all_start_methods, get_context
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmaniso.datasets.layouts import LAYOUTS, WFLW_TO_300W
from mmaniso.datasets.point_types import PointTypes, get_point_types

from .noise import SIGMA_C, annotation_noise, describe_noise
from .renderer import _ONE, _SHIFT, Sample, render_face

#: The layouts SynthFace writes (their facts are in ``LAYOUTS``).
SYNTHFACE_LAYOUTS = ('wflw', '300w')
#: The flags of each annotation's ``attributes``: WFLW's subset flags.
ATTRIBUTES = LAYOUTS['wflw'].subset_flags


def _split_code(split: str) -> int:
    return zlib.crc32(split.encode('utf-8'))


def sample_rngs(
    seed: int, split: str, index: int
) -> Tuple[np.random.Generator, np.random.Generator]:
    """The scene and noise generators of one image.

    Derived from ``(seed, split, index)`` only, so the output does not
    depend on how images are spread over processes; the noise has its own
    stream, so the WFLW and 300W layouts share their images.
    """
    seq = np.random.SeedSequence([seed, _split_code(split), index])
    scene, noise = seq.spawn(2)
    return np.random.default_rng(scene), np.random.default_rng(noise)


def _round(values: np.ndarray, digits: int = 3) -> List[float]:
    return [round(float(v), digits) for v in np.ravel(values)]


def make_annotation(
    ann_id: int,
    clean: np.ndarray,
    annotated: np.ndarray,
    hidden: np.ndarray,
    sample: Sample,
) -> dict:
    """The COCO-style annotation of one face.

    ``bbox``, ``center`` and ``scale`` come from the clean landmarks'
    extent (side = max(w, h), ``scale`` = side / 200, as in MMPose's WFLW
    and 300W files; the pipeline's ``GetBBoxCenterScale`` pads by 1.25).
    Visibility ``v`` is 2, or 1 for a point turned away or occluded: both
    count as labelled, as every WFLW point is.
    """
    x0, y0 = clean.min(0)
    x1, y1 = clean.max(0)
    w, h = float(x1 - x0), float(y1 - y0)
    v = np.where(hidden, 1, 2)[:, None]
    return dict(
        id=ann_id,
        image_id=ann_id,
        category_id=1,
        iscrowd=0,
        num_keypoints=len(clean),
        keypoints=_round(np.concatenate([annotated, v], 1)),
        keypoints_clean=_round(np.concatenate([clean, v], 1)),
        bbox=_round([x0, y0, w, h]),
        area=round(w * h, 3),
        center=_round([(x0 + x1) / 2, (y0 + y1) / 2]),
        scale=round(max(w, h) / 200.0, 6),
        box_size=round(float(np.sqrt(w * h)), 3),
        interocular=round(sample.interocular, 3),
        yaw=round(sample.pose[0], 2),
        pitch=round(sample.pose[1], 2),
        roll=round(sample.pose[2], 2),
        attributes=dict(sample.attributes),
    )


def _layout(layout: str) -> Tuple[int, str]:
    """Keypoint count and annotation file name of a SynthFace layout."""
    if layout not in SYNTHFACE_LAYOUTS:
        raise ValueError(
            f'layout must be one of {sorted(SYNTHFACE_LAYOUTS)}, got '
            f'{layout!r}'
        )
    return LAYOUTS[layout].num_keypoints, LAYOUTS[layout].ann_file


def synth_sample(
    seed: int,
    split: str,
    index: int,
    size: int = 128,
    layout: str = 'wflw',
    point_types: Optional[PointTypes] = None,
    sigmas: Tuple[Optional[float], Optional[float], float] = (
        None,
        None,
        SIGMA_C,
    ),
    noise: str = 'arc',
) -> Tuple[np.ndarray, dict]:
    """Renders image ``index`` of ``split`` and annotates it.

    Args:
        seed: The dataset seed.
        split: The split name (``'train'``, ``'test'``).
        index: 0-based image index within the split.
        size: Image side in pixels.
        layout: ``'wflw'`` (98 points) or ``'300w'`` (68 points).
        point_types: The layout's point types (looked up when None).
        sigmas: ``(sigma_t, sigma_n, sigma_c)`` as fractions of ``d``;
            ``None`` for the model's default (see :func:`annotation_noise`).
        noise: The annotation model, one of
            :data:`~mmaniso.synthface.noise.NOISE_MODELS`.

    Returns:
        The BGR image and its annotation (``id`` is ``index + 1``).
    """
    _layout(layout)
    pt = point_types or get_point_types(layout)
    scene_rng, noise_rng = sample_rngs(seed, split, index)
    sample = render_face(scene_rng, size)
    clean, hidden = sample.landmarks, sample.hidden
    if layout == '300w':
        clean, hidden = clean[WFLW_TO_300W], hidden[WFLW_TO_300W]
    annotated = annotation_noise(
        clean, pt, noise_rng, sample.interocular, *sigmas, noise=noise
    )
    ann = make_annotation(index + 1, clean, annotated, hidden, sample)
    return sample.image, ann


def image_name(split: str, index: int) -> str:
    """File name of image ``index`` of ``split``, under ``images/``."""
    return f'{split}_{index + 1:05d}.jpg'


def _init_worker() -> None:
    # One OpenCV thread per process: the processes already fill the cores.
    cv2.setNumThreads(1)


def _work(args) -> dict:
    out_dir, seed, split, index, size, layout, pt, sigmas, noise = args
    image, ann = synth_sample(
        seed, split, index, size, layout, pt, sigmas, noise
    )
    name = image_name(split, index)
    cv2.imwrite(
        osp.join(out_dir, 'images', name),
        image,
        [cv2.IMWRITE_JPEG_QUALITY, 95],
    )
    return ann


def write_synthface(
    out_dir: str,
    splits: Optional[Dict[str, int]] = None,
    size: int = 128,
    layout: str = 'wflw',
    seed: int = 0,
    workers: int = 1,
    sigma_t: Optional[float] = None,
    sigma_n: Optional[float] = None,
    sigma_c: float = SIGMA_C,
    progress: bool = True,
    noise: str = 'arc',
) -> Dict[str, str]:
    """Renders SynthFace and writes MMPose's JSON annotations.

    Writes ``out_dir/images/<split>_NNNNN.jpg`` and
    ``out_dir/annotations/face_landmarks_<layout>_<split>.json``.

    Args:
        out_dir: The data root.
        splits: Images per split. Defaults to 2,000 train and 500 test.
        size: Image side in pixels (at least 32).
        layout: ``'wflw'`` (98 points) or ``'300w'`` (68 points).
        seed: Everything written is a function of the seed.
        workers: Processes that render images; the output does not depend
            on it.
        sigma_t: Along-curve noise std, as a fraction of ``d``; the
            model's default when None (0.06; calibrated per curve group
            for ``'300w'``, which takes none).
        sigma_n: Across-curve noise std, as a fraction of ``d``; likewise
            (0.01).
        sigma_c: Corner and isolated-point noise std, as a fraction of
            ``d``.
        progress: Whether to show a progress bar.
        noise: The annotation model, one of
            :data:`~mmaniso.synthface.noise.NOISE_MODELS`; the default
            ``'arc'`` writes what SynthFace always wrote.

    Returns:
        The annotation file of each split.
    """
    num_keypoints, ann_name = _layout(layout)
    splits = dict(train=2000, test=500) if splits is None else splits
    for split, num in splits.items():
        if not isinstance(num, int) or num < 0:
            raise ValueError(
                f'split {split!r} needs a non-negative image count, got '
                f'{num!r}'
            )
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    if size < 32:
        raise ValueError(f'size must be at least 32 pixels, got {size}')
    if workers < 1:
        raise ValueError(f'workers must be at least 1, got {workers}')
    # Checks the model and its sigmas before anything is rendered.
    record = describe_noise(noise, sigma_t, sigma_n, sigma_c)
    pt = get_point_types(layout)
    sigmas = tuple(
        None if s is None else float(s) for s in (sigma_t, sigma_n, sigma_c)
    )
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    jobs = [
        (out_dir, seed, split, i, size, layout, pt, sigmas, noise)
        for split, num in splits.items()
        for i in range(num)
    ]
    from tqdm import tqdm

    bar = tqdm(
        total=len(jobs), desc='SynthFace', unit='img', disable=not progress
    )
    anns: List[dict] = []
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            anns.append(_work(job))
            bar.update()
    else:
        # Not fork: a forked child inherits the locks of the parent's
        # OpenCV and OpenMP thread pools and can deadlock on them. The
        # fork server imports this module once, then forks clean workers.
        if 'forkserver' in get_all_start_methods():
            ctx = get_context('forkserver')
            ctx.set_forkserver_preload([__name__])
        else:
            ctx = get_context('spawn')
        with ctx.Pool(workers, _init_worker) as pool:
            for ann in pool.imap(_work, jobs, chunksize=8):
                anns.append(ann)
                bar.update()
    bar.close()

    info = dict(
        description='SynthFace: rendered faces with along-curve '
        'annotation noise (mmaniso)',
        layout=layout,
        num_keypoints=num_keypoints,
        seed=seed,
        image_size=size,
        noise=dict(
            record,
            d='frontal outer-eye-corner distance at the face scale '
            '(annotation field interocular)',
        ),
        point_types=pt.to_dict(),
        keypoints_clean='the exact landmarks, [x, y, v] * K',
        visibility='v = 2 visible, 1 turned away or under an occluder',
    )
    paths, start = {}, 0
    for split, num in splits.items():
        split_anns = anns[start : start + num]
        start += num
        images = [
            dict(
                id=ann['image_id'],
                file_name=image_name(split, i),
                height=size,
                width=size,
            )
            for i, ann in enumerate(split_anns)
        ]
        coco = dict(
            info=dict(info, split=split),
            images=images,
            annotations=split_anns,
            categories=[dict(id=1, name='face', supercategory='face')],
        )
        path = osp.join(out_dir, 'annotations', ann_name.format(split=split))
        with open(path, 'w') as f:
            json.dump(coco, f)
        paths[split] = path
    return paths


def preview_grid(
    data_root: str,
    ann_file: str,
    out_file: str,
    num: int = 16,
    cell: int = 192,
) -> str:
    """Saves a grid of the first images with clean (green) and annotated
    (red) landmarks.

    Args:
        data_root: The data root with ``images/``.
        ann_file: The annotation file, relative to ``data_root`` or
            absolute.
        out_file: Where to write the PNG.
        num: How many images (a square grid, filled row by row).
        cell: Side of each grid cell in pixels.

    The PNG has a 256-colour palette, which keeps it small enough for the
    documentation.

    Returns:
        ``out_file``.
    """
    path = ann_file if osp.isabs(ann_file) else osp.join(data_root, ann_file)
    with open(path) as f:
        coco = json.load(f)
    names = {img['id']: img['file_name'] for img in coco['images']}
    anns = coco['annotations'][:num]
    cols = int(np.ceil(np.sqrt(max(len(anns), 1))))
    rows = int(np.ceil(len(anns) / cols))
    grid = np.zeros((rows * cell, cols * cell, 3), np.uint8)
    for n, ann in enumerate(anns):
        img = cv2.imread(osp.join(data_root, 'images', names[ann['image_id']]))
        k = cell / img.shape[0]
        img = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_CUBIC)
        for field, colour in (
            ('keypoints_clean', (0, 220, 0)),
            ('keypoints', (0, 0, 255)),
        ):
            pts = np.asarray(ann[field]).reshape(-1, 3)[:, :2]
            pts = (pts + 0.5) * k - 0.5
            for p in pts:
                c = tuple(int(v) for v in np.round(p * _ONE))
                cv2.circle(img, c, _ONE, colour, -1, cv2.LINE_AA, _SHIFT)
        r, c = divmod(n, cols)
        grid[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = img
    from PIL import Image

    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    rgb = Image.fromarray(np.ascontiguousarray(grid[..., ::-1]))
    palette = rgb.quantize(256, dither=Image.Dither.NONE)
    palette.save(out_file, format='PNG', optimize=True)
    return out_file


def summarise(paths: Dict[str, str]) -> Sequence[str]:
    """One line per annotation file: face count and attribute counts."""
    lines = []
    for split, path in paths.items():
        with open(path) as f:
            anns = json.load(f)['annotations']
        flags = ', '.join(
            f'{a} {sum(x["attributes"][a] for x in anns)}' for a in ATTRIBUTES
        )
        lines.append(f'{split}: {path} ({len(anns)} faces; {flags})')
    return lines
