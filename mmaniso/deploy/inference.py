"""Landmarks of faces in new images: what ``tools/infer.py`` runs.

A trained top-down model (a config and its checkpoint) is applied to face
boxes, given or found by :class:`~mmaniso.deploy.face_detector.
MTCNNFaceDetector`, through the config's own test pipeline, in batches of
faces across images. With an exported ONNX graph the same crops go through
ONNX Runtime instead of PyTorch.

Example:
    >>> model = load_model('configs/paper/res50_aniso_wflw.py',
    ...                    'epoch_60.pth')  # doctest: +SKIP
    >>> predictor = LandmarkPredictor(model)  # doctest: +SKIP
    >>> keypoints = predictor([(image, boxes)])  # doctest: +SKIP
    >>> faces = predictor.predict([(image, boxes)])  # doctest: +SKIP

A head that predicts scales (``MeanShapeRegressionHead(predict_scales=
...)``) also gives, per face, its keypoint scores and one ellipse per
landmark in image pixels (:meth:`LandmarkPredictor.predict`), from PyTorch
and from an exported graph alike.
"""

import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch


def load_model(
    config: str,
    checkpoint: Optional[str],
    device: str = 'cpu',
    cfg_options: Optional[dict] = None,
):
    """The model of ``config`` with the weights of ``checkpoint``.

    Built by ``mmpose.apis.init_model`` with the backbone's pretrained
    ``init_cfg`` dropped (the checkpoint holds every weight, so nothing is
    downloaded); the checkpoint is then loaded by MMEngine's
    ``load_checkpoint`` with ``strict=True``, through mmaniso's safe loader
    (init_model's own load is lenient: a checkpoint of another config would
    silently leave random weights).

    Args:
        config: The config file.
        checkpoint: The checkpoint; None keeps the random weights.
        device: Where the model goes.
        cfg_options: Overrides merged into the config.

    Returns:
        The model in eval mode, ``dataset_meta`` from the checkpoint when it
        has one.

    Raises:
        ValueError: The checkpoint does not fit the config's model.
    """
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmpose.apis import init_model

    import mmaniso  # noqa: F401  (registers modules and the safe loader)

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None
    model = init_model(cfg, None, device=device)
    if checkpoint is not None:
        try:
            loaded = load_checkpoint(
                model, checkpoint, map_location='cpu', strict=True
            )
        except RuntimeError as err:
            raise ValueError(
                f'{checkpoint} does not fit the model of {config} (a '
                f'checkpoint of another config?): {err}'
            ) from None
        dataset_meta = (loaded.get('meta') or {}).get('dataset_meta')
        if dataset_meta:
            model.dataset_meta = dataset_meta
    return model.eval()


def crop_size(model) -> Optional[Tuple[int, int]]:
    """``(W, H)`` of the crops the model takes: its test pipeline's
    ``TopdownAffine`` input size, else its head's codec's; None if neither
    says."""
    pipeline = model.cfg.test_dataloader.dataset.pipeline
    for step in pipeline:
        kind = step.get('type') if isinstance(step, dict) else None
        name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
        if name.rsplit('.', 1)[-1] == 'TopdownAffine' and 'input_size' in step:
            return tuple(int(v) for v in step['input_size'])
    size = getattr(getattr(model.head, 'decoder', None), 'input_size', None)
    return None if size is None else tuple(int(v) for v in size)


def check_onnx_fits(onnx, model, config: str) -> None:
    """Refuses an ONNX graph that is not the model of ``config``.

    Run before any image: a graph of another layout, crop size or
    preprocessing would otherwise label every output with the config's
    points. Compared: the crop size (the graph's input shape and the
    config's pipeline), the keypoint count (the graph's output shape or
    metadata, the model's), the dataset name and left-right pairing, and
    the preprocessor's mean, std and channel order (the config's data
    preprocessor makes the graph's input here).

    Args:
        onnx: An :class:`~mmaniso.deploy.onnx.OnnxLandmarkModel`.
        model: The config's model (:func:`load_model`).
        config: The config file, for the message.

    Raises:
        ValueError: The graph has no mmaniso metadata, or differs; names
            the file, each difference and the fix.
    """
    from mmaniso.deploy.onnx import preprocessing_metadata

    if 'num_keypoints' not in onnx.metadata:
        raise ValueError(
            f'--onnx {onnx.path} holds no mmaniso metadata (keypoint count, '
            'dataset, crop size), so nothing shows that it is the model of '
            f'{config}; export it with tools/deployment/export_onnx.py'
        )
    meta = model.dataset_meta or {}
    flip = meta.get('flip_indices')
    expected = dict(
        input_size=crop_size(model),
        num_keypoints=meta.get('num_keypoints')
        or getattr(model.head, 'num_joints', None),
        dataset_name=meta.get('dataset_name'),
        flip_indices=None if flip is None else [int(i) for i in flip],
        **preprocessing_metadata(model),
    )
    predicts = getattr(model.head, 'predict_scales', None)
    expected['predict_scales'] = predicts or 'none'
    differences = onnx.mismatches(expected)
    if predicts and not onnx.predicts_scales and not differences:
        differences = [
            f'predict_scales: graph without a scales output, config '
            f'{predicts!r}'
        ]
    if differences:
        raise ValueError(
            f'--onnx {onnx.path} is not the model of {config}: '
            f'{"; ".join(differences)}. Its outputs would be labelled with '
            "the config's points; give the config the graph was exported "
            'from, or export this config with tools/deployment/'
            'export_onnx.py'
        )


def check_box(box: Sequence[float], width: int, height: int, where: str):
    """A face box as a (4,) float array, refused unless inside the image.

    Args:
        box: ``[x1, y1, x2, y2]`` in image pixels.
        width: Image width.
        height: Image height.
        where: What to call the box in errors (file, image, index).

    Raises:
        ValueError: Naming ``where``, the box, the image size and the fix.
    """
    try:
        arr = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (4,) or not np.isfinite(arr).all():
        raise ValueError(
            f'{where}: a face box must be four finite numbers [x1, y1, x2, '
            f'y2] in image pixels, got {box!r}'
        )
    x1, y1, x2, y2 = arr
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(
            f'{where}: face box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is not '
            f'inside the {width}x{height} image (need 0 <= x1 < x2 <= '
            f'{width} and 0 <= y1 < y2 <= {height}); boxes are x1, y1, x2, '
            'y2 in pixels of this image, not x, y, w, h or normalised'
        )
    return arr


def read_boxes_file(path: str) -> Dict[str, List[list]]:
    """Face boxes per image from a JSON file.

    The file maps an image (its path as given on the command line, or its
    file name) to a list of boxes ``[x1, y1, x2, y2]``, or to a list of
    ``{"box": [...], "score": s}`` as ``tools/infer.py`` writes them.

    Raises:
        ValueError: The file is not such a mapping; names the file and the
            entry.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(
            f'--boxes {path}: cannot read it as JSON: {err}'
        ) from None
    if not isinstance(data, dict):
        raise ValueError(
            f'--boxes {path}: expected an object mapping each image to its '
            f'boxes, e.g. {{"face.jpg": [[x1, y1, x2, y2]]}}, got '
            f'{type(data).__name__}'
        )
    out = {}
    for image, boxes in data.items():
        if not isinstance(boxes, list):
            raise ValueError(
                f'--boxes {path}: entry {image!r} must be a list of boxes, '
                f'got {type(boxes).__name__}'
            )
        out[image] = [b['box'] if isinstance(b, dict) else b for b in boxes]
    return out


def _input_box(sample) -> Tuple[np.ndarray, np.ndarray]:
    """Centre and size of the crop's box in image pixels (aspect-fixed, as
    TopdownAffine warped it). MMPose 1.3 keeps them in the metainfo
    (``input_center``, ``input_scale``) and no longer packs
    ``bbox_centers``; MMPose 1.1 packs them as instance fields."""
    meta = sample.metainfo
    if 'input_center' in meta and 'input_scale' in meta:
        centre, scale = meta['input_center'], meta['input_scale']
    else:
        centre = sample.gt_instances.bbox_centers[0]
        scale = sample.gt_instances.bbox_scales[0]
    return (
        np.asarray(centre, float).reshape(2),
        np.asarray(scale, float).reshape(2),
    )


class LandmarkPredictor:
    """Keypoints of face boxes, in image pixels, by a top-down model.

    Args:
        model: A pose estimator (see :func:`load_model`).
        batch_size: Faces per forward pass.
        onnx: An :class:`~mmaniso.deploy.onnx.OnnxLandmarkModel` to run
            instead of the PyTorch model; its output (the head's keypoints
            normalised to the crop) is mapped back to the image as MMPose
            does. Both follow the config's ``test_cfg`` (flip test: the graph
            also runs on the mirrored crops; the scales, as the head's, come
            from the unflipped crops).
    """

    def __init__(self, model, batch_size: int = 32, onnx=None) -> None:
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope

        if batch_size < 1:
            raise ValueError(
                f'batch_size must be at least 1, got {batch_size}'
            )
        init_default_scope(model.cfg.get('default_scope', 'mmpose'))
        self.model = model
        self.pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
        self.batch_size = batch_size
        self.onnx = onnx

    def _sample(self, image: np.ndarray, box: np.ndarray) -> dict:
        info = dict(
            img=image,
            bbox=box[None].astype(np.float32),
            bbox_score=np.ones(1, dtype=np.float32),
        )
        info.update(self.model.dataset_meta or {})
        return self.pipeline(info)

    @torch.no_grad()
    def _forward(self, samples: List[dict]) -> List[dict]:
        """Per face: ``keypoints`` (K, 2) in image pixels, and ``scores``
        (K,) and ``ellipses`` (K, 3) when the head predicts scales."""
        from mmengine.dataset import pseudo_collate

        batch = pseudo_collate(samples)
        if self.onnx is None:
            out = []
            for r in self.model.test_step(batch):
                inst = r.pred_instances
                face = dict(keypoints=np.asarray(inst.keypoints[0], float))
                if 'keypoint_ellipses' in inst:
                    face['ellipses'] = np.asarray(
                        inst.keypoint_ellipses[0], float
                    )
                    face['scores'] = np.asarray(inst.keypoint_scores[0], float)
                out.append(face)
            return out
        data = self.model.data_preprocessor(batch, False)
        inputs = data['inputs'].cpu()
        outputs = self.onnx.run(inputs.numpy())
        normalised = torch.from_numpy(outputs['keypoints'])
        test_cfg = self.model.test_cfg or {}
        if test_cfg.get('flip_test', False):
            # What the PyTorch model's test_step does with flip_test: the
            # mirrored crops too, their keypoints flipped back, averaged.
            from mmpose.models.utils.tta import flip_coordinates

            meta = data['data_samples'][0].metainfo
            flipped = torch.from_numpy(self.onnx(inputs.flip(-1).numpy()))
            flipped = flip_coordinates(
                flipped,
                flip_indices=meta['flip_indices'],
                shift_coords=test_cfg.get('shift_coords', True),
                input_size=meta['input_size'],
            )
            normalised = (normalised + flipped) * 0.5
        ellipses = scores = None
        if 'scales' in outputs:
            ellipses, scores = self.onnx.ellipses(
                normalised.numpy(), outputs['scales']
            )
        normalised = normalised.numpy().astype(np.float64)
        size = np.asarray(self.onnx.input_size, dtype=np.float64)
        out = []
        for i, (sample, kpts) in enumerate(
            zip(data['data_samples'], normalised)
        ):
            # The crop's box as MMPose maps its predictions back
            # (TopdownPoseEstimator.add_pred_to_datasample).
            centre, scale = _input_box(sample)
            face = dict(keypoints=kpts * scale + centre - 0.5 * scale)
            if ellipses is not None:
                from mmaniso.ops.likelihood import map_ellipses

                mapped = map_ellipses(
                    torch.from_numpy(ellipses[i : i + 1]),
                    torch.from_numpy(scale / size).float()[None],
                )
                face['ellipses'] = mapped[0].numpy().astype(np.float64)
                face['scores'] = scores[i].astype(np.float64)
            out.append(face)
        return out

    def predict(
        self, faces: Sequence[Tuple[np.ndarray, np.ndarray]]
    ) -> List[Dict[str, Optional[np.ndarray]]]:
        """Keypoints, and with predicted scales their scores and ellipses,
        of every box of every image.

        Args:
            faces: ``(image, boxes)`` pairs: a BGR image (H, W, 3) and its
                boxes (N, 4) as x1, y1, x2, y2.

        Returns:
            For each image a dict: ``keypoints`` (N, K, 2) in its pixels;
            ``scores`` (N, K) and ``ellipses`` (N, K, 3) (semi-axis along
            the curve, semi-axis across it, both in image pixels, and the
            angle of the first in radians from image x towards image y) for
            a head that predicts scales, else None.
        """
        flat = [
            (i, box) for i, (_, boxes) in enumerate(faces) for box in boxes
        ]
        results: List[dict] = []
        for start in range(0, len(flat), self.batch_size):
            chunk = flat[start : start + self.batch_size]
            samples = [self._sample(faces[i][0], box) for i, box in chunk]
            results.extend(self._forward(samples))
        num = (self.model.dataset_meta or {}).get('num_keypoints', 0)
        out, k = [], 0
        for _, boxes in faces:
            part = results[k : k + len(boxes)]
            k += len(boxes)
            image = dict(keypoints=np.zeros((0, num, 2)), scores=None)
            image['ellipses'] = None
            if part:
                image['keypoints'] = np.stack([f['keypoints'] for f in part])
                if 'ellipses' in part[0]:
                    image['scores'] = np.stack([f['scores'] for f in part])
                    image['ellipses'] = np.stack([f['ellipses'] for f in part])
            out.append(image)
        return out

    def __call__(
        self, faces: Sequence[Tuple[np.ndarray, np.ndarray]]
    ) -> List[np.ndarray]:
        """Keypoints of every box of every image.

        Args:
            faces: ``(image, boxes)`` pairs: a BGR image (H, W, 3) and its
                boxes (N, 4) as x1, y1, x2, y2.

        Returns:
            For each image, its keypoints, shape (N, K, 2), in its pixels.
        """
        return [image['keypoints'] for image in self.predict(faces)]


CURVE_COLOUR = (255, 200, 0)  # BGR light blue
CORNER_COLOUR = (0, 0, 255)  # red
OTHER_COLOUR = (0, 255, 255)  # yellow
BOX_COLOUR = (0, 255, 0)  # green


def marker_sizes(box: Sequence[float]) -> Tuple[int, int]:
    """``(radius, line width)`` in pixels of one face's markers, from its
    box: a dot's radius is about 1/100 of the face's side and a line about
    1/150 (at least 1 px each), so a 40 px face in a large photograph
    stays visible between its 98 dots, and a 900 px face gets dots of
    9 px.

    .. math:: r = \\max(1, \\mathrm{round}(\\sqrt{w h} / 100))

    Example:
        >>> marker_sizes([0, 0, 41, 57]), marker_sizes([0, 0, 900, 900])
        ((1, 1), (9, 6))
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = float(np.sqrt(max(x2 - x1, 1.0) * max(y2 - y1, 1.0)))
    return max(1, int(round(side / 100))), max(1, int(round(side / 150)))


def legend_entries(point_types=None, ellipses: bool = False) -> List[str]:
    """The legend's lines, in drawing order: the point types the drawing
    uses, the ellipse when drawn, and the face box."""
    if point_types is None:
        entries = ['landmark']
    else:
        entries = ['curve point (on its curve)', 'corner']
        if point_types.isolated:
            entries.append('isolated point')
    if ellipses:
        entries.append('1-scale ellipse')
    entries.append('face box, detector score')
    return entries


def draw_legend(
    canvas: np.ndarray,
    point_types=None,
    ellipses: bool = False,
    avoid: Sequence[Sequence[float]] = (),
) -> Tuple[int, int, int, int]:
    """Draws the legend in place, in the corner of ``canvas`` that
    overlaps the ``avoid`` boxes least, on a dark box, its text sized to
    the image.

    Returns:
        tuple: The legend's ``(x1, y1, x2, y2)`` in pixels.
    """
    import cv2

    height, width = canvas.shape[:2]
    entries = legend_entries(point_types, ellipses)
    scale = float(np.clip(min(width, height) / 900, 0.35, 1.5))
    thick = max(1, int(round(scale * 1.5)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in entries]
    line = int(max(h for _, h in sizes) * 1.9) + 2
    icon = line
    pad = max(2, line // 4)
    box_w = min(width, pad * 3 + icon + max(w for w, _ in sizes))
    box_h = min(height, pad * 2 + line * len(entries))

    def overlap(x, y):
        total = 0.0
        for bx1, by1, bx2, by2 in avoid:
            w = min(x + box_w, bx2) - max(x, bx1)
            h = min(y + box_h, by2) - max(y, by1)
            total += max(w, 0) * max(h, 0)
        return total

    corners = [
        (0, 0),
        (width - box_w, 0),
        (0, height - box_h),
        (width - box_w, height - box_h),
    ]
    x0, y0 = min(corners, key=lambda c: overlap(*c))
    region = canvas[y0 : y0 + box_h, x0 : x0 + box_w]
    region[:] = (region * 0.35).astype(canvas.dtype)
    r = max(1, icon // 6)
    for k, text in enumerate(entries):
        cy = y0 + pad + k * line + line // 2
        cx = x0 + pad + icon // 2
        if text.startswith('curve'):
            cv2.line(
                canvas,
                (cx - icon // 2, cy),
                (cx + icon // 2, cy),
                CURVE_COLOUR,
                1,
            )
            cv2.circle(canvas, (cx, cy), r, CURVE_COLOUR, -1)
        elif text == 'corner':
            cv2.rectangle(
                canvas, (cx - r - 1, cy - r - 1), (cx + r + 1, cy + r + 1),
                CORNER_COLOUR, -1,
            )  # fmt: skip
        elif text.startswith('isolated'):
            cv2.line(canvas, (cx - r - 2, cy), (cx + r + 2, cy), OTHER_COLOUR)
            cv2.line(canvas, (cx, cy - r - 2), (cx, cy + r + 2), OTHER_COLOUR)
        elif text == 'landmark':
            cv2.circle(canvas, (cx, cy), r, OTHER_COLOUR, -1)
        elif text.endswith('ellipse'):
            cv2.ellipse(
                canvas, (cx, cy), (icon // 2 - 1, icon // 4), 30, 0, 360,
                ELLIPSE_COLOUR, 1, cv2.LINE_AA,
            )  # fmt: skip
        else:
            cv2.rectangle(
                canvas, (cx - icon // 2 + 1, cy - icon // 3),
                (cx + icon // 2 - 1, cy + icon // 3), BOX_COLOUR, 1,
            )  # fmt: skip
        baseline = cy + sizes[k][1] // 2
        cv2.putText(
            canvas, text, (x0 + pad * 2 + icon, baseline), font, scale,
            (255, 255, 255), thick, cv2.LINE_AA,
        )  # fmt: skip
    return x0, y0, x0 + box_w, y0 + box_h


def draw_faces(
    image: np.ndarray,
    faces: Sequence[dict],
    point_types=None,
    legend: bool = True,
) -> np.ndarray:
    """The image with each face's box and landmarks drawn by point type.

    Curve points (well defined across their curve only) are drawn as small
    dots along their curve's polyline, corners (W = I) as larger squares,
    isolated points as crosses. A face with ``ellipses`` (a head that
    predicts scales) gets each landmark's 1-scale ellipse in thin magenta
    lines. Markers and lines are sized to each face's box
    (:func:`marker_sizes`), not to the image; the legend
    (:func:`draw_legend`) goes in the corner that covers the faces least.

    Args:
        image: BGR image (H, W, 3).
        faces: ``{"box": [x1, y1, x2, y2], "score": s, "keypoints":
            [[x, y], ...]}`` as ``tools/infer.py`` writes them, optionally
            with ``"ellipses": [[a, b, angle_degrees], ...]``.
        point_types: The layout's :class:`PointTypes`; all points drawn
            alike when None.
        legend: Whether to draw the legend.

    Returns:
        A new BGR image.
    """
    import cv2

    canvas = image.copy()
    for face in faces:
        for ellipse, centre in zip(
            face.get('ellipses') or (), face['keypoints']
        ):
            draw_ellipse(canvas, centre, ellipse, ELLIPSE_COLOUR)
    for face in faces:
        radius, thick = marker_sizes(face['box'])
        x1, y1, x2, y2 = [int(round(v)) for v in face['box']]
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR, thick)
        label = f'{face["score"]:.2f}'
        cv2.putText(
            canvas,
            label,
            (x1, max(0, y1 - 2 - 2 * thick)),
            cv2.FONT_HERSHEY_SIMPLEX,
            max(0.3, 0.4 * thick),
            BOX_COLOUR,
            thick,
        )
        pts = np.asarray(face['keypoints'], dtype=float)
        if point_types is None:
            for x, y in pts:
                cv2.circle(canvas, (int(x), int(y)), radius, OTHER_COLOUR, -1)
            continue
        corners = set(point_types.corners)
        line = max(1, thick // 2)
        for curve in point_types.curves:
            poly = pts[list(curve.indices)].round().astype(np.int32)
            cv2.polylines(
                canvas, [poly], bool(curve.closed), CURVE_COLOUR, line
            )
            for i in curve.indices:
                if i not in corners:
                    x, y = pts[i]
                    cv2.circle(
                        canvas, (int(x), int(y)), radius, CURVE_COLOUR, -1
                    )
        for i in corners:
            x, y = pts[i].round().astype(int)
            r = radius
            cv2.rectangle(
                canvas, (x - r, y - r), (x + r, y + r), CORNER_COLOUR, -1
            )
        for i in point_types.isolated:
            x, y = pts[i].round().astype(int)
            r = radius + 1
            cv2.line(canvas, (x - r, y), (x + r, y), OTHER_COLOUR, line)
            cv2.line(canvas, (x, y - r), (x, y + r), OTHER_COLOUR, line)
    if legend:
        draw_legend(
            canvas,
            point_types,
            ellipses=any(face.get('ellipses') for face in faces),
            avoid=[face['box'] for face in faces],
        )
    return canvas


ELLIPSE_COLOUR = (255, 0, 255)  # BGR magenta
_SHIFT = 4  # OpenCV's fractional bits: ellipses placed to 1/16 pixel


def draw_ellipse(canvas, centre, ellipse, colour, thickness: int = 1) -> None:
    """Draws one landmark's ellipse on ``canvas`` in place.

    Args:
        canvas: BGR image (H, W, 3).
        centre: ``(x, y)`` in image pixels.
        ellipse: ``(a, b, angle)``: semi-axes in image pixels, the angle of
            ``a`` in degrees from image x towards image y (OpenCV's
            convention for ``cv2.ellipse``).
        colour: BGR.
        thickness: Line width in pixels.
    """
    import cv2

    a, b, angle = (float(v) for v in ellipse)
    if not (np.isfinite([a, b, angle]).all() and a > 0 and b > 0):
        return
    one = 1 << _SHIFT
    cv2.ellipse(
        canvas,
        (int(round(centre[0] * one)), int(round(centre[1] * one))),
        (max(1, int(round(a * one))), max(1, int(round(b * one)))),
        angle,
        0,
        360,
        colour,
        thickness,
        cv2.LINE_AA,
        _SHIFT,
    )


def output_stems(paths: Sequence[str]) -> List[str]:
    """The output name of each image: its file stem, refused if two images
    would share one (their outputs would overwrite each other)."""
    stems, seen = [], {}
    for path in paths:
        stem = osp.splitext(osp.basename(path))[0]
        if stem in seen:
            raise ValueError(
                f'{seen[stem]} and {path} would both write {stem}.json and '
                f'{stem}.png; run them into different --out-dir folders or '
                'rename one'
            )
        seen[stem] = path
        stems.append(stem)
    return stems
