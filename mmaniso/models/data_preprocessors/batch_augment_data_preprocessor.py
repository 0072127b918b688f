"""MMPose's data preprocessor with batch augmentations before normalising."""

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmpose.models.data_preprocessors import PoseDataPreprocessor
from mmpose.registry import MODELS
from torch import nn


@MODELS.register_module()
class BatchAugmentDataPreprocessor(PoseDataPreprocessor):
    """``PoseDataPreprocessor`` that runs batch augmentations in training.

    MMPose 1.1's ``PoseDataPreprocessor`` has no ``batch_augments``; 1.2+
    runs them after normalising. Here they run, in training only, on the
    batch moved to the model's device and converted to float but not yet
    normalised, so that a warp fills the outside of a photograph with black
    as MMPose's CPU pipeline does; then the channels are converted and the
    batch normalised on the (smaller) augmented images. Evaluation, and
    training without ``batch_augments``, is ``PoseDataPreprocessor``'s.
    Checkpoints are interchangeable with it (no parameters or buffers are
    added).

    Each augmentation is a module ``(inputs, data_samples) -> (inputs,
    data_samples)``, as in MMPose 1.2+, e.g.
    :class:`~mmaniso.models.data_preprocessors.TopdownBatchAugment`.

    Args:
        batch_augments: Configs of the batch augmentations, built from
            MMPose's ``MODELS`` registry.
        **kwargs: ``PoseDataPreprocessor``'s (mean, std, bgr_to_rgb, ...).
    """

    def __init__(
        self, batch_augments: Optional[List[dict]] = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if batch_augments is not None and not isinstance(
            batch_augments, (list, tuple)
        ):
            raise TypeError(
                f'batch_augments must be a list of configs, got '
                f'{type(batch_augments).__name__}'
            )
        self.batch_augments = (
            nn.ModuleList([MODELS.build(aug) for aug in batch_augments])
            if batch_augments
            else None
        )

    def forward(self, data: dict, training: bool = False) -> dict:
        """Moves, augments (training) and normalises a batch.

        Args:
            data (dict): ``inputs`` (a (B, C, H, W) tensor or B tensors of
                one size, uint8 or float) and ``data_samples``.
            training: Whether to augment.

        Returns:
            dict: ``inputs`` (B, C, h, w) float and ``data_samples``.
        """
        if not training or not self.batch_augments:
            return super().forward(data, training)
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data['data_samples']
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        if inputs.dim() != 4:
            raise ValueError(
                'BatchAugmentDataPreprocessor expects a (B, C, H, W) batch, '
                f'got shape {tuple(inputs.shape)}'
            )
        inputs = inputs.float()
        for augment in self.batch_augments:
            inputs, samples = augment(inputs, samples)
        if self._channel_conversion and inputs.shape[1] == 3:
            inputs = inputs[:, [2, 1, 0]]
        if self._enable_normalize:
            inputs = (inputs - self.mean) / self.std
        h, w = inputs.shape[2:]
        pad_h = math.ceil(h / self.pad_size_divisor) * self.pad_size_divisor
        pad_w = math.ceil(w / self.pad_size_divisor) * self.pad_size_divisor
        if pad_h != h or pad_w != w:
            inputs = F.pad(
                inputs, (0, pad_w - w, 0, pad_h - h), value=self.pad_value
            )
        return dict(inputs=inputs, data_samples=samples)
