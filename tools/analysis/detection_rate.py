"""How the default face detector of tools/infer.py does on real photographs.

    python tools/analysis/detection_rate.py [IMAGE ...] [--score-thr 0.9]
        [--device cpu]

Without images it uses the one real photograph of the installed stack,
matplotlib's ``sample_data/grace_hopper.jpg`` (one face), and variants of
it (mirrored, scaled, rotated, grey, heavily compressed, two side by side),
and prints a Markdown table: faces found per image and their scores. Given
images are reported as they are.
"""

import argparse
import os.path as osp

import cv2
import numpy as np


def photograph() -> str:
    import matplotlib

    return osp.join(
        osp.dirname(matplotlib.__file__),
        'mpl-data',
        'sample_data',
        'grace_hopper.jpg',
    )


def variants(image: np.ndarray) -> dict:
    """The photograph and variants of it, by name (expected faces in
    brackets)."""
    h, w = image.shape[:2]

    def rotated(angle):
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        return cv2.warpAffine(image, matrix, (w, h))

    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    jpeg = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 10])[1]
    out = {'original (1)': image, 'mirrored (1)': cv2.flip(image, 1)}
    for f in (0.25, 0.5, 2.0):
        out[f'scale {f:g} (1)'] = cv2.resize(image, None, fx=f, fy=f)
    for angle in (20, -20, 40, -40):
        out[f'rotated {angle} deg (1)'] = rotated(angle)
    out['grey (1)'] = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    out['JPEG quality 10 (1)'] = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    out['two side by side (2)'] = np.concatenate(
        [image, cv2.flip(image, 1)], 1
    )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('images', nargs='*')
    parser.add_argument('--score-thr', type=float, default=0.9)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    from mmaniso.deploy.face_detector import MTCNNFaceDetector

    detector = MTCNNFaceDetector(args.device)
    if args.images:
        cases = {}
        for path in args.images:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise SystemExit(f'error: cannot read {path} as an image')
            cases[path] = image
    else:
        cases = variants(cv2.imread(photograph(), cv2.IMREAD_COLOR))
    print('| image | size | faces found | scores |')
    print('|---|---|---|---|')
    rows = {}
    for name, image in cases.items():
        _, scores = detector(image)
        scores = scores[scores >= args.score_thr]
        rows[name] = len(scores)
        listed = ', '.join(f'{s:.3f}' for s in scores)
        print(
            f'| {name} | {image.shape[1]}x{image.shape[0]} | {len(scores)} '
            f'| {listed} |'
        )
    return rows


if __name__ == '__main__':
    main()
