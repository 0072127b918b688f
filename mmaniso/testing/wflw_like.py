"""WFLW-sized photographs, generated: large JPEGs with one face each.

WFLW's, 300W's and AFLW's images are about 1000 px with a face box of a few
hundred pixels; the data loader's cost is decoding them. These stand-ins
have that size, a textured background whose JPEG decodes about as slowly,
and a SynthFace face pasted at a random place and size, annotated in
MMPose's WFLW layout (98 points, ``center`` / ``scale`` from the
landmarks' extent). For benchmarks and the GPU check, not for accuracy.
"""

import json
import os
import os.path as osp
from typing import Tuple

import numpy as np

from mmaniso.datasets.converters.coco import CATEGORIES, landmark_box


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth colour fields plus grain: about the entropy of a photograph,
    so that its JPEG decodes about as fast as a real one."""
    import cv2

    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    mid = rng.normal(0, 25, (h // 16, w // 16, 3)).astype(np.float32)
    img += cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)
    img += rng.normal(0, 9, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def wflw_like_image(
    rng: np.random.Generator,
    long_side: int = 1000,
    face_px: Tuple[int, int] = (200, 400),
) -> Tuple[np.ndarray, np.ndarray]:
    """One image and its face's 98 landmarks.

    Args:
        rng: Random generator.
        long_side: The image's longer side in pixels (the other is 0.66-1 ×).
        face_px: Range of the landmark box's longer side in pixels.

    Returns:
        The BGR image, shape (H, W, 3), and the landmarks in its pixels,
        shape (98, 2).
    """
    import cv2

    from mmaniso.synthface.renderer import render_face

    w = int(long_side)
    h = int(round(w * rng.uniform(0.66, 1.0)))
    img = _background(rng, h, w)
    sample = render_face(rng, 160)
    pts = sample.landmarks
    extent = float((pts.max(0) - pts.min(0)).max())
    target = rng.uniform(*face_px)
    size = max(8, int(round(160 * target / extent)))
    size = min(size, h, w)
    face = cv2.resize(
        sample.image, (size, size), interpolation=cv2.INTER_LINEAR
    )
    k = size / 160.0
    x0 = int(rng.integers(0, w - size + 1))
    y0 = int(rng.integers(0, h - size + 1))
    img[y0 : y0 + size, x0 : x0 + size] = face
    points = (pts + 0.5) * k - 0.5 + [x0, y0]
    return img, points


def write_wflw_like(
    root: str,
    num: int,
    split: str = 'train',
    seed: int = 0,
    long_side: int = 1000,
    face_px: Tuple[int, int] = (200, 400),
    quality: int = 90,
) -> str:
    """Writes ``num`` images under ``root/images/<split>/`` and their
    annotations as ``root/annotations/face_landmarks_wflw_<split>.json``.

    Returns:
        The annotation file's path.
    """
    import cv2

    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images', split), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, anns = [], []
    for i in range(num):
        img, points = wflw_like_image(rng, long_side, face_px)
        name = f'{split}/{i:06d}.jpg'
        cv2.imwrite(
            osp.join(root, 'images', name),
            img,
            [cv2.IMWRITE_JPEG_QUALITY, quality],
        )
        bbox, centre, scale = landmark_box(points)
        flat = np.concatenate([points, np.full((len(points), 1), 2.0)], 1)
        images.append(
            dict(
                id=i + 1,
                file_name=name,
                height=img.shape[0],
                width=img.shape[1],
            )
        )
        anns.append(
            dict(
                id=i + 1,
                image_id=i + 1,
                category_id=1,
                iscrowd=0,
                num_keypoints=len(points),
                keypoints=[round(float(v), 3) for v in flat.ravel()],
                bbox=[round(v, 3) for v in bbox],
                area=round(bbox[2] * bbox[3], 3),
                center=[round(v, 3) for v in centre],
                scale=round(scale, 6),
            )
        )
    path = osp.join(root, 'annotations', f'face_landmarks_wflw_{split}.json')
    with open(path, 'w') as f:
        json.dump(
            dict(images=images, annotations=anns, categories=CATEGORIES), f
        )
    return path


TRAIN_ANN = 'annotations/face_landmarks_wflw_train.json'


def add_photo_arguments(parser, default_config: str) -> None:
    """The command-line options of the feed benchmarks' generated photos:
    ``--images``, ``--rounds``, ``--long-side``, ``--face-px``,
    ``--max-size`` (of the cached crops), ``--config`` (default
    ``default_config``), ``--out-json``."""
    parser.add_argument('--images', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--long-side', type=int, default=1000)
    parser.add_argument(
        '--face-px',
        type=int,
        nargs=2,
        default=(200, 400),
        metavar=('MIN', 'MAX'),
    )
    parser.add_argument('--max-size', type=int, default=512)
    parser.add_argument('--config', default=default_config)
    parser.add_argument('--out-json', help='also write the figures here')


def write_photos_and_crops(
    root: str, args, margin: float
) -> Tuple[str, str, float, float]:
    """WFLW-like photographs under ``root/full`` and their face-crop cache
    (the given augmentation margin) under ``root/cache``, both with the
    annotation file :data:`TRAIN_ANN`, as the options of
    :func:`add_photo_arguments` (``args``) ask: ``images``, ``long_side``,
    ``face_px``, ``max_size`` (of the crops).

    Returns:
        The two data roots (photographs, crops) and the seconds taken to
        write the photographs and to cut the crops.
    """
    import time

    from mmaniso.datasets.crop_cache import write_crop_cache

    full, cache = osp.join(root, 'full'), osp.join(root, 'cache')
    start = time.perf_counter()
    write_wflw_like(
        full, args.images, long_side=args.long_side, face_px=args.face_px
    )
    made = time.perf_counter() - start
    start = time.perf_counter()
    write_crop_cache(
        full,
        [TRAIN_ANN],
        cache,
        margin,
        max_size=args.max_size,
        workers=1,
        progress=False,
    )
    return full, cache, made, time.perf_counter() - start


def dataset_at(dataset_cfg, root: str):
    """A copy of a training dataset config reading :data:`TRAIN_ANN` and
    ``images/`` under ``root``."""
    import copy

    cfg = copy.deepcopy(dataset_cfg)
    cfg.data_root, cfg.ann_file = root + '/', TRAIN_ANN
    cfg.data_prefix = dict(img='images/')
    return cfg
