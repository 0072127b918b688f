"""Training shapes read from annotations, and their pose-balanced mean.

Both the pose bins of :class:`~mmaniso.datasets.PoseBalancedSampler` and the
mean shape of :class:`~mmaniso.models.heads.MeanShapeRegressionHead` come
from the keypoints, visibilities and boxes of a dataset's ``data_list``; no
image is loaded and no pipeline runs.

The mean shape lives in the frame the head regresses: that of MMPose's
``RegressionLabel`` codec, i.e. keypoints mapped into the input crop by
``GetBBoxCenterScale(padding)`` and ``TopdownAffine(input_size)`` (without
the training-time random shift, scale and rotation) and divided by the
input size. Without rotation that map is, per sample,

.. math:: u = (p - c) / s' + 1/2,

with ``c`` the box centre and ``s'`` the padded box size widened to the
input's aspect ratio.
"""

import warnings
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from mmaniso.ops.pose import (
    PoseBins,
    ShapeOutliers,
    mean_of_bin_means,
    pose_bins,
    shape_outliers,
)

# Outlying samples named in full in the warning; the rest are counted.
MAX_NAMED_OUTLIERS = 20

# GetBBoxCenterScale's default padding.
DEFAULT_BBOX_PADDING = 1.25


class PoseAnnotations(NamedTuple):
    """Per-sample annotations, stacked.

    Attributes:
        keypoints (ndarray): Image coordinates, shape (N, K, 2), float32.
        visible (ndarray): Visibility in [0, 1], shape (N, K), float32.
        bbox_center (ndarray): Box centre, shape (N, 2), float32.
        bbox_scale (ndarray): Box size (w, h) before padding, shape (N, 2),
            float32.
    """

    keypoints: np.ndarray
    visible: np.ndarray
    bbox_center: np.ndarray
    bbox_scale: np.ndarray


def read_pose_annotations(dataset) -> PoseAnnotations:
    """Stacks every sample's keypoints, visibility and box.

    Reads ``dataset.get_data_info(i)`` for each index, as MMPose's top-down
    datasets (and MMEngine's ``ConcatDataset``/``RepeatDataset``) provide it
    without loading images. The box is taken the way ``GetBBoxCenterScale``
    takes it: ``bbox_center``/``bbox_scale`` where the dataset gives them
    (WFLW, 300W, AFLW, COFW), else the ``bbox`` corners.

    Args:
        dataset: A top-down pose dataset.

    Returns:
        PoseAnnotations: ``keypoints`` (N, K, 2), ``visible`` (N, K),
        ``bbox_center`` (N, 2) and ``bbox_scale`` (N, 2).

    Raises:
        TypeError: For datasets whose ``get_data_info`` would load images
            (MMPose's ``CombinedDataset``) or that have none.
        ValueError: If the dataset is empty, a sample has no box or several
            instances, keypoint counts differ, or a sample holds a NaN or
            infinite keypoint, visibility or box value (it would turn the
            pose bins and the mean shape into NaN).
    """
    name = type(dataset).__name__
    if name == 'CombinedDataset':
        raise TypeError(
            "MMPose's CombinedDataset builds each sample through its "
            'pipeline, so its annotations cannot be read without loading '
            'every image; balance each sub-dataset or use ConcatDataset'
        )
    if not callable(getattr(dataset, 'get_data_info', None)):
        raise TypeError(
            f'{name} has no get_data_info(index); pose balancing reads the '
            'annotations through it'
        )
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    num = len(dataset)
    if num == 0:
        raise ValueError(f'{name} is empty; there are no shapes to bin')
    info = dataset.get_data_info(0)
    num_kpts = np.shape(info['keypoints'])[-2]
    keypoints = np.empty((num, num_kpts, 2), np.float32)
    visible = np.ones((num, num_kpts), np.float32)
    centres = np.empty((num, 2), np.float32)
    scales = np.empty((num, 2), np.float32)
    corners = np.zeros((num, 4), np.float32)  # boxes given as bbox
    # A flag, not a NaN sentinel in ``corners``: a NaN in the data must be
    # reported, not mistaken for "no corners".
    from_corners = np.zeros(num, bool)
    for idx in range(num):
        if idx:
            info = dataset.get_data_info(idx)
        # Assignment drops a leading instance axis of length 1 and refuses
        # any other shape.
        try:
            keypoints[idx] = info['keypoints']
            if info.get('keypoints_visible') is not None:
                visible[idx] = info['keypoints_visible']
            if 'bbox_center' in info and 'bbox_scale' in info:
                centres[idx] = info['bbox_center']
                scales[idx] = info['bbox_scale']
            elif info.get('bbox') is not None:
                corners[idx] = info['bbox']
                from_corners[idx] = True
            else:
                raise ValueError(
                    f'sample {idx} has neither bbox nor bbox_center/'
                    'bbox_scale; top-down training needs a box per sample'
                )
        except ValueError as e:
            if str(e).startswith(f'sample {idx} '):
                raise
            raise ValueError(
                f'sample {idx} does not hold one instance of {num_kpts} '
                'keypoints with a box (pose balancing needs top-down data, '
                f'one instance per sample, like sample 0): {e}'
            ) from None
    if from_corners.any():
        x0, y0, x1, y1 = corners[from_corners].T
        centres[from_corners] = np.stack([x0 + x1, y0 + y1], 1) * 0.5
        scales[from_corners] = np.stack([x1 - x0, y1 - y0], 1)
    _check_finite(keypoints, visible, centres, scales, from_corners, name)
    np.clip(visible, 0.0, 1.0, out=visible)
    return PoseAnnotations(keypoints, visible, centres, scales)


def _check_finite(
    keypoints: np.ndarray,
    visible: np.ndarray,
    centres: np.ndarray,
    scales: np.ndarray,
    from_corners: np.ndarray,
    name: str,
) -> None:
    """Raises ValueError naming the first sample and field that is NaN or
    infinite; one pass of ``np.isfinite`` per stacked array."""
    fields = (
        ('keypoints', np.isfinite(keypoints).all((1, 2))),
        ('keypoints_visible', np.isfinite(visible).all(1)),
        ('bbox_center', np.isfinite(centres).all(1)),
        ('bbox_scale', np.isfinite(scales).all(1)),
    )
    finite = np.logical_and.reduce([ok for _, ok in fields])
    if finite.all():
        return
    idx = int(np.argmin(finite))
    field = next(f for f, ok in fields if not ok[idx])
    if field.startswith('bbox_') and from_corners[idx]:
        field = 'bbox'  # centre and scale were computed from the corners
    raise ValueError(
        f'sample {idx} of {name} has a NaN or infinite value in '
        f'"{field}"; it would make the pose bins and the mean shape NaN. '
        'Fix or drop that annotation (python tools/train.py checks every '
        'annotation file before training and names the record)'
    )


def crop_scale(
    bbox_scale: np.ndarray,
    input_size: Sequence[int] = (1, 1),
    padding: float = DEFAULT_BBOX_PADDING,
) -> np.ndarray:
    """The crop size TopdownAffine cuts: padded, then widened to the input's
    aspect ratio.

    Args:
        bbox_scale (ndarray): Box sizes (w, h), shape (N, 2).
        input_size: Model input (w, h).
        padding: GetBBoxCenterScale's padding.

    Returns:
        ndarray: Crop sizes, shape (N, 2).
    """
    scale = np.asarray(bbox_scale, dtype=np.float64) * padding
    aspect = input_size[0] / input_size[1]
    w, h = scale[:, 0], scale[:, 1]
    wide = w > h * aspect
    return np.stack(
        [np.where(wide, w, h * aspect), np.where(wide, w / aspect, h)], 1
    )


def crop_normalised_keypoints(
    annotations: PoseAnnotations,
    input_size: Sequence[int] = (1, 1),
    padding: float = DEFAULT_BBOX_PADDING,
    dtype: type = np.float64,
) -> np.ndarray:
    """Keypoints in the RegressionLabel frame of an input crop.

    The same map as ``GetBBoxCenterScale(padding)``, ``TopdownAffine``
    without rotation and ``RegressionLabel.encode``: (0, 0) is the crop's
    top-left corner and (1, 1) its bottom-right. With the default square
    ``input_size`` this is each sample's box normalised by a similarity,
    which is all the pose bins need.

    .. math:: u = (p - c) / s' + 1/2

    Args:
        annotations (PoseAnnotations): From :func:`read_pose_annotations`.
        input_size: Model input (w, h); only its aspect ratio matters.
        padding: GetBBoxCenterScale's padding.
        dtype: Floating type of the result.

    Returns:
        ndarray: Normalised keypoints, shape (N, K, 2).

    Example:
        >>> ann = PoseAnnotations(
        ...     np.array([[[10., 20.], [30., 20.]]]), np.ones((1, 2)),
        ...     np.array([[20., 20.]]), np.array([[20., 10.]]))
        >>> crop_normalised_keypoints(ann, (64, 64), padding=1.0).tolist()
        [[[0.0, 0.5], [1.0, 0.5]]]
    """
    if padding <= 0:
        raise ValueError(f'padding must be positive, got {padding}')
    if len(input_size) != 2 or min(input_size) <= 0:
        raise ValueError(f'input_size must be (w, h) > 0, got {input_size}')
    size = crop_scale(annotations.bbox_scale, input_size, padding)  # (N, 2)
    if not np.all(size > 0):
        bad = int(np.argmin(size.min(1)))
        raise ValueError(f'sample {bad} has an empty box: {size[bad]}')
    out = np.array(annotations.keypoints, dtype=dtype)  # a copy
    out -= np.asarray(annotations.bbox_center, dtype=dtype)[:, None]
    out /= size.astype(dtype)[:, None]
    out += 0.5
    return out


class DatasetPoseBins(NamedTuple):
    """A dataset's training shapes and their pose bins.

    Attributes:
        annotations (PoseAnnotations): What was read from the dataset.
        bins (PoseBins): Bins of the box-normalised shapes; ``ids`` are
            rank 0's on every rank.
        outliers (ShapeOutliers, optional): Samples whose keypoints lie
            far from the bulk relative to their box (``mask`` is rank 0's
            on every rank); left out of the bins' fit and of the mean
            shape.
    """

    annotations: PoseAnnotations
    bins: PoseBins
    outliers: Optional[ShapeOutliers] = None

    @property
    def exclude(self) -> Optional[Tensor]:
        """The outliers' mask (N,), or None."""
        return None if self.outliers is None else self.outliers.mask


def dataset_pose_bins(
    dataset,
    num_bins: int,
    clip_quantiles: Optional[Tuple[float, float]] = None,
) -> DatasetPoseBins:
    """Reads a dataset's shapes and bins them by pose, the one way.

    The :class:`~mmaniso.datasets.PoseBalancedSampler` and the
    :class:`~mmaniso.engine.PoseBalancingHook` (without such a sampler)
    both bin through here: keypoints normalised to each sample's box, in
    float32 (ample for binning, half the memory traffic), binned by
    :func:`mmaniso.ops.pose.pose_bins`. In a distributed run every rank
    computes the bins and rank 0's ids are broadcast, so that the ranks
    agree even if rounding differs between hosts.

    Samples whose box-normalised keypoints lie far beyond the bulk
    (:func:`mmaniso.ops.pose.shape_outliers`: keypoints away from or out
    of scale with their box, or garbled) are left out of the Procrustes
    mean, the principal axis, the bin edges and the head's mean shape, so
    that a few wrong annotations cannot distort them; they are still
    binned and drawn. A warning names how many, which dataset indices and
    why; real faces do not trigger it.

    Args:
        dataset: A top-down pose dataset.
        num_bins: Number of equal-width pose bins.
        clip_quantiles: Outlier-robust edges (see
            :func:`mmaniso.ops.pose.pose_bins`).

    Returns:
        DatasetPoseBins: ``annotations`` and ``bins``.
    """
    from mmengine.dist import broadcast

    annotations = read_pose_annotations(dataset)
    shapes = crop_normalised_keypoints(
        annotations, dtype=np.float32
    )  # (N, K, 2)
    outliers = shape_outliers(shapes, annotations.visible)
    flags = outliers.mask.to(torch.uint8)
    broadcast(flags, src=0)  # rank 0's decision on every rank
    outliers = outliers._replace(mask=flags.bool())
    if bool(outliers.mask.any()):
        _warn_outliers(outliers, type(dataset).__name__)
    bins = pose_bins(
        shapes,
        annotations.visible,
        num_bins,
        clip_quantiles,
        exclude=outliers.mask if bool(outliers.mask.any()) else None,
    )
    broadcast(bins.ids, src=0)  # a no-op outside distributed runs
    return DatasetPoseBins(annotations, bins, outliers)


def _warn_outliers(outliers: ShapeOutliers, name: str) -> None:
    """Warns (and logs) which samples were left out of the statistics."""
    from mmengine.logging import print_log

    indices = torch.nonzero(outliers.mask).flatten().tolist()
    named = [f'  sample {i}: {outliers.reasons(i)}' for i in indices]
    more = len(named) - MAX_NAMED_OUTLIERS
    shown = '\n'.join(named[:MAX_NAMED_OUTLIERS])
    if more > 0:
        shown += f'\n  and {more} more'
    message = (
        f'{len(indices)} of {len(outliers.mask)} training samples of {name} '
        'have keypoints far beyond all the others relative to their box, '
        "and are left out of the pose bins' fit and of the mean shape "
        '(they still train): dataset indices '
        f'{indices[:MAX_NAMED_OUTLIERS]}. Scores in radii of the median '
        'face (offset of the keypoints from where the box puts them, '
        "|log| of their size over the box's, Procrustes residual), with "
        f'the thresholds:\n{shown}\n'
        'Check these annotations (keypoints against the box; python '
        'tools/train.py checks every annotation file before training).'
    )
    warnings.warn(message, stacklevel=3)
    print_log(message, logger='current', level=30)  # logging.WARNING


def pipeline_setting(dataset, transform: str, key: str):
    """A setting of a transform in a dataset's pipeline, or None.

    Looks through ``dataset.pipeline.transforms`` (and the first
    sub-dataset of dataset wrappers) for an instance named ``transform``.
    """
    for _ in range(8):
        pipeline = getattr(dataset, 'pipeline', None)
        for t in getattr(pipeline, 'transforms', None) or []:
            if type(t).__name__ == transform and hasattr(t, key):
                return getattr(t, key)
        inner = getattr(dataset, 'datasets', None)
        if inner:
            dataset = inner[0]
        elif getattr(dataset, 'dataset', None) is not None:
            dataset = dataset.dataset
        else:
            return None
    return None


def head_mean_shape(
    annotations: PoseAnnotations,
    bin_ids: Tensor,
    input_size: Tuple[int, int],
    padding: float = DEFAULT_BBOX_PADDING,
    num_bins: Optional[int] = None,
    exclude: Optional[Tensor] = None,
) -> Tensor:
    """The mean over pose bins of the bins' mean shapes, in the head's frame.

    Args:
        annotations (PoseAnnotations): From :func:`read_pose_annotations`.
        bin_ids (Tensor): Pose bin of each sample, shape (N,).
        input_size: Model input (w, h).
        padding: GetBBoxCenterScale's padding.
        num_bins: Number of bins.
        exclude (Tensor, optional): Samples left out of the mean, shape
            (N,), bool (:attr:`DatasetPoseBins.exclude`).

    Returns:
        Tensor: Mean shape in [0, 1] crop coordinates, shape (K, 2),
        float32.
    """
    shapes = crop_normalised_keypoints(annotations, input_size, padding)
    weights = np.asarray(annotations.visible, dtype=np.float64)
    if exclude is not None:
        keep = ~np.asarray(torch.as_tensor(exclude).cpu(), dtype=bool)
        weights = weights * keep[:, None]
    mean = mean_of_bin_means(shapes, bin_ids, weights, num_bins=num_bins)
    return torch.as_tensor(mean, dtype=torch.float32)
