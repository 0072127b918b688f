"""How the default face detector of tools/infer.py does on real photographs
and on scenes made from them: faces found, missed and false, per image.

    python tools/misc/detection_rate.py [IMAGE ...] [--truth FILE]
        [--min-face 20] [--det-thr 0.6 0.7 0.7] [--score-thr 0.9]
        [--device cpu] [--out FILE.json]

Without images it runs every case it can build from photographs that
installed packages ship (nothing is downloaded):

- matplotlib's ``sample_data/grace_hopper.jpg`` (a studio portrait, one
  face; matplotlib is a dependency, so this is always there);
- when ``scikit-image`` is installed, the photographs bundled in its wheel
  (``skimage/data``, read as files, the package is not imported):
  ``astronaut.png`` (one face), ``camera.png`` (one face, grey, in profile,
  outdoors) and five photographs with no face (``coffee.png``,
  ``chelsea.png`` (a cat), ``rocket.jpg``, ``motorcycle_left.png``,
  ``hubble_deep_field.jpg``);
- synthetic scenes, 1024x817 as a press photograph: heads cut from those
  portraits, shrunk so that the face is 40 to 140 px wide and blended into
  a background (``camera.png``'s outdoor scene when scikit-image is there,
  otherwise a procedural one): one small face, grey, faded (contrast cut
  to 0.3 about the mean), rotated, JPEG compressed, several faces.

A face counts as found when a kept detection's centre is within 30% of the
face's side from the true centre and its side is 0.6 to 1.6 times the true
one; every other kept detection is false. The true boxes of the real
photographs are written below (they are the boxes MTCNN gives on the
original photograph, checked by eye); a scene's are its pasted faces'.
``--truth FILE`` gives true boxes for the images given, in the format of
``tools/infer.py --boxes``; without it only the faces found are counted.
"""

import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

# The face boxes of the real photographs (x1, y1, x2, y2).
TRUTH = {
    'grace_hopper.jpg': [[174, 120, 356, 340]],
    'astronaut.png': [[181, 62, 268, 172]],
    'camera.png': [[199, 119, 254, 192]],
    'coffee.png': [],
    'chelsea.png': [],
    'rocket.jpg': [],
    'motorcycle_left.png': [],
    'hubble_deep_field.jpg': [],
}
SKIMAGE_PHOTOS = [name for name in TRUTH if name != 'grace_hopper.jpg']
SCENE_SIZE = (817, 1024)  # height, width: the press photograph


def photograph() -> str:
    """matplotlib's grace_hopper.jpg, present wherever mmaniso is."""
    import matplotlib

    return osp.join(
        osp.dirname(matplotlib.__file__),
        'mpl-data',
        'sample_data',
        'grace_hopper.jpg',
    )


def skimage_data() -> Optional[str]:
    """The folder of scikit-image's bundled photographs, or None."""
    try:
        import skimage
    except ImportError:
        return None
    folder = osp.join(osp.dirname(skimage.__file__), 'data')
    return folder if osp.isfile(osp.join(folder, 'astronaut.png')) else None


def read(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f'error: cannot read {path} as an image')
    return image


def real_photographs() -> Dict[str, Tuple[np.ndarray, List[list]]]:
    """The real photographs found, by file name, with their face boxes."""
    out = {'grace_hopper.jpg': (read(photograph()), TRUTH['grace_hopper.jpg'])}
    folder = skimage_data()
    for name in SKIMAGE_PHOTOS if folder else []:
        path = osp.join(folder, name)
        if osp.isfile(path):
            out[name] = (read(path), TRUTH[name])
    return out


def background(height: int, width: int) -> np.ndarray:
    """A scene without faces: scikit-image's camera.png, right of the
    cameraman (sky, buildings, grass), or a procedural one without it."""
    folder = skimage_data()
    if folder:
        camera = read(osp.join(folder, 'camera.png'))[:, 300:]
        return cv2.resize(camera, (width, height), cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = 170 - 60 * ys / height + 12 * np.sin(xs / 37.0) * np.cos(ys / 23.0)
    grain = np.random.default_rng(0).normal(0, 6, (height, width))
    grey = np.clip(sky + grain, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, 2)


def head(image: np.ndarray, box: list) -> Tuple[np.ndarray, list]:
    """The head around a face box: the face and 60% of its side around it
    (clipped to the photograph), and the face's box in that crop."""
    x1, y1, x2, y2 = box
    m = 0.6 * (x2 - x1)
    h, w = image.shape[:2]
    cx1, cy1 = int(max(x1 - m, 0)), int(max(y1 - m, 0))
    cx2, cy2 = int(min(x2 + m, w)), int(min(y2 + m, h))
    return image[cy1:cy2, cx1:cx2], [x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1]


def paste(
    scene: np.ndarray,
    crop: np.ndarray,
    face: list,
    side: float,
    centre: Tuple[float, float],
) -> list:
    """Blends ``crop`` into ``scene`` (in place), scaled so that its face is
    ``side`` px wide, the face centred at ``centre``, through an elliptic
    soft mask. Returns the face's box in the scene."""
    f = side / (face[2] - face[0])
    small = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    fx1, fy1, fx2, fy2 = (v * f for v in face)
    ox = int(round(centre[0] - (fx1 + fx2) / 2))
    oy = int(round(centre[1] - (fy1 + fy2) / 2))
    h, w = small.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(
        mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 1.0, -1
    )
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.06 * w))[..., None]
    sh, sw = scene.shape[:2]
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + w, sw), min(oy + h, sh)
    region = scene[y0:y1, x0:x1].astype(np.float32)
    part = small[y0 - oy : y1 - oy, x0 - ox : x1 - ox].astype(np.float32)
    a = mask[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    scene[y0:y1, x0:x1] = (
        (a * part + (1 - a) * region).round().astype(np.uint8)
    )
    return [ox + fx1, oy + fy1, ox + fx2, oy + fy2]


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(
        cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR
    )


def rotate(image: np.ndarray, boxes: List[list], angle: float):
    """The image rotated by ``angle`` degrees about its centre, and the
    boxes' centres moved with it (sizes kept)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    out = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    moved = []
    for x1, y1, x2, y2 in boxes:
        cx, cy = matrix @ np.array([(x1 + x2) / 2, (y1 + y2) / 2, 1.0])
        s = (x2 - x1) / 2
        moved.append(
            [
                cx - s,
                cy - s * (y2 - y1) / (x2 - x1),
                cx + s,
                cy + s * (y2 - y1) / (x2 - x1),
            ]
        )
    return out, moved


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    data = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data[1], cv2.IMREAD_COLOR)


def scenes(
    photos: Dict[str, Tuple[np.ndarray, List[list]]],
) -> Dict[str, Tuple[np.ndarray, List[list]]]:
    """Synthetic scenes, 1024x817, by name, with their faces' boxes."""
    height, width = SCENE_SIZE
    image, truth = photos['grace_hopper.jpg']
    gh = head(image, truth[0])
    heads = [
        gh,
        (
            cv2.flip(gh[0], 1),
            [
                gh[0].shape[1] - gh[1][2],
                gh[1][1],
                gh[0].shape[1] - gh[1][0],
                gh[1][3],
            ],
        ),
    ]
    if 'astronaut.png' in photos:
        image, truth = photos['astronaut.png']
        heads.append(head(image, truth[0]))
    where = 'camera bg' if skimage_data() else 'procedural bg'

    def scene(faces):
        out = background(height, width)
        boxes = [
            paste(out, *heads[i % len(heads)], side, centre)
            for i, (side, centre) in enumerate(faces)
        ]
        return out, boxes

    cases = {}
    for side in (40, 60, 90):
        cases[f'one face {side} px, {where}'] = scene([(side, (330, 420))])
    image, boxes = scene([(90, (300, 330)), (60, (760, 520))])
    cases[f'press-like: grey, JPEG 75, 90 + 60 px, {where}'] = (
        jpeg(grey(image), 75),
        boxes,
    )
    image, boxes = scene([(45, (300, 330)), (70, (760, 520))])
    image = grey(image).astype(np.float32)
    image = (image - image.mean()) * 0.3 + image.mean()
    cases[f'faded: grey, contrast x0.3, 45 + 70 px, {where}'] = (
        jpeg(image.clip(0, 255).round().astype(np.uint8), 75),
        boxes,
    )
    for angle in (25, -25):
        image, boxes = scene([(90, (420, 360)), (60, (640, 470))])
        cases[f'rotated {angle} deg, 90 + 60 px, {where}'] = rotate(
            image, boxes, angle
        )
    image, boxes = scene(
        [
            (40, (120, 150)),
            (50, (900, 140)),
            (70, (520, 300)),
            (100, (220, 600)),
            (140, (800, 600)),
        ]
    )
    cases[f'five faces 40-140 px, {where}'] = (image, boxes)
    cases[f'five faces, grey, JPEG 30, {where}'] = (
        jpeg(grey(image), 30),
        boxes,
    )
    return cases


def match(boxes: np.ndarray, truth: List[list]) -> Tuple[int, int, int]:
    """Found, missed, false: ``boxes`` (best first) against true boxes."""
    free = list(range(len(truth)))
    found = 0
    for x1, y1, x2, y2 in boxes:
        side, centre = x2 - x1, np.array([x1 + x2, y1 + y2]) / 2
        for j in free:
            t = truth[j]
            t_side = t[2] - t[0]
            t_centre = np.array([t[0] + t[2], t[1] + t[3]]) / 2
            near = np.abs(centre - t_centre).max() <= 0.3 * t_side
            if near and 0.6 <= side / t_side <= 1.6:
                free.remove(j)
                found += 1
                break
    return found, len(truth) - found, len(boxes) - found


def parse_args(argv=None):
    from mmaniso.deploy.face_detector import (
        DEFAULT_MIN_FACE,
        DEFAULT_THRESHOLDS,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('images', nargs='*')
    parser.add_argument('--truth', help='JSON of true face boxes per image')
    parser.add_argument('--min-face', type=float, default=DEFAULT_MIN_FACE)
    # The detector's flag, as tools/infer.py offers it: each tool its own.
    parser.add_argument(
        '--det-thr',
        type=float,
        nargs=3,
        default=list(DEFAULT_THRESHOLDS),
        metavar=('PNET', 'RNET', 'ONET'),
    )
    parser.add_argument('--score-thr', type=float, default=0.9)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='also write the rows as JSON here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmaniso.deploy.face_detector import MTCNNFaceDetector
    from mmaniso.utils.output_paths import refuse_writing_inputs

    refuse_writing_inputs(
        [('--out', args.out)],
        [('the image', path) for path in args.images]
        + [('the --truth file', args.truth)],
        fix='name another --out file',
    )

    detector = MTCNNFaceDetector(
        args.device, min_face=args.min_face, thresholds=args.det_thr
    )
    if args.images:
        truth = {}
        if args.truth:
            from mmaniso.deploy.inference import read_boxes_file

            try:
                truth = read_boxes_file(args.truth)
            except ValueError as e:
                raise SystemExit(f'error: {e}') from None
        cases = {}
        for path in args.images:
            boxes = truth.get(path, truth.get(osp.basename(path)))
            cases[path] = (read(path), boxes)
    else:
        cases = real_photographs()
        cases.update(scenes(cases))
    print(f'{detector}, faces kept at score >= {args.score_thr:g}')
    print()
    print('| image | size | faces | found | missed | false | scores |')
    print('|---|---|---|---|---|---|---|')
    rows = {}
    totals = np.zeros(4, int)
    for name, (image, truth) in cases.items():
        boxes, scores = detector(image)
        keep = scores >= args.score_thr
        boxes, scores = boxes[keep], scores[keep]
        listed = ', '.join(f'{s:.3f}' for s in scores)
        size = f'{image.shape[1]}x{image.shape[0]}'
        if truth is None:
            rows[name] = dict(kept=len(boxes))
            print(f'| {name} | {size} | ? | {len(boxes)} | ? | ? | {listed} |')
            continue
        found, missed, false = match(boxes, truth)
        rows[name] = dict(
            faces=len(truth),
            found=found,
            missed=missed,
            false=false,
            scores=[round(float(s), 4) for s in scores],
        )
        totals += [len(truth), found, missed, false]
        print(
            f'| {name} | {size} | {len(truth)} | {found} | {missed} | '
            f'{false} | {listed} |'
        )
    if len(rows) > 1 and totals[0]:
        print(
            f'| **all** | | {totals[0]} | {totals[1]} | {totals[2]} | '
            f'{totals[3]} | |'
        )
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(detector=repr(detector), rows=rows), f, indent=1)
    sys.stdout.flush()
    return rows


if __name__ == '__main__':
    main()
