"""Landmarks of the faces in new images, from a trained config.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...]
        [--boxes FILE] [--out-dir DIR] [--device cpu|cuda] [--batch-size N]
        [--onnx model.onnx] [--score-thr 0.9] [--min-face 20]
        [--cfg-options k=v ...] [--overwrite]

INPUT: image files or folders of them (not recursive). Without ``--boxes``
the faces come from MTCNN, whose weights ship in the ``facenet-pytorch``
package (:mod:`mmaniso.deploy.face_detector` says why this detector):
nothing is downloaded. ``--boxes FILE`` is JSON mapping an image (as given
or its file name) to its boxes ``[[x1, y1, x2, y2], ...]`` in image pixels.

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
        '--score-thr',
        type=float,
        default=0.9,
        help='detector score below which a face is dropped',
    )
    parser.add_argument(
        '--min-face', type=int, default=20, help='smallest face side (px)'
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
            detector = MTCNNFaceDetector(args.device, min_face=args.min_face)
        except FileNotFoundError as e:
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

    num_faces = 0
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
    return outputs


if __name__ == '__main__':
    main()
