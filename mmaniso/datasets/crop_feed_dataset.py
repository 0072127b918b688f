"""Training samples as fixed-size source crops, for augmentation on the
device: the CPU only reads a crop and packs it."""

import copy
import json
from typing import Optional, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.structures import InstanceData
from mmpose.registry import DATASETS
from mmpose.structures import PoseDataSample

from .training_shapes import pipeline_setting

SOURCES = ('array', 'decode')
# The settings of the steps that move the crop window, read back from the
# built transforms for ``crop_cache.augmentation_margin``.
_REACH_SETTINGS = {
    'GetBBoxCenterScale': ('padding',),
    'RandomBBoxTransform': (
        # RandomBBoxTransform's argument names, as topdown_augment_settings
        # reads them: data, not logic.
        'shift_factor',
        'shift_prob',
        'scale_factor',
        'scale_prob',
        'rotate_factor',
        'rotate_prob',
    ),
    'TopdownAffine': ('input_size',),
}


@DATASETS.register_module()
class CropFeedDataset(torch.utils.data.Dataset):
    """Wraps a top-down dataset of crops; yields packed, unaugmented crops.

    MMPose's top-down pipeline spends about 10 ms per sample on the CPU
    whatever the image (truncated-normal draws, the warp, per-sample deep
    copies of the record and metainfo). Here a sample is the crop as
    stored, padded with black to ``crop_size`` x ``crop_size`` at its
    bottom and right, as a (3, S, S) uint8 tensor (BGR), and a
    ``PoseDataSample`` whose ``gt_instances`` hold, in the crop's pixels,
    the padded box (``bbox_centers``, ``bbox_scales``, as
    ``GetBBoxCenterScale`` makes it), ``keypoints`` and
    ``keypoints_visible``, with ``flip_indices`` in its metainfo. Nothing is
    drawn on the CPU: :class:`~mmaniso.models.data_preprocessors.
    TopdownBatchAugment` flips, shifts, scales, rotates and crops the batch
    on the device. Every per-sample array is cut, once, from arrays stacked
    at initialisation; ``__getitem__`` copies no record.

    The wrapped dataset gives the annotations (``get_data_info``, metainfo,
    ``PoseBalancedSampler``'s shapes); its pipeline is read for the box
    padding but never run. Its images should be the face-crop cache
    (``tools/dataset_converters/make_crop_cache.py``), whose crops hold
    every window the augmentation can take.

    A face-crop cache is checked when the dataset initialises
    (:func:`~mmaniso.datasets.crop_cache.check_crop_cache`): a source
    annotation file or image changed since the crops were cut, an edited
    cache file, or a margin smaller than the reach of the wrapped
    dataset's pipeline is refused with the command that rebuilds it; so is
    a crop array whose index, shape, dtype, ids or annotation file do not
    match (:func:`~mmaniso.datasets.crop_cache.check_crop_array`).

    Use ``collate_fn=dict(type='default_collate')``: the crops are stacked
    into one (B, 3, S, S) batch (in shared memory when a worker collates).

    Args:
        dataset: The wrapped dataset or its config.
        source: ``'array'``: rows of the memory-mapped uint8 array that
            ``make_crop_cache.py --array`` writes beside the annotation file
            (``<ann>.crops.npy``); ``'decode'``: decode each crop file.
        crop_size: Side S of the batch's crops; None: the array's, or for
            ``'decode'`` the cache's ``max_size`` (its annotation file's
            ``info``). Crops larger than S are refused.
        array_file: The array, if not beside the annotation file.
    """

    def __init__(
        self,
        dataset: Union[dict, BaseDataset],
        source: str = 'array',
        crop_size: Optional[int] = None,
        array_file: Optional[str] = None,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(
                f'source must be one of {SOURCES}, got {source!r}'
            )
        if crop_size is not None and int(crop_size) <= 0:
            raise ValueError(f'crop_size must be positive, got {crop_size}')
        self.dataset = (
            DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        )
        self.source = source
        self.crop_size = None if crop_size is None else int(crop_size)
        self.array_file = array_file
        self._array = None  # opened lazily in each process
        self._cache_info = None  # the cache's info, once checked
        self._fully_initialized = False

    # -- what MMEngine, the samplers and the hooks read -------------------
    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self.dataset.metainfo)

    @property
    def pipeline(self):
        """None: the wrapped dataset's pipeline is not run."""
        return None

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        self.full_init()
        return len(self._paths)

    def full_init(self) -> None:
        """Stacks the annotations and, for ``'array'``, checks the array."""
        if self._fully_initialized:
            return
        ds = self.dataset
        if hasattr(ds, 'full_init'):
            ds.full_init()
        padding = pipeline_setting(ds, 'GetBBoxCenterScale', 'padding')
        padding = 1.0 if padding is None else float(padding)
        num = len(ds)
        if num == 0:
            raise ValueError(f'{type(ds).__name__} is empty')
        paths, ids, img_ids = [], np.zeros(num, np.int64), []
        kpts, vis, centers, scales = [], [], [], []
        for i in range(num):
            info = ds.get_data_info(i)
            paths.append(info['img_path'])
            ids[i] = int(info.get('id', i))
            img_ids.append(info.get('img_id'))
            kp = np.asarray(info['keypoints'], np.float32).reshape(-1, 2)
            kpts.append(kp)
            v = info.get('keypoints_visible')
            vis.append(
                np.ones(len(kp), np.float32)
                if v is None
                else np.asarray(v, np.float32).reshape(-1)
            )
            # GetBBoxCenterScale: pad a given centre and scale, else the
            # xyxy box.
            if 'bbox_center' in info and 'bbox_scale' in info:
                c = np.asarray(info['bbox_center'], np.float32).reshape(2)
                s = np.asarray(info['bbox_scale'], np.float32).reshape(2)
            else:
                x1, y1, x2, y2 = np.asarray(info['bbox'], np.float32).ravel()
                c = np.array([x1 + x2, y1 + y2], np.float32) * 0.5
                s = np.array([x2 - x1, y2 - y1], np.float32)
            centers.append(c)
            scales.append(s * padding)
        if len({len(k) for k in kpts}) != 1:
            raise ValueError(
                'the samples have different keypoint counts; one batch '
                'needs one count'
            )
        self._paths = paths
        self._ids = ids
        self._img_ids = img_ids
        # Per-sample views of these are what __getitem__ hands out.
        self._keypoints = np.stack(kpts)[:, None]  # (N, 1, K, 2)
        self._visible = np.stack(vis)[:, None]  # (N, 1, K)
        self._centers = np.stack(centers)[:, None]  # (N, 1, 2)
        self._scales = np.stack(scales)[:, None]  # (N, 1, 2)
        self._flip_indices = list(ds.metainfo['flip_indices'])
        self._check_cache()
        if self.source == 'array':
            self._rows = self._array_rows()
        elif self.crop_size is None:
            self.crop_size = self._cache_max_size()
        self._fully_initialized = True

    def _pipeline_cfg(self) -> list:
        """The wrapped dataset's pipeline as config dicts, with the
        settings that decide how far the augmentation reaches."""
        steps = []
        pipeline = getattr(self.dataset, 'pipeline', None)
        for t in getattr(pipeline, 'transforms', None) or []:
            name = type(t).__name__
            keys = _REACH_SETTINGS.get(name, ())
            steps.append(
                dict(
                    type=name,
                    **{k: getattr(t, k) for k in keys if hasattr(t, k)},
                )
            )
        return steps

    def _check_cache(self) -> None:
        """Refuses a face-crop cache that no longer matches its source, or
        whose margin is smaller than the pipeline's reach
        (:func:`~mmaniso.datasets.crop_cache.check_crop_cache`)."""
        from .crop_cache import check_crop_cache, is_crop_cache_file

        ann = self.dataset.ann_file
        if not is_crop_cache_file(ann):
            return
        self._cache_info = check_crop_cache(
            ann,
            pipeline=self._pipeline_cfg(),
            check_crops=self.source == 'decode',
        )

    def _array_path(self) -> str:
        # Not at the top: crop_cache reads the converters, which
        # ``import mmaniso`` leaves out.
        from .crop_cache import crop_array_paths

        if self.array_file is not None:
            return self.array_file
        return crop_array_paths(self.dataset.ann_file)[0]

    def _array_rows(self) -> np.ndarray:
        from .crop_cache import check_crop_array

        path = self._array_path()
        meta = check_crop_array(path, self.dataset.ann_file)
        size = int(meta['size'])
        if self.crop_size is not None and self.crop_size != size:
            raise ValueError(
                f'{path} holds {size}-px crops, not crop_size='
                f'{self.crop_size}; leave crop_size out or rewrite the array'
            )
        self.crop_size = size
        self._array_shape = list(meta['shape'])
        self._array_command = meta['command']
        row_of = {int(a): r for r, a in enumerate(meta['ids'])}
        missing = [int(i) for i in self._ids if int(i) not in row_of]
        if missing:
            raise ValueError(
                f'{len(missing)} annotation(s) of {self.dataset.ann_file} '
                f'(ids {missing[:5]}) are not in the index of {path}; the '
                f'array was written from another annotation file: '
                f'rebuild it: {meta["command"]}'
            )
        return np.array([row_of[int(i)] for i in self._ids], np.int64)

    def _cache_max_size(self) -> int:
        info = self._cache_info
        if info is None:
            with open(self.dataset.ann_file) as f:
                info = json.load(f).get('info') or {}
        if 'max_size' not in info:
            raise ValueError(
                f'{self.dataset.ann_file} is not a crop cache annotation '
                'file (no info.max_size); give crop_size'
            )
        return int(info['max_size'])

    def __getstate__(self):
        # A worker opens its own mapping; a pickled one would copy it all.
        state = dict(self.__dict__)
        state['_array'] = None
        return state

    # -- one sample -------------------------------------------------------
    def _read(self, idx: int) -> torch.Tensor:
        size = self.crop_size
        if self.source == 'array':
            if self._array is None:
                from .crop_cache import open_crop_array

                # Copy-on-write: writable views (torch.from_numpy does not
                # warn), pages read from the file only when touched.
                self._array = open_crop_array(
                    self._array_path(),
                    self._array_shape,
                    self._array_command,
                )
            return torch.from_numpy(self._array[self._rows[idx]])
        import cv2

        path = self._paths[idx]
        img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'{path}: not a readable image')
        h, w = img.shape[:2]
        if h > size or w > size:
            raise ValueError(
                f'{path} is {w}x{h} px, larger than crop_size={size}; make '
                'the cache with --max-size <= crop_size or raise crop_size'
            )
        if h != size or w != size:
            padded = np.zeros((size, size, 3), np.uint8)
            padded[:h, :w] = img
            img = padded
        return torch.from_numpy(img).permute(2, 0, 1)  # (3, S, S) view

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        inputs = self._read(idx)
        sample = PoseDataSample()
        gt = InstanceData()
        gt.bbox_centers = self._centers[idx]
        gt.bbox_scales = self._scales[idx]
        gt.keypoints = self._keypoints[idx]
        gt.keypoints_visible = self._visible[idx]
        sample.gt_instances = gt
        for name, value in (
            ('id', int(self._ids[idx])),
            ('img_id', self._img_ids[idx]),
            ('img_path', self._paths[idx]),
            ('img_shape', (self.crop_size, self.crop_size)),
            ('flip_indices', self._flip_indices),
        ):
            sample.set_field(value, name, field_type='metainfo')
        return dict(inputs=inputs, data_samples=sample)
