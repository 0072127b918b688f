"""A tiny generated dataset in MMPose's WFLW (or 300W) JSON layout.

Tests and the quick demo write it at run time, so nothing large is committed:
a few images of drawn faces (the template of
:mod:`mmaniso.synthface.face_template` under a random similarity and small
jitter) and COCO-style annotations with the ``center``/``scale`` fields
MMPose's face datasets read.
"""

import json
import os
import os.path as osp
from typing import Dict, Optional

import cv2
import numpy as np

from mmaniso.datasets.layouts import LAYOUTS
from mmaniso.synthface.face_template import mean_face

# The part lists used only to draw the fixture's faces (index ranges in the
# 98-point layout); the anisotropic point types live in point_types.py.
_WFLW_STROKES = [
    (range(0, 33), False),
    (range(33, 42), True),
    (range(42, 51), True),
    (range(51, 55), False),
    (range(55, 60), False),
    (range(60, 68), True),
    (range(68, 76), True),
    (range(76, 88), True),
    (range(88, 96), True),
]

#: Annotation file name of each keypoint count: the WFLW, 300W and AFLW
#: layouts.
ANN_NAMES = {
    LAYOUTS[name].num_keypoints: LAYOUTS[name].ann_file
    for name in ('wflw', '300w', 'aflw')
}


def random_faces(
    num: int, num_keypoints: int, image_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Template faces under random similarities, shape (num, K, 2), pixels."""
    template = mean_face(num_keypoints)
    out = np.empty((num, num_keypoints, 2))
    for i in range(num):
        angle = rng.uniform(-0.35, 0.35)
        scale = image_size * rng.uniform(0.25, 0.33)
        rot = np.array(
            [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        )
        centre = image_size / 2 + rng.uniform(-0.06, 0.06, 2) * image_size
        jitter = rng.normal(0, 0.015, template.shape)
        out[i] = (template + jitter) @ rot.T * scale + centre
    return out


def draw_face(
    points: np.ndarray, image_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws a face's features as strokes on a noisy background (BGR)."""
    img = rng.integers(40, 90, (image_size, image_size, 3), dtype=np.uint8)
    skin = tuple(int(c) for c in rng.integers(120, 220, 3))
    hull = cv2.convexHull(points.astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(img, hull, skin)
    dense = points if len(points) == LAYOUTS['wflw'].num_keypoints else None
    if dense is not None:
        for idx, closed in _WFLW_STROKES:
            pts = dense[list(idx)].round().astype(np.int32)
            cv2.polylines(img, [pts], closed, (20, 20, 20), 1, cv2.LINE_AA)
    else:
        for p in points.round().astype(np.int32):
            cv2.circle(img, tuple(int(v) for v in p), 1, (20, 20, 20), -1)
    return img


def _annotation(ann_id: int, points: np.ndarray) -> dict:
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    centre = [(x0 + x1) / 2, (y0 + y1) / 2]
    side = max(x1 - x0, y1 - y0) * 1.25
    keypoints = np.concatenate([points, np.ones((len(points), 1))], 1)
    # Same fields as synthface/writer.py's record; the fixture's own: no
    # noise, every point visible.
    return dict(
        id=ann_id,
        image_id=ann_id,
        category_id=1,
        iscrowd=0,
        num_keypoints=len(points),
        keypoints=[round(float(v), 3) for v in keypoints.ravel()],
        bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        area=float((x1 - x0) * (y1 - y0)),
        center=[float(c) for c in centre],
        scale=float(side / 200.0),
        # AFLW's normalising box size, sqrt(w * h) of the face box.
        box_size=float(np.sqrt((x1 - x0) * (y1 - y0))),
    )


def write_face_fixture(
    root: str,
    splits: Optional[Dict[str, int]] = None,
    num_keypoints: int = 98,
    image_size: int = 96,
    seed: int = 0,
) -> Dict[str, str]:
    """Writes images and MMPose JSON annotations under ``root``.

    Args:
        root: The data root; ``images/`` and ``annotations/`` go below it.
        splits: Number of faces per split. Defaults to 8 train, 4 test.
        num_keypoints: 98 (WFLW layout), 68 (300W) or 19 (AFLW).
        image_size: Side of the square images in pixels.
        seed: Everything written is a function of the seed.

    Returns:
        The annotation file path of each split.
    """
    splits = splits or dict(train=8, test=4)
    if num_keypoints not in ANN_NAMES:
        raise ValueError(
            f'num_keypoints must be one of '
            f'{sorted(ANN_NAMES)}, got {num_keypoints}'
        )
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    paths = {}
    next_id = 0
    for split, num in splits.items():
        faces = random_faces(num, num_keypoints, image_size, rng)
        images, anns = [], []
        for points in faces:
            next_id += 1
            name = f'{split}_{next_id:05d}.png'
            cv2.imwrite(
                osp.join(root, 'images', name),
                draw_face(points, image_size, rng),
            )
            images.append(
                dict(
                    id=next_id,
                    file_name=name,
                    height=image_size,
                    width=image_size,
                )
            )
            anns.append(_annotation(next_id, points))
        coco = dict(
            images=images,
            annotations=anns,
            categories=[dict(id=1, name='face')],
        )
        path = osp.join(
            root, 'annotations', ANN_NAMES[num_keypoints].format(split=split)
        )
        with open(path, 'w') as f:
            json.dump(coco, f)
        paths[split] = path
    return paths
