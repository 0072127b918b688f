"""Records what facenet-pytorch's own MTCNN finds on a few images, so that
tests can check :class:`mmaniso.deploy.face_detector.MTCNNFaceDetector`
against it without the package's code.

    python tools/misc/record_mtcnn_reference.py \
        [--out tests/deploy/mtcnn_reference.json]

Needs ``facenet-pytorch`` importable, which it is not in mmaniso's default
stack (it pins torch < 2.3 and numpy < 2): run it in an environment of its
own, e.g. torch 2.1.2, torchvision 0.16.2, numpy 1.26.4 with mmaniso
installed and ``pip install --no-deps facenet-pytorch==2.6.0 tqdm``.

The images are built from matplotlib's ``grace_hopper.jpg`` with integer
numpy operations only (:func:`reference_images`), so the test rebuilds them
bit for bit wherever matplotlib is installed; the JSON keeps each image's
SHA-256 to tell if not. For each case it keeps the settings, the boxes (as
the package gives them, not clipped), the probabilities and the five
points, best first (``select_largest=False``).
"""

import argparse
import hashlib
import json
import os.path as osp
from typing import Dict, Tuple

import cv2
import numpy as np

DEFAULT_OUT = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
    'tests',
    'deploy',
    'mtcnn_reference.json',
)
# name: (image, min_face, thresholds)
CASES = (
    ('grace_hopper', 'grace_hopper', 20, (0.6, 0.7, 0.7)),
    ('face_cut_by_the_top_edge', 'top_edge', 20, (0.6, 0.7, 0.7)),
    ('grey_scene_91_and_61_px', 'scene', 20, (0.6, 0.7, 0.7)),
    ('grey_scene_min_face_40_low_thr', 'scene', 40, (0.5, 0.6, 0.6)),
)


# As detection_rate.py's photograph(): this recorder runs apart from
# mmaniso (module docstring), so it imports nothing of the tools'.
def photograph() -> str:
    import matplotlib

    return osp.join(
        osp.dirname(matplotlib.__file__),
        'mpl-data',
        'sample_data',
        'grace_hopper.jpg',
    )


def _shrink(image: np.ndarray, k: int) -> np.ndarray:
    """Block mean over k x k pixels, rounded (exact in float64)."""
    h, w = image.shape[0] // k * k, image.shape[1] // k * k
    blocks = image[:h, :w].reshape(h // k, k, w // k, k, 3)
    return np.floor(blocks.mean((1, 3)) + 0.5).astype(np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    b, g, r = (image[..., i].astype(np.int64) for i in range(3))
    y = ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)
    return np.repeat(y[..., None], 3, 2)


def reference_images() -> Dict[str, np.ndarray]:
    """The recorded images, BGR uint8, by name.

    ``grace_hopper``: the photograph (512x600, one face about 182 px).
    ``top_edge``: its lower part, the forehead cut by the top edge (the
    face's box sticks out of the image, so the crops of R-Net and O-Net
    are clipped). ``scene``: a grey 1024x817
    scene, as a press photograph, with her head shrunk to a face of about
    91 px and, mirrored, about 61 px, on a plain striped background.
    """
    photo = cv2.imread(photograph(), cv2.IMREAD_COLOR)
    if photo is None:
        raise FileNotFoundError(f'cannot read {photograph()}')
    ys, xs = np.mgrid[0:817, 0:1024]
    level = 90 + ys * 80 // 817 + ((xs // 24 + ys // 40) % 2) * 8
    scene = np.repeat(level.astype(np.uint8)[..., None], 3, 2)
    head = photo[40:440, 90:440]  # the face is x 174-356, y 120-340
    big, small = _shrink(head, 2), _shrink(head[:, ::-1], 3)
    scene[200 : 200 + len(big), 150 : 150 + big.shape[1]] = big
    scene[430 : 430 + len(small), 700 : 700 + small.shape[1]] = small
    return {
        'grace_hopper': photo,
        'top_edge': np.ascontiguousarray(photo[150:]),
        'scene': _grey(scene),
    }


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def run_reference(
    image_bgr: np.ndarray, min_face: float, thresholds: Tuple[float, ...]
) -> dict:
    """facenet-pytorch's MTCNN.detect on the image, as plain lists."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(
        min_face_size=min_face,
        thresholds=list(thresholds),
        keep_all=True,
        select_largest=False,
    )
    rgb = np.ascontiguousarray(image_bgr[..., ::-1])
    boxes, probs, points = mtcnn.detect(rgb, landmarks=True)
    if boxes is None:
        boxes, probs, points = np.zeros((0, 4)), [], np.zeros((0, 5, 2))
    return dict(
        boxes=np.asarray(boxes, np.float64).round(4).tolist(),
        probs=np.asarray(probs, np.float64).round(6).tolist(),
        points=np.asarray(points, np.float64).round(4).tolist(),
    )


def _dist_version(name: str) -> str:
    """An installed distribution's version, from its dist-info folder."""
    import glob
    import site

    for folder in site.getsitepackages():
        found = glob.glob(osp.join(folder, f'{name}-*.dist-info'))
        if found:
            return osp.basename(found[0])[len(name) + 1 : -len('.dist-info')]
    return 'unknown'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    images = reference_images()
    cases = []
    for name, image, min_face, thresholds in CASES:
        result = run_reference(images[image], min_face, thresholds)
        cases.append(
            dict(
                name=name,
                image=image,
                sha256=digest(images[image]),
                size=list(images[image].shape[1::-1]),
                min_face=min_face,
                thresholds=list(thresholds),
                **result,
            )
        )
        print(
            f'{name}: {len(result["boxes"])} face(s), probs '
            f'{[round(p, 4) for p in result["probs"]]}'
        )
    versions = {
        'facenet-pytorch': _dist_version('facenet_pytorch'),
        'torch': _dist_version('torch'),
        'numpy': _dist_version('numpy'),
        'opencv-python': _dist_version('opencv_python'),
    }
    with open(args.out, 'w') as f:
        json.dump(
            dict(
                producer='python tools/misc/record_mtcnn_reference.py',
                versions=versions,
                cases=cases,
            ),
            f,
            indent=1,
        )
        f.write('\n')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
