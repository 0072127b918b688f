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
below are this project's own code; the layer layout follows the weight
files (the dense layers of R-Net and O-Net read their input transposed,
as the original Caffe weights were).

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
from torchvision.ops import batched_nms, nms

WEIGHTS_PACKAGE = 'facenet-pytorch'


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
        x = x.permute(0, 3, 2, 1).reshape(len(x), -1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


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

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).reshape(len(x), -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), F.softmax(self.dense6_1(x), dim=1)


def _square(boxes: Tensor) -> Tensor:
    """Boxes (N, 4) as x1, y1, x2, y2, made square about their centres."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    cx = boxes[:, 0] + w / 2
    cy = boxes[:, 1] + h / 2
    return torch.stack(
        [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1
    )


def _refine(boxes: Tensor, offsets: Tensor) -> Tensor:
    """Moves each box's edges by ``offsets`` (N, 4) times its size."""
    w = (boxes[:, 2] - boxes[:, 0]).unsqueeze(1)
    h = (boxes[:, 3] - boxes[:, 1]).unsqueeze(1)
    return boxes + offsets * torch.cat([w, h, w, h], 1)


def _crops(image: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crops (N, 3, size, size) of ``image`` (3, H, W) in ``boxes``; parts
    outside the image are zero (mid-grey after normalisation is not what
    the networks were trained on either; zero is what MTCNN pads with)."""
    _, height, width = image.shape
    out = []
    for x1, y1, x2, y2 in boxes.round().long().tolist():
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        patch = image.new_zeros(3, y2 - y1, x2 - x1)
        sx1, sy1 = max(x1, 0), max(y1, 0)
        sx2, sy2 = min(x2, width), min(y2, height)
        if sx2 > sx1 and sy2 > sy1:
            patch[:, sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[
                :, sy1:sy2, sx1:sx2
            ]
        out.append(F.interpolate(patch[None], (size, size), mode='area'))
    return torch.cat(out) if out else image.new_zeros(0, 3, size, size)


class MTCNNFaceDetector:
    """Faces in a BGR image as boxes and scores.

    Args:
        device: Where the networks run.
        min_face: Smallest face side searched for, in pixels.
        thresholds: Score thresholds of P-Net, R-Net and O-Net.
        scale_factor: Ratio between the pyramid's levels.
        weights: Folder of ``pnet.pt``, ``rnet.pt``, ``onet.pt``; the
            installed ``facenet-pytorch`` package's when None.
    """

    def __init__(
        self,
        device: str = 'cpu',
        min_face: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709,
        weights: Optional[str] = None,
    ) -> None:
        from mmaniso.utils.checkpoint import load_checkpoint_file

        if len(thresholds) != 3 or not all(0 < t < 1 for t in thresholds):
            raise ValueError(
                f'thresholds must be three scores in (0, 1), got {thresholds}'
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
        self.thresholds = tuple(thresholds)
        self.scale_factor = scale_factor

    def _scales(self, height: int, width: int) -> List[float]:
        scale = 12.0 / self.min_face
        side = min(height, width) * scale
        scales = []
        while side >= 12:
            scales.append(scale)
            scale *= self.scale_factor
            side *= self.scale_factor
        return scales

    @torch.no_grad()
    def __call__(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Detects faces.

        Args:
            image_bgr: The image, shape (H, W, 3), uint8, BGR as OpenCV
                reads it.

        Returns:
            Boxes, shape (N, 4) as x1, y1, x2, y2 in image pixels, and
            their scores, shape (N,), best first.
        """
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(
                f'expected an (H, W, 3) BGR image, got shape {image_bgr.shape}'
            )
        pnet, rnet, onet = self.nets
        rgb = torch.from_numpy(np.ascontiguousarray(image_bgr[..., ::-1]))
        image = rgb.permute(2, 0, 1).float().to(self.device)
        image = (image - 127.5) / 128.0
        height, width = image.shape[1:]

        # Stage 1: P-Net, a 12-pixel window with stride 2 on each level.
        proposals, scores = [], []
        for scale in self._scales(height, width):
            size = (int(height * scale + 1), int(width * scale + 1))
            level = F.interpolate(image[None], size, mode='area')
            offsets, probs = pnet(level)
            face = probs[0, 1]
            ys, xs = torch.nonzero(face >= self.thresholds[0], as_tuple=True)
            if not len(ys):
                continue
            cell = torch.stack([xs, ys, xs, ys], 1).float() * 2
            cell[:, 2:] += 12
            boxes = cell / scale
            s = face[ys, xs]
            boxes = _refine(boxes, offsets[0, :, ys, xs].T)
            keep = nms(boxes, s, 0.5)
            proposals.append(boxes[keep])
            scores.append(s[keep])
        if not proposals:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes, s = torch.cat(proposals), torch.cat(scores)
        keep = nms(boxes, s, 0.7)
        boxes = _square(boxes[keep])

        # Stages 2 and 3: re-score and refine 24- and 48-pixel crops.
        for net, size, threshold in (
            (rnet, 24, self.thresholds[1]),
            (onet, 48, self.thresholds[2]),
        ):
            if not len(boxes):
                break
            offsets, probs = net(_crops(image, boxes, size))
            ok = probs[:, 1] >= threshold
            boxes = _refine(boxes[ok], offsets[ok])
            s = probs[ok, 1]
            keep = batched_nms(
                boxes, s, torch.zeros_like(s, dtype=torch.long), 0.7
            )
            boxes, s = boxes[keep], s[keep]
            if net is rnet:
                boxes = _square(boxes)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        order = torch.argsort(s, descending=True)
        return boxes[order].cpu().numpy(), s[order].cpu().numpy()
