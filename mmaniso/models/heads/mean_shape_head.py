"""Regression of the displacement from the mean shape (Rayhan et al.)."""

import json
import os
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmpose.models.heads import RegressionHead
from mmpose.registry import MODELS
from mmpose.utils.typing import OptConfigType, OptSampleList
from torch import Tensor, nn

MeanShapeLike = Union[str, os.PathLike, Sequence, np.ndarray, Tensor]


def load_mean_shape(value: MeanShapeLike) -> np.ndarray:
    """Reads a mean shape given in a config.

    Args:
        value: ``[[x, y], ...]`` (a list, array or tensor), or the path of a
            ``.npy``, ``.json`` (a list of pairs, or ``{"mean_shape": ...}``)
            or text file (``np.loadtxt``; commas or spaces).

    Returns:
        ndarray: The mean shape, shape (K, 2), float32.
    """
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not osp.isfile(path):
            raise FileNotFoundError(f'mean_shape file not found: {path}')
        if path.endswith('.npy'):
            value = np.load(path, allow_pickle=False)
        elif path.endswith('.json'):
            with open(path) as f:
                value = json.load(f)
            if isinstance(value, dict):
                value = value['mean_shape']
        else:
            with open(path) as f:
                text = f.read().replace(',', ' ')
            value = np.loadtxt(text.splitlines(), ndmin=2)
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _loss_with_codec_size(loss, decoder):
    """The loss config, an AnisotropicLoss given the codec's input size."""
    from mmaniso.models.losses import AnisotropicLoss

    if not isinstance(loss, dict) or decoder is None:
        return loss
    kind = loss.get('type')
    name = kind.rsplit('.', 1)[-1] if isinstance(kind, str) else kind
    if name not in ('AnisotropicLoss', AnisotropicLoss):
        return loss
    codec = decoder.get('input_size') if isinstance(decoder, dict) else None
    if codec is None:
        return loss
    given = loss.get('input_size')
    if given is None:
        return dict(loss, input_size=tuple(codec))
    if tuple(float(v) for v in given) != tuple(float(v) for v in codec):
        raise ValueError(
            f'MeanShapeRegressionHead: the loss has input_size={tuple(given)}'
            f' but the decoder (codec) has input_size={tuple(codec)}; a and b'
            ' are pixels of the input crop, so they must agree. Remove the '
            "loss's input_size: the head passes the codec's."
        )
    return loss


@MODELS.register_module()
class MeanShapeRegressionHead(RegressionHead):
    """A RegressionHead that predicts the displacement from a mean shape.

    The fully connected layer outputs ``dx`` and the head returns
    ``mean_shape + dx``, in the normalised frame of the ``RegressionLabel``
    codec ((0, 0) and (1, 1) are the input crop's corners). The layer starts
    at zero, so an untrained model predicts the mean face.

    ``mean_shape`` is a buffer, saved in checkpoints. Its value comes from,
    in order: a loaded checkpoint (``load_from``, ``--resume``, a test
    run); the ``mean_shape`` argument; else, when training starts,
    :class:`~mmaniso.engine.PoseBalancingHook`, which computes the mean over
    pose bins of the bins' mean shapes from the training annotations. Until
    then it is NaN and training or prediction stops with an error that says
    so.

    Flip test works unchanged: MMPose flips the full output, mean included.

    Args:
        in_channels: Number of input features.
        num_joints: Number of keypoints K.
        loss (Config, optional): The keypoint loss; SmoothL1Loss with target
            weights, as RegressionHead, when not given. An
            ``AnisotropicLoss`` without ``input_size`` gets the decoder's;
            one whose ``input_size`` differs from it is refused (its ``a``
            and ``b`` are pixels of that size).
        decoder (Config, optional): The codec, normally ``RegressionLabel``.
        mean_shape (optional): The mean shape in the codec's frame, shape
            (K, 2), or the path of a file holding it (see
            :func:`load_mean_shape`).
        init_cfg (Config, optional): Initialisation; by default the linear
            layer is zero.
    """

    def __init__(
        self,
        in_channels: Union[int, Sequence[int]],
        num_joints: int,
        loss: OptConfigType = None,
        decoder: OptConfigType = None,
        mean_shape: Optional[MeanShapeLike] = None,
        init_cfg: OptConfigType = None,
    ) -> None:
        if loss is None:
            loss = dict(type='SmoothL1Loss', use_target_weight=True)
        loss = _loss_with_codec_size(loss, decoder)
        super().__init__(
            in_channels=in_channels,
            num_joints=num_joints,
            loss=loss,
            decoder=decoder,
            init_cfg=init_cfg,
        )
        self.register_buffer(
            'mean_shape', torch.full((num_joints, 2), float('nan'))
        )
        self._mean_shape_ready = False
        if mean_shape is not None:
            self.set_mean_shape(load_mean_shape(mean_shape))
        # Zero whether or not init_weights runs: dx = 0 at the start.
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    @property
    def default_init_cfg(self) -> list:
        return [dict(type='Constant', layer='Linear', val=0, bias=0)]

    @property
    def has_mean_shape(self) -> bool:
        """Whether the mean shape is known (not NaN)."""
        return bool(torch.isfinite(self.mean_shape).all())

    def set_mean_shape(self, mean_shape: Union[np.ndarray, Tensor]) -> None:
        """Copies a mean shape into the buffer.

        Args:
            mean_shape (ndarray | Tensor): Shape (K, 2), in the codec's
                normalised frame.
        """
        value = torch.as_tensor(np.asarray(load_mean_shape(mean_shape)))
        if value.shape != self.mean_shape.shape:
            raise ValueError(
                f'mean_shape must have shape {tuple(self.mean_shape.shape)} '
                f'(num_joints, 2), got {tuple(value.shape)}'
            )
        if not bool(torch.isfinite(value).all()):
            raise ValueError('mean_shape has NaN or infinite entries')
        with torch.no_grad():
            self.mean_shape.copy_(value)
        self._mean_shape_ready = True

    def _require_mean_shape(self, stage: str) -> None:
        if self._mean_shape_ready:
            return
        if not self.has_mean_shape:
            raise RuntimeError(
                f'{type(self).__name__} has no mean shape for {stage}: load '
                'a checkpoint that has one, give mean_shape=[[x, y], ...] '
                '(or a file) in the head config, or train with '
                "custom_hooks=[dict(type='PoseBalancingHook')]"
            )
        self._mean_shape_ready = True

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        # A loaded buffer may differ from the one checked before.
        self._mean_shape_ready = False
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, feats: Tuple[Tensor]) -> Tensor:
        """The mean shape plus the predicted displacement.

        Args:
            feats (Tuple[Tensor]): Feature maps; the last one, flattened,
                feeds the linear layer.

        Returns:
            Tensor: Normalised coordinates, shape (B, K, 2).
        """
        return super().forward(feats) + self.mean_shape

    def predict(
        self,
        feats: Tuple[Tensor],
        batch_data_samples: OptSampleList,
        test_cfg: OptConfigType = None,
    ):
        """Decoded predictions; see ``RegressionHead.predict``."""
        self._require_mean_shape('prediction')
        return super().predict(feats, batch_data_samples, test_cfg or {})

    def loss(
        self,
        inputs: Tuple[Tensor],
        batch_data_samples: OptSampleList,
        train_cfg: OptConfigType = None,
    ) -> dict:
        """Losses against the RegressionLabel targets.

        With a loss that learns its scales (``AnisotropicLoss(scales=
        'learned' | 'learned_isotropic')``) the dict also holds their mean
        in input-crop pixels (``scale_along``, ``scale_across`` or
        ``scale_iso``; no ``loss`` in the name, so MMEngine logs them at
        every logging interval without adding them to the loss).
        """
        self._require_mean_shape('training')
        losses = super().loss(inputs, batch_data_samples, train_cfg or {})
        if getattr(self.loss_module, 'scales', 'fixed') in (
            'learned',
            'learned_isotropic',
        ):
            losses.update(
                self.loss_module.scale_summary(
                    *self.loss_module.learned_scales()
                )
            )
        return losses
