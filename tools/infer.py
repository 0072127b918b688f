"""Landmarks of the faces in new images, from a trained config.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...]
        [--boxes FILE] [--out-dir DIR] [--device cpu|cuda] [--batch-size N]
        [--min-face 20] [--det-thr 0.6 0.7 0.7]
        [--score-thr 0.9] [--max-megapixels 100] [--detect-megapixels 16]
        [--cfg-options k=v ...] [--overwrite]
    python tools/infer.py CONFIG INPUT [INPUT ...] --onnx model.onnx [...]

INPUT: image files or folders of them (not recursive): a folder gives every
file OpenCV reads (by extension, or by its first bytes), and the tool
prints what else it holds and why it was left out. With ``--onnx`` no
CHECKPOINT is needed (one given anyway is named as unused). Without ``--boxes``
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
                "keypoints": [[x, y], ...]}],
     "model": {"config": path, "config_sha256": hex,
               "checkpoint": path, "checkpoint_sha256": hex},
     "points": [{"index": i, "name": name, "type": "curve point",
                 "curves": [name, ...]}, ...]}

in image pixels (with ``--onnx``, ``model`` names the graph: ``onnx``,
``onnx_sha256``), and ``<stem>.png``, the landmarks drawn by point type
(curve points on their curves, corners as squares, isolated points as
crosses), markers sized to each face's box, with a legend. A model whose
head predicts scales (``predict_scales``) adds, per face,
``keypoint_scores`` (one per landmark) and ``ellipses``, ``[a, b, angle]``
per landmark: the 1-scale ellipse, ``a`` the semi-axis along the
landmark's curve and ``b`` across it in image pixels, ``angle`` that of
``a`` in degrees from image +x towards image +y (the JSON says so in its
own ``ellipses`` entry); the PNG draws each ellipse in thin magenta lines.
``--onnx`` runs the landmark model exported by
``tools/deployment/export_onnx.py`` on ONNX Runtime (the config still
gives the pipeline); before any image, the graph's crop size, keypoint
count, dataset and preprocessing are compared with the config's, and a
graph of another model is refused.

Pixel budget: an image's header is read before its pixels. An image
declaring more than ``--max-megapixels`` (default 100) is not decoded (a
decompression bomb: a small file declaring billions of pixels); above
``--detect-megapixels`` (default 16) the detector runs on a copy reduced to
that many pixels and its boxes are mapped back, while the landmarks are
still cropped from the full image (faces smaller than ``--min-face`` times
the reduction are then not searched for; the tool says so).

An image that cannot be read is reported (file and reason) and skipped;
the others are processed, and the tool exits non-zero at the end with the
list. Existing outputs are refused unless ``--overwrite``; an output that
would replace an input (an image, the config, the checkpoint, the ONNX
graph, the boxes file, through links too) is always refused. Each output is
written under a temporary name and renamed, so none is ever half-written.
"""

import argparse
import os
import os.path as osp

from mmengine.config import DictAction

# The detector's defaults here (facenet-pytorch's MTCNN's, plus the final
# score); docs/inference.md has the detection table measured with them
# (tools/misc/detection_rate.py).
MIN_FACE = 20.0
DET_THR = (0.6, 0.7, 0.7)
SCORE_THR = 0.9
# Pixel budget, in megapixels: the largest image decoded (a 100 MP image is
# 300 MB decoded; the largest phone and camera sensors give 50-100 MP), and
# the largest the detector runs on (MTCNN's pyramid dominates: on one CPU
# thread, an 8000x6000 photograph took 3.9 GB peak and 114 s detected at
# full size, 2.0 GB and 52 s through its 16 MP copy, the face box within
# 25 px of a 900 px face).
MAX_MEGAPIXELS = 100.0
DETECT_MEGAPIXELS = 16.0


def parse_args(argv=None):
    # Same shape as tools/misc' parsers: each tool keeps its own flags.
    parser = argparse.ArgumentParser(
        description='Face landmarks of new images with a trained model',
        usage='%(prog)s CONFIG CHECKPOINT INPUT [INPUT ...] [options]\n'
        '       %(prog)s CONFIG INPUT [INPUT ...] --onnx model.onnx [options]',
    )
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'paths',
        nargs='+',
        metavar='[CHECKPOINT] INPUT',
        help='the checkpoint (not with --onnx, whose graph holds the '
        'weights), then images or folders',
    )
    parser.add_argument('--boxes', help='JSON file of face boxes per image')
    parser.add_argument('--out-dir', default='work_dirs/infer')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1')
    # argparse calls look alike: each tool keeps its own flags, as MMPose's.
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
        help='final detector score a face needs to be kept, in [0, 1] '
        f'(default {SCORE_THR:g}); below the third --det-thr it has no '
        'effect',
    )
    parser.add_argument(
        '--max-megapixels',
        type=float,
        default=MAX_MEGAPIXELS,
        help='images whose header declares more pixels are not decoded '
        f'(default {MAX_MEGAPIXELS:g})',
    )
    parser.add_argument(
        '--detect-megapixels',
        type=float,
        default=DETECT_MEGAPIXELS,
        help='larger images are searched for faces on a copy reduced to '
        f'this size (default {DETECT_MEGAPIXELS:g}); the landmarks still '
        'come from the full image',
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
        help='replace existing <stem>.json / <stem>.png in --out-dir (never '
        'an input)',
    )
    args = parser.parse_args(argv)
    paths = list(args.paths)
    args.checkpoint, args.unused_checkpoint = None, None
    if args.onnx:
        # A checkpoint given anyway (as before --onnx needed none) is
        # recognised by its name and left unused.
        if len(paths) > 1 and _looks_like_checkpoint(paths[0]):
            args.unused_checkpoint = paths.pop(0)
    elif len(paths) < 2:
        parser.error(
            'CHECKPOINT and at least one INPUT are needed (with --onnx '
            'model.onnx, only INPUT: the graph holds the weights)'
        )
    else:
        args.checkpoint = paths.pop(0)
    args.inputs = paths
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if not 0 <= args.score_thr <= 1:
        parser.error(
            f'--score-thr is a detector score in [0, 1], got '
            f'{args.score_thr:g}'
        )
    for option in ('--max-megapixels', '--detect-megapixels'):
        value = getattr(args, option[2:].replace('-', '_'))
        if not value > 0:  # NaN too
            parser.error(f'{option} must be a positive number, got {value}')
    return args


CHECKPOINT_EXTENSIONS = ('.pth', '.pt', '.ckpt', '.pkl')


def _looks_like_checkpoint(path):
    """A checkpoint by its name: a PyTorch extension or a URL."""
    from mmaniso.utils.launch import has_url_scheme

    return has_url_scheme(path) or path.lower().endswith(CHECKPOINT_EXTENSIONS)


def list_images(inputs, note=print):
    """The images of the inputs: files as given, and from each folder
    every file OpenCV reads (:func:`mmaniso.deploy.images.
    list_folder_images`); what a folder holds besides is told to ``note``,
    each entry with its reason."""
    from mmaniso.deploy.images import list_folder_images

    images = []
    for item in inputs:
        if osp.isdir(item):
            found, skipped = list_folder_images(item)
            said = '; '.join(
                f'{osp.basename(path)}: {why}' for path, why in skipped
            )
            if not found:
                raise SystemExit(
                    f'error: folder {item} holds no image OpenCV reads'
                    + (f' ({said})' if said else ' (it is empty)')
                )
            if skipped:
                note(f'{item}: skipped {len(skipped)} entry(ies): {said}')
            images += found
        elif osp.isfile(item):
            images.append(item)
        else:
            raise SystemExit(f'error: input not found: {item}')
    return images


def check_outputs(args, images, outputs):
    """Refuses, before anything is loaded or written, an output that is
    one of the run's inputs (whatever the flags), then existing outputs
    unless ``--overwrite``."""
    from mmaniso.utils.output_paths import refuse_writing_inputs

    written = [('the output', path) for pair in outputs for path in pair]
    read = [('the input image', path) for path in images] + [
        ('the config', args.config),
        ('the checkpoint', args.checkpoint),
        ('the checkpoint', args.unused_checkpoint),
        ('the --onnx graph', args.onnx),
        ('the --boxes file', args.boxes),
    ]
    try:
        refuse_writing_inputs(written, read, fix='choose another --out-dir')
    except SystemExit as e:
        raise SystemExit(f'error: {e}') from None
    if not args.overwrite:
        existing = [p for pair in outputs for p in pair if osp.exists(p)]
        if existing:
            raise SystemExit(
                f'error: {existing[0]} exists ({len(existing)} output file(s) '
                'would be replaced); choose another --out-dir or pass '
                '--overwrite'
            )


def read_image(path, max_megapixels=MAX_MEGAPIXELS):
    """The image (BGR), within the pixel budget.

    Raises:
        UnreadableImageError: Naming the file and why.
    """
    from mmaniso.deploy.images import read_image as read

    return read(path, max_megapixels * 1e6)


def given_boxes(given, boxes_file, path, image):
    """The ``--boxes`` entry of ``path``, checked against the image."""
    import numpy as np

    from mmaniso.deploy.inference import check_box

    height, width = image.shape[:2]
    boxes = given.get(path, given.get(osp.basename(path)))
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0)
    boxes = np.stack(
        [
            check_box(
                b, width, height, f'--boxes {boxes_file}, {path}, box {i}'
            )
            for i, b in enumerate(boxes)
        ]
    )
    return boxes, np.ones(len(boxes))


def detect_boxes(detector, image, path, args, note):
    """The detector's boxes and scores in image pixels; above the detection
    budget it runs on a reduced copy (``note`` is told the reduction)."""
    from mmaniso.deploy.images import boxes_to_image, detection_copy

    small, (fx, fy) = detection_copy(image, args.detect_megapixels * 1e6)
    if small is not image:
        height, width = image.shape[:2]
        note(
            f'{path}: {width}x{height} = {width * height / 1e6:.1f} MP is '
            f'above --detect-megapixels {args.detect_megapixels:g}: faces '
            f'are searched for on a {small.shape[1]}x{small.shape[0]} copy, '
            f'so those under {args.min_face * max(fx, fy):.0f} px are '
            'missed (raise --detect-megapixels to find them, at more '
            'memory); the landmarks come from the full image'
        )
    boxes, scores = detector(small)
    return boxes_to_image(boxes, (fx, fy), image.shape), scores


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


# What a face's "ellipses" hold, written into every JSON that has them.
ELLIPSE_CONVENTION = (
    'per landmark [a, b, angle]: the 1-scale ellipse of the predicted '
    "scales, a the semi-axis along the landmark's curve and b the one "
    'across it, both in image pixels (corners and isolated points: a circle '
    'of radius sqrt(a b), angle 0); angle in degrees of the a axis from '
    'image +x towards image +y (clockwise on screen, as cv2.ellipse)'
)
SCORE_CONVENTION = (
    's0 / (s0 + sqrt(a b)) with a, b in input-crop pixels and s0 the '
    "head's score_scale: 1 for a sure landmark, 1/2 when sqrt(a b) = s0"
)


def face_records(
    boxes, scores, keypoints, keypoint_scores=None, ellipses=None
):
    """The ``faces`` list of one image's JSON; with predicted scales each
    face also gets ``keypoint_scores`` and ``ellipses`` (angles turned into
    degrees)."""
    import numpy as np

    records = []
    for i, (box, score, kpts) in enumerate(zip(boxes, scores, keypoints)):
        face = dict(
            box=[round(float(v), 2) for v in box],
            score=round(float(score), 4),
            keypoints=[
                [round(float(x), 2), round(float(y), 2)] for x, y in kpts
            ],
        )
        if ellipses is not None:
            face['keypoint_scores'] = [
                round(float(v), 4) for v in keypoint_scores[i]
            ]
            face['ellipses'] = [
                [round(float(a), 2), round(float(b), 2),
                 round(float(np.degrees(t)), 2)]
                for a, b, t in ellipses[i]
            ]  # fmt: skip
        records.append(face)
    return records


def load_runtime(args):
    """The model, the predictor (PyTorch or ONNX Runtime) and the detector
    (None with ``--boxes``); exits naming the file on any refusal."""
    from mmaniso.deploy.inference import (
        LandmarkPredictor,
        check_onnx_fits,
        load_model,
    )

    try:
        model = load_model(
            args.config,
            args.checkpoint,
            device=args.device,
            cfg_options=args.cfg_options,
        )
        onnx = None
        if args.onnx:
            from mmaniso.deploy import OnnxLandmarkModel

            onnx = OnnxLandmarkModel(args.onnx)
            check_onnx_fits(onnx, model, args.config)
        else:
            from mmaniso.deploy.onnx import require_mean_shape

            require_mean_shape(model, args.checkpoint)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise SystemExit(f'error: {e}') from None
    predictor = LandmarkPredictor(model, args.batch_size, onnx=onnx)
    detector = None
    if args.boxes is None:
        from mmaniso.deploy.face_detector import MTCNNFaceDetector

        try:
            detector = MTCNNFaceDetector(
                args.device, min_face=args.min_face, thresholds=args.det_thr
            )
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f'error: {e}') from None
    return model, predictor, detector


def layout_point_types(model):
    """The point types of the model's dataset, for the drawing; None when
    the dataset has none."""
    dataset = (model.dataset_meta or {}).get('dataset_name')
    if not dataset:
        return None
    from mmaniso.datasets.point_types import get_point_types

    try:
        return get_point_types(dataset)
    except (KeyError, ValueError):
        return None


def model_identity(args):
    """The JSON's ``model``: the config, and the checkpoint or the ONNX
    graph that gave the weights, each with its SHA-256 (None for a URL)."""
    from mmaniso.utils.file_digest import local_file_sha256 as file_sha256

    out = dict(config=args.config, config_sha256=file_sha256(args.config))
    if args.onnx:
        out.update(onnx=args.onnx, onnx_sha256=file_sha256(args.onnx))
    else:
        out.update(
            checkpoint=args.checkpoint,
            checkpoint_sha256=file_sha256(args.checkpoint),
        )
    return out


def point_records(model, point_types):
    """The JSON's ``points``: per keypoint its index, its name (the
    dataset metainfo's) and its type (``curve point``, ``corner`` or
    ``isolated``, from :mod:`mmaniso.datasets.point_types`) with the
    curves it lies on; None when the model's layout is unknown."""
    meta = model.dataset_meta or {}
    names = meta.get('keypoint_id2name') or {}
    num = meta.get('num_keypoints') or getattr(model.head, 'num_joints', 0)
    if point_types is None and not names:
        return None
    points = []
    for i in range(num):
        point = dict(index=i, name=names.get(i, names.get(str(i))))
        if point_types is not None:
            curves = [c.name for c in point_types.curves if i in c.indices]
            if i in point_types.corners:
                kind = 'corner'
            elif curves:
                kind = 'curve point'
            else:
                kind = 'isolated'
            point.update(type=kind, curves=curves)
        points.append(point)
    return points


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    from mmaniso.utils.launch import quiet_known_warnings

    quiet_known_warnings()

    from mmaniso.deploy.images import write_image, write_json
    from mmaniso.deploy.inference import (
        draw_faces,
        output_stems,
        read_boxes_file,
    )

    if args.unused_checkpoint:
        print(
            f'note: {args.unused_checkpoint} is not used with --onnx (the '
            'graph holds the weights); it can be left out'
        )
    images = list_images(args.inputs)
    try:
        stems = output_stems(images)
        given = read_boxes_file(args.boxes) if args.boxes else None
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    if given is not None:
        missing = [
            p
            for p in images
            if p not in given and osp.basename(p) not in given
        ]
        if missing:
            raise SystemExit(
                f'error: --boxes {args.boxes} has no entry for {missing[0]} '
                f'({len(missing)} image(s) without one; keys are the image '
                'paths as given, or file names)'
            )
    outputs = [
        (
            osp.join(args.out_dir, s + '.json'),
            osp.join(args.out_dir, s + '.png'),
        )
        for s in stems
    ]
    check_outputs(args, images, outputs)
    model, predictor, detector = load_runtime(args)
    os.makedirs(args.out_dir, exist_ok=True)
    dataset = (model.dataset_meta or {}).get('dataset_name')
    point_types = layout_point_types(model)
    predicts_scales = bool(getattr(model.head, 'predict_scales', None))
    identity = model_identity(args)
    points = point_records(model, point_types)

    import numpy as np

    num_faces, no_face, failed = 0, [], []
    for path, (json_out, png_out) in tqdm(
        list(zip(images, outputs)), desc='infer', unit='img'
    ):
        # Only the image and its boxes are this image's own failures; the
        # model's errors stop the run.
        try:
            image = read_image(path, args.max_megapixels)
            if given is not None:
                boxes, scores = given_boxes(given, args.boxes, path, image)
            else:
                boxes, scores = detect_boxes(
                    detector, image, path, args, tqdm.write
                )
        except ValueError as e:
            tqdm.write(f'skipped {e}')
            failed.append(str(e))
            continue
        if given is None:
            keep = scores >= args.score_thr
            if not keep.any():
                tqdm.write(no_face_message(path, args, scores))
                no_face.append(path)
            boxes, scores = boxes[keep], scores[keep]
        predicted = predictor.predict([(image, boxes)])[0]
        keypoints, ellipses = predicted['keypoints'], predicted['ellipses']
        if not np.isfinite(keypoints).all():
            raise SystemExit(
                f'error: the model predicted non-finite keypoints for {path}; '
                'is the checkpoint trained (a mean-shape head needs its mean '
                'shape)?'
            )
        if ellipses is not None and not np.isfinite(ellipses).all():
            raise SystemExit(
                f'error: the model predicted non-finite scales for {path}; '
                'is the checkpoint trained?'
            )
        faces = face_records(
            boxes, scores, keypoints, predicted['scores'], ellipses
        )
        num_faces += len(faces)
        record = dict(image=path, dataset=dataset, faces=faces)
        record.update(model=identity, points=points)
        if predicts_scales:
            record['ellipses'] = ELLIPSE_CONVENTION
            record['keypoint_scores'] = SCORE_CONVENTION
        write_json(json_out, record)
        write_image(png_out, draw_faces(image, faces, point_types))
    done = len(images) - len(failed)
    print(
        f'{done} image(s), {num_faces} face(s): wrote <stem>.json and '
        f'<stem>.png to {args.out_dir}'
    )
    if no_face:
        print(
            f'no face found in {len(no_face)} image(s); see the lines above '
            'for the settings and what to try'
        )
    if failed:
        raise SystemExit(
            f'error: cannot read {len(failed)} of {len(images)} image(s), '
            f'so they have no output (the other {done} are in '
            f'{args.out_dir}): ' + '\n  '.join(failed)
        )
    return outputs


if __name__ == '__main__':
    main()
