"""Landmarks of the faces in new images, from a trained config.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...]
        [--boxes FILE] [--out-dir DIR] [--device cpu|cuda] [--batch-size N]
        [--onnx model.onnx] [--min-face 20] [--det-thr 0.6 0.7 0.7]
        [--score-thr 0.9] [--cfg-options k=v ...] [--overwrite]

INPUT: image files or folders of them (not recursive). Without ``--boxes``
the faces come from MTCNN, whose weights ship in the ``facenet-pytorch``
package (:mod:`mmaniso.deploy.face_detector` says why this detector):
nothing is downloaded. Its knobs: ``--min-face`` (px), the smallest face
side searched for; ``--det-thr``, the score thresholds of its three
stages (P-Net, R-Net, O-Net; lower finds more faces, and more false ones);
``--score-thr``, the final score a face needs to be kept (it can only
drop faces that O-Net passed: below the third ``--det-thr`` it does
nothing). For an image where it finds no face, the tool says so with the
settings used. ``--boxes FILE`` is JSON mapping an image (as given or its
file name) to its boxes ``[[x1, y1, x2, y2], ...]`` in image pixels; the
detector is not run then.

For each image, writes ``<stem>.json``::

    {"image": path, "dataset": name,
     "faces": [{"box": [x1, y1, x2, y2], "score": s,
                "keypoints": [[x, y], ...]}]}

in image pixels, and ``<stem>.png``, the landmarks drawn by point type (curve
points on their curves, corners as squares). ``--onnx`` runs the landmark
model exported by ``tools/deployment/export_onnx.py`` on ONNX Runtime (the
config still gives the pipeline; the checkpoint's weights are not used).
Existing outputs are refused unless ``--overwrite``.
"""

import argparse
import json
import os
import os.path as osp

from mmengine.config import DictAction

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
# The detector's defaults here (facenet-pytorch's MTCNN's, plus the final
# score); docs/inference.md has the detection table measured with them
# (tools/misc/detection_rate.py).
MIN_FACE = 20.0
DET_THR = (0.6, 0.7, 0.7)
SCORE_THR = 0.9


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Face landmarks of new images with a trained model'
    )
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('inputs', nargs='+', help='images or folders')
    parser.add_argument('--boxes', help='JSON file of face boxes per image')
    parser.add_argument('--out-dir', default='work_dirs/infer')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--onnx', help='run this exported graph instead')
    parser.add_argument(
        '--min-face',
        type=float,
        default=MIN_FACE,
        help='smallest face side the detector searches for, in pixels '
        f'(default {MIN_FACE:g}); lower finds smaller faces, slower',
    )
    parser.add_argument(
        '--det-thr',
        type=float,
        nargs=3,
        default=list(DET_THR),
        metavar=('PNET', 'RNET', 'ONET'),
        help="score thresholds of the detector's three stages (default "
        f'{" ".join(f"{t:g}" for t in DET_THR)}); lower finds more faces '
        'and more false ones',
    )
    parser.add_argument(
        '--score-thr',
        type=float,
        default=SCORE_THR,
        help='final detector score a face needs to be kept (default '
        f'{SCORE_THR:g}); below the third --det-thr it has no effect',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as in tools/test.py',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace existing <stem>.json / <stem>.png in --out-dir',
    )
    return parser.parse_args(argv)


def list_images(inputs):
    images = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(
                osp.join(item, name)
                for name in os.listdir(item)
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise SystemExit(f'error: folder {item} holds no image')
            images += found
        elif osp.isfile(item):
            images.append(item)
        else:
            raise SystemExit(f'error: input not found: {item}')
    return images


def read_image(path):
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(
            f'error: cannot read {path} as an image (not an image, '
            'truncated, or a format OpenCV cannot decode); convert it to '
            'JPEG or PNG or leave it out'
        )
    return image


def no_face_message(path, args, scores):
    """What the tool says of an image where the detector kept no face:
    the settings used and what to try."""
    name = osp.basename(path)
    thr = ' '.join(f'{t:g}' for t in args.det_thr)
    said = (
        f'{path}: no face found (MTCNN: --min-face {args.min_face:g} px, '
        f'--det-thr {thr} (P-Net R-Net O-Net), --score-thr '
        f'{args.score_thr:g})'
    )
    if len(scores):
        said += (
            f'; {len(scores)} face(s) scored below --score-thr, best '
            f'{float(scores.max()):.3f}'
        )
    return (
        f'{said}. Faces smaller than {args.min_face:g} px need a lower '
        '--min-face; faint (low-contrast), turned or blurred ones a lower '
        '--det-thr (e.g. --det-thr 0.4 0.5 0.6) or --score-thr, or the '
        'photograph with its contrast stretched. Or give the boxes '
        f'yourself: --boxes boxes.json with {{"{name}": [[x1, y1, x2, y2]]}}'
        ' in image pixels'
    )


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    from mmaniso.deploy.inference import (
        LandmarkPredictor,
        check_box,
        draw_faces,
        load_model,
        output_stems,
        read_boxes_file,
    )

    if args.batch_size < 1:
        raise SystemExit(
            f'error: --batch-size must be >= 1, got {args.batch_size}'
        )
    images = list_images(args.inputs)
    try:
        stems = output_stems(images)
        given = read_boxes_file(args.boxes) if args.boxes else None
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    os.makedirs(args.out_dir, exist_ok=True)
    outputs = [
        (
            osp.join(args.out_dir, s + '.json'),
            osp.join(args.out_dir, s + '.png'),
        )
        for s in stems
    ]
    if not args.overwrite:
        existing = [p for pair in outputs for p in pair if osp.exists(p)]
        if existing:
            raise SystemExit(
                f'error: {existing[0]} exists ({len(existing)} output file(s) '
                'would be replaced); choose another --out-dir or pass '
                '--overwrite'
            )

    try:
        model = load_model(
            args.config,
            None if args.onnx else args.checkpoint,
            device=args.device,
            cfg_options=args.cfg_options,
        )
        if not args.onnx:
            from mmaniso.deploy.onnx import require_mean_shape

            require_mean_shape(model, args.checkpoint)
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    onnx = None
    if args.onnx:
        from mmaniso.deploy import OnnxLandmarkModel

        onnx = OnnxLandmarkModel(args.onnx)
    predictor = LandmarkPredictor(model, args.batch_size, onnx=onnx)
    detector = None
    if given is None:
        from mmaniso.deploy.face_detector import MTCNNFaceDetector

        try:
            detector = MTCNNFaceDetector(
                args.device, min_face=args.min_face, thresholds=args.det_thr
            )
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f'error: {e}') from None

    meta = model.dataset_meta or {}
    dataset = meta.get('dataset_name')
    point_types = None
    if dataset:
        from mmaniso.datasets.point_types import get_point_types

        try:
            point_types = get_point_types(dataset)
        except (KeyError, ValueError):
            point_types = None

    import cv2
    import numpy as np

    num_faces, no_face = 0, []
    for path, (json_out, png_out) in tqdm(
        list(zip(images, outputs)), desc='infer', unit='img'
    ):
        image = read_image(path)
        height, width = image.shape[:2]
        if given is not None:
            boxes = given.get(path, given.get(osp.basename(path)))
            if boxes is None:
                raise SystemExit(
                    f'error: --boxes {args.boxes} has no entry for {path} '
                    f'(keys are the image paths as given, or file names)'
                )
            try:
                boxes = (
                    np.stack(
                        [
                            check_box(
                                b,
                                width,
                                height,
                                f'--boxes {args.boxes}, {path}, box {i}',
                            )
                            for i, b in enumerate(boxes)
                        ]
                    )
                    if boxes
                    else np.zeros((0, 4))
                )
            except ValueError as e:
                raise SystemExit(f'error: {e}') from None
            scores = np.ones(len(boxes))
        else:
            boxes, scores = detector(image)
            keep = scores >= args.score_thr
            if not keep.any():
                tqdm.write(no_face_message(path, args, scores))
                no_face.append(path)
            boxes, scores = boxes[keep], scores[keep]
        keypoints = predictor([(image, boxes)])[0]
        if not np.isfinite(keypoints).all():
            raise SystemExit(
                f'error: the model predicted non-finite keypoints for {path}; '
                'is the checkpoint trained (a mean-shape head needs its mean '
                'shape)?'
            )
        faces = [
            dict(
                box=[round(float(v), 2) for v in box],
                score=round(float(score), 4),
                keypoints=[
                    [round(float(x), 2), round(float(y), 2)] for x, y in kpts
                ],
            )
            for box, score, kpts in zip(boxes, scores, keypoints)
        ]
        num_faces += len(faces)
        with open(json_out, 'w') as f:
            json.dump(dict(image=path, dataset=dataset, faces=faces), f)
        cv2.imwrite(png_out, draw_faces(image, faces, point_types))
    print(
        f'{len(images)} image(s), {num_faces} face(s): wrote <stem>.json and '
        f'<stem>.png to {args.out_dir}'
    )
    if no_face:
        print(
            f'no face found in {len(no_face)} image(s); see the lines above '
            'for the settings and what to try'
        )
    return outputs


if __name__ == '__main__':
    main()
