"""The default face detector of ``tools/infer.py``: MTCNN, offline.

MTCNN (Zhang et al., "Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks", 2016) is three small networks run as a
cascade: P-Net proposes boxes on an image pyramid, R-Net and O-Net refine
and re-score them. Why it is the default:

- its weights (about 2 MB) ship inside a registry package,
  ``facenet-pytorch`` (``facenet_pytorch/data/{pnet,rnet,onet}.pt``), so
  nothing is downloaded at run time; OpenCV 5 no longer ships its Haar
  cascades and OpenCV's YuNet needs a model file that no wheel carries;
- it is plain PyTorch, so it runs on the same torch, CPU or CUDA, as the
  landmark model; it handles rotated and non-frontal faces, which a frontal
  Haar cascade misses.

Only the weight files are read (through mmaniso's restricted unpickler):
``facenet-pytorch`` pins torch < 2.3 and numpy < 2, so it is installed
without its dependencies and never imported. The networks and the cascade
below are this project's own code, written to give what the package's own
``MTCNN.detect`` gives (``facenet_pytorch/models/utils/detect_face.py``,
version 2.6.0) on the same RGB image, step for step, as these weights were
calibrated with it:

- P-Net's cell ``(x, y)`` on a level of scale ``s`` is the box
  ``floor((2x + 1) / s), floor((2y + 1) / s), floor((2x + 12) / s),
  floor((2y + 12) / s)``; NMS (IoU 0.5) per level, then across levels
  (IoU 0.7), on these boxes; then P-Net's offsets times the box's
  ``x2 - x1``; then made square;
- R-Net and O-Net read the box truncated to whole pixels, clipped to the
  image (not padded), 1-based as in the original MATLAB code (pixels
  ``x1 - 1`` to ``x2 - 1``), resampled by area averaging to 24 or 48
  pixels, normalised as ``(v - 127.5) / 128``; a box passes with a score
  strictly above the threshold;
- R-Net: NMS (IoU 0.7) on the boxes before its offsets, then offsets times
  ``x2 - x1 + 1``, then square; O-Net: offsets first, then NMS by the
  intersection over the smaller box (0.7);
- the dense layers of R-Net and O-Net read their input transposed (width
  before height), as the original Caffe weights were.

``tests/deploy/test_face_detector.py`` checks boxes, scores and the five
points against the package's own outputs recorded in
``tests/deploy/mtcnn_reference.json``.

Example:
    >>> detector = MTCNNFaceDetector()  # doctest: +SKIP
    >>> boxes, scores = detector(image_bgr)  # doctest: +SKIP
"""

import importlib.util
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

WEIGHTS_PACKAGE = 'facenet-pytorch'

# The package's MTCNN defaults; tools/infer.py has its own (see there).
DEFAULT_MIN_FACE = 20
DEFAULT_THRESHOLDS = (0.6, 0.7, 0.7)
DEFAULT_SCALE_FACTOR = 0.709

_BATCH = 512  # crops per R-Net / O-Net call, as the package does


def weights_dir() -> str:
    """The folder of MTCNN's weight files in the installed package.

    Raises:
        FileNotFoundError: ``facenet-pytorch`` is not installed; says how.
    """
    spec = importlib.util.find_spec('facenet_pytorch')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default face detector reads MTCNN's weights from the "
            f"'{WEIGHTS_PACKAGE}' package, which is not installed: run "
            "'make install' (or pip install --no-deps facenet-pytorch==2.6.0"
            '), or give face boxes with --boxes'
        )
    return osp.join(list(spec.submodule_search_locations)[0], 'data')


class _PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x = self.prelu1(self.conv1(x))
        x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)


class _RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).flatten(1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


# Same shape as _RNet: MTCNN's published stages, layer for layer as
# their released weights name them.
class _ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.dense5(x))
        return (
            self.dense6_2(x),
            self.dense6_3(x),
            F.softmax(self.dense6_1(x), dim=1),
        )


def _cell_boxes(xs: Tensor, ys: Tensor, scale: float) -> Tensor:
    """The image boxes (N, 4) of P-Net's output cells ``(xs, ys)`` on the
    level of ``scale``: its 12-pixel window at stride 2, as the package
    rounds it."""
    cell = torch.stack([xs, ys], 1).float() * 2  # (N, 2) as x, y
    return torch.cat([cell + 1, cell + 12], 1).div(scale).floor()


def _square(boxes: Tensor) -> Tensor:
    """Boxes (N, 4) as x1, y1, x2, y2, made square about their centres."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], 1)


def _refine(boxes: Tensor, offsets: Tensor, plus_one: bool) -> Tensor:
    """Moves each box's edges by ``offsets`` (N, 4) times its size, the size
    being ``x2 - x1`` after P-Net and ``x2 - x1 + 1`` after R-Net and O-Net
    (as the package computes them)."""
    extra = 1.0 if plus_one else 0.0
    w = (boxes[:, 2] - boxes[:, 0] + extra).unsqueeze(1)
    h = (boxes[:, 3] - boxes[:, 1] + extra).unsqueeze(1)
    return boxes + offsets * torch.cat([w, h, w, h], 1)


def _nms_min(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    """Greedy NMS by intersection over the smaller box, in pixel units
    (``x2 - x1 + 1``), best first: the final step of MTCNN."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    keep = []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        w = np.maximum(
            0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1
        )
        h = np.maximum(
            0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1
        )
        overlap = w * h / np.minimum(area[i], area[rest])
        order = rest[overlap <= thr]
    return np.array(keep, dtype=np.int64)


def _crops(image: Tensor, boxes: Tensor, size: int) -> Tuple[Tensor, Tensor]:
    """Crops of ``image`` (3, H, W), pixel values 0-255, in ``boxes``.

    As MTCNN reads them: each box truncated to whole pixels and clipped to
    the image (a box that sticks out gives a smaller, non-square crop; no
    padding), 1-based, resampled by area averaging to ``size`` pixels and
    normalised as ``(v - 127.5) / 128``.

    Returns:
        The crops, shape (M, 3, size, size), and a mask (N,) of the boxes
        that have one (a box wholly outside the image has none).
    """
    _, height, width = image.shape
    ints = boxes.trunc().int().tolist()
    out, has = [], []
    for x1, y1, x2, y2 in ints:
        x1, y1 = max(x1, 1), max(y1, 1)
        x2, y2 = min(x2, width), min(y2, height)
        ok = y2 > y1 - 1 and x2 > x1 - 1
        has.append(ok)
        if ok:
            patch = image[None, :, y1 - 1 : y2, x1 - 1 : x2]
            out.append(F.interpolate(patch, (size, size), mode='area'))
    mask = torch.tensor(has, dtype=torch.bool, device=boxes.device)
    if not out:
        return image.new_zeros(0, 3, size, size), mask
    return (torch.cat(out) - 127.5) * 0.0078125, mask


def _batched(net: nn.Module, crops: Tensor) -> Tuple[Tensor, ...]:
    if not len(crops):  # every box outside the image
        return net(crops)
    outs = [net(crops[i : i + _BATCH]) for i in range(0, len(crops), _BATCH)]
    return tuple(torch.cat(parts) for parts in zip(*outs))


class MTCNNFaceDetector:
    """Faces in a BGR image as boxes and scores.

    Args:
        device: Where the networks run.
        min_face: Smallest face side searched for, in pixels: the pyramid's
            first level scales the image by ``12 / min_face``. Smaller
            finds smaller faces, costs more time and finds more false
            faces.
        thresholds: Score thresholds of P-Net, R-Net and O-Net; a face is
            kept with an O-Net score above the last.
        scale_factor: Ratio between the pyramid's levels.
        weights: Folder of ``pnet.pt``, ``rnet.pt``, ``onet.pt``; the
            installed ``facenet-pytorch`` package's when None.
    """

    def __init__(
        self,
        device: str = 'cpu',
        min_face: float = DEFAULT_MIN_FACE,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        scale_factor: float = DEFAULT_SCALE_FACTOR,
        weights: Optional[str] = None,
    ) -> None:
        from mmaniso.checkpoint import load_checkpoint_file

        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) != 3 or not all(0 < t < 1 for t in thresholds):
            raise ValueError(
                'thresholds must be three scores in (0, 1) (P-Net, R-Net, '
                f'O-Net), got {thresholds}'
            )
        if not min_face > 0:
            raise ValueError(
                f'min_face must be a positive face side in pixels, got '
                f'{min_face}'
            )
        if not 0 < scale_factor < 1:
            raise ValueError(
                f'scale_factor must be in (0, 1), got {scale_factor}'
            )
        folder = weights or weights_dir()
        self.device = torch.device(device)
        self.nets = []
        for name, net in (
            ('pnet', _PNet()),
            ('rnet', _RNet()),
            ('onet', _ONet()),
        ):
            path = osp.join(folder, f'{name}.pt')
            net.load_state_dict(load_checkpoint_file(path, map_location='cpu'))
            self.nets.append(net.eval().to(self.device))
        self.min_face = min_face
        self.thresholds = thresholds
        self.scale_factor = scale_factor

    def __repr__(self) -> str:
        return (
            f'MTCNN(min_face={self.min_face:g}, thresholds='
            f'{list(self.thresholds)}, scale_factor={self.scale_factor:g})'
        )

    def _scales(self, height: int, width: int) -> List[float]:
        scale = 12.0 / self.min_face
        side = min(height, width) * scale
        scales = []
        while side >= 12:
            scales.append(scale)
            scale *= self.scale_factor
            side *= self.scale_factor
        return scales

    def __call__(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Detects faces.

        Args:
            image_bgr: The image, shape (H, W, 3), uint8, BGR as OpenCV
                reads it.

        Returns:
            Boxes, shape (N, 4) as x1, y1, x2, y2 in image pixels (clipped
            to the image), and their scores, shape (N,), best first.
        """
        boxes, scores, _ = self.detect(image_bgr)
        height, width = image_bgr.shape[:2]
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        return boxes, scores

    @torch.no_grad()
    def detect(
        self, image_bgr: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detects faces and their five points, as the package's MTCNN.

        Args:
            image_bgr: The image, shape (H, W, 3), uint8, BGR as OpenCV
                reads it.

        Returns:
            Boxes, shape (N, 4) as x1, y1, x2, y2 (not clipped: a face at
            the border may stick out), scores, shape (N,), and points,
            shape (N, 5, 2) (eyes, nose, mouth corners, as x, y), best
            first.
        """
        if (
            not isinstance(image_bgr, np.ndarray)
            or image_bgr.ndim != 3
            or image_bgr.shape[2] != 3
        ):
            raise ValueError(
                'expected an (H, W, 3) BGR image, got shape '
                f'{getattr(image_bgr, "shape", type(image_bgr).__name__)}'
            )
        pnet, rnet, onet = self.nets
        rgb = torch.from_numpy(np.ascontiguousarray(image_bgr[..., ::-1]))
        image = rgb.to(self.device).permute(2, 0, 1).float()  # (3, H, W)
        height, width = image.shape[1:]
        empty = (
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 5, 2), np.float32),
        )

        # Stage 1: P-Net, a 12-pixel window with stride 2 on each level.
        proposals, scores, offsets = [], [], []
        for scale in self._scales(height, width):
            size = (int(height * scale + 1), int(width * scale + 1))
            level = F.interpolate(image[None], size, mode='area')
            reg, probs = pnet((level - 127.5) * 0.0078125)
            face = probs[0, 1]
            ys, xs = torch.nonzero(face >= self.thresholds[0], as_tuple=True)
            boxes = _cell_boxes(xs, ys, scale)
            s = face[ys, xs]
            keep = nms(boxes, s, 0.5)
            proposals.append(boxes[keep])
            scores.append(s[keep])
            offsets.append(reg[0, :, ys, xs].T[keep])
        if not proposals:
            return empty
        boxes, s = torch.cat(proposals), torch.cat(scores)
        keep = nms(boxes, s, 0.7)
        boxes = _square(_refine(boxes[keep], torch.cat(offsets)[keep], False))

        # Stage 2: R-Net re-scores 24-pixel crops; NMS, then its offsets.
        if len(boxes):
            crops, has = _crops(image, boxes, 24)
            boxes = boxes[has]
            reg, probs = _batched(rnet, crops)
            ok = probs[:, 1] > self.thresholds[1]
            boxes, s, reg = boxes[ok], probs[ok, 1], reg[ok]
            keep = nms(boxes, s, 0.7)
            boxes = _square(_refine(boxes[keep], reg[keep], True))

        # Stage 3: O-Net scores 48-pixel crops, gives offsets and points.
        if not len(boxes):
            return empty
        crops, has = _crops(image, boxes, 48)
        boxes = boxes[has]
        reg, points, probs = _batched(onet, crops)
        ok = probs[:, 1] > self.thresholds[2]
        boxes, s, reg, points = boxes[ok], probs[ok, 1], reg[ok], points[ok]
        w = (boxes[:, 2] - boxes[:, 0] + 1).unsqueeze(1)
        h = (boxes[:, 3] - boxes[:, 1] + 1).unsqueeze(1)
        points = torch.stack(
            [
                w * points[:, :5] + boxes[:, :1] - 1,
                h * points[:, 5:] + boxes[:, 1:2] - 1,
            ],
            2,
        )  # (N, 5, 2)
        boxes = _refine(boxes, reg, True)
        boxes, s = boxes.cpu().numpy(), s.cpu().numpy()
        keep = _nms_min(boxes, s, 0.7)
        return boxes[keep], s[keep], points.cpu().numpy()[keep]
