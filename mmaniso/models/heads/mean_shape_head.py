"""Regression of the displacement from the mean shape (Rayhan et al.)."""

import json
import os
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmpose.evaluation.functional import keypoint_pck_accuracy
from mmpose.models.heads import RegressionHead
from mmpose.registry import MODELS
from mmpose.utils.tensor_utils import to_numpy
from mmpose.utils.typing import OptConfigType, OptSampleList
from torch import Tensor, nn

from mmaniso.ops.likelihood import ellipse_axes, map_ellipses
from mmaniso.ops.tangents import curve_tangents

MeanShapeLike = Union[str, os.PathLike, Sequence, np.ndarray, Tensor]
PREDICT_SCALES = (None, 'anisotropic', 'isotropic')


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
        predict_scales: ``None``, or ``'anisotropic'`` / ``'isotropic'``:
            a second linear layer (``scale_fc``) also predicts, per image
            and landmark, 2 parameters (along and across the curve) or 1
            (isotropic) of the scales ``min_scale + exp(p)`` in input-crop
            pixels. It needs ``loss=dict(type='AnisotropicLoss',
            scales='predicted', ...)``, which trains them with the
            likelihood (tangents from the ground truth). Its weights start
            at zero and its bias at the loss's ``a`` and ``b``, so training
            starts from the fixed family. At inference ``predict`` turns
            them into an ellipse per landmark with tangents from the
            predicted shape (see :meth:`predict`).
        score_scale: ``s0`` of the keypoint score ``s0 / (s0 + sqrt(a b))``
            (``a``, ``b`` the predicted semi-axes in input-crop pixels), in
            input-crop pixels; the loss's ``b`` when not given.
    """

    def __init__(
        self,
        in_channels: Union[int, Sequence[int]],
        num_joints: int,
        loss: OptConfigType = None,
        decoder: OptConfigType = None,
        mean_shape: Optional[MeanShapeLike] = None,
        init_cfg: OptConfigType = None,
        predict_scales: Optional[str] = None,
        score_scale: Optional[float] = None,
    ) -> None:
        # The usual check of a choice argument, in this class's own words.
        if predict_scales not in PREDICT_SCALES:
            raise ValueError(
                f'MeanShapeRegressionHead: predict_scales must be one of '
                f'{PREDICT_SCALES}, got {predict_scales!r}'
            )
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
        self.predict_scales = predict_scales
        loss_scales = getattr(self.loss_module, 'scales', None)
        if (predict_scales is None) != (loss_scales != 'predicted'):
            raise ValueError(
                f'MeanShapeRegressionHead: predict_scales={predict_scales!r}'
                f" needs loss=dict(type='AnisotropicLoss', scales="
                "'predicted', ...) and the other way round (the loss has "
                f'scales={loss_scales!r}); set both or neither'
            )
        if predict_scales is not None:
            channels = 2 if predict_scales == 'anisotropic' else 1
            self.scale_fc = nn.Linear(
                self.fc.in_features, num_joints * channels
            )
            self._scale_channels = channels
            self.score_scale = float(
                self.loss_module.b if score_scale is None else score_scale
            )
            if not self.score_scale > 0:
                raise ValueError(
                    'MeanShapeRegressionHead: score_scale must be a positive '
                    f'number of input-crop pixels, got {score_scale!r}'
                )
            self._reset_scale_fc()

    def _reset_scale_fc(self) -> None:
        """Zero weights, bias at the loss's starting scales."""
        start = self.loss_module.initial_scale_params(self._scale_channels)
        with torch.no_grad():
            self.scale_fc.weight.zero_()
            self.scale_fc.bias.copy_(start.reshape(-1))

    def init_weights(self) -> None:
        """As the base class; the scale layer then starts at a and b."""
        super().init_weights()
        if self.predict_scales is not None:
            self._reset_scale_fc()

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

    def forward_scales(self, feats: Tuple[Tensor]) -> Tensor:
        """The predicted scale parameters (``predict_scales`` only).

        Args:
            feats (Tuple[Tensor]): Feature maps, as :meth:`forward`.

        Returns:
            Tensor: Parameters ``p`` of the scales ``min_scale + exp(p)``,
            shape (B, K, 2) (along, across) or (B, K, 1).
        """
        if self.predict_scales is None:
            raise ValueError(
                'MeanShapeRegressionHead: forward_scales needs '
                "predict_scales='anisotropic' or 'isotropic'"
            )
        x = torch.flatten(feats[-1], 1)
        return self.scale_fc(x).reshape(
            -1, self.num_joints, self._scale_channels
        )

    def predict(
        self,
        feats: Tuple[Tensor],
        batch_data_samples: OptSampleList,
        test_cfg: OptConfigType = None,
    ):
        """Decoded predictions; see ``RegressionHead.predict``.

        With ``predict_scales`` each instance also holds
        ``keypoint_ellipses``, shape (1, K, 3): per landmark the semi-axis
        along the predicted curve, the one across it (both in image
        pixels) and the angle of the along axis in radians (image x to
        image y), with tangents from the predicted shape (corners and
        isolated points: a circle of radius ``sqrt(a b)``, angle 0). The
        crop-to-image map is MMPose's for the keypoints
        (``bbox_scale / input_size`` per axis; a non-uniform one changes
        axes and angle); a sample without ``bbox_scales`` keeps input-crop
        pixels. ``keypoint_scores`` become ``s0 / (s0 + sqrt(a b))`` with
        ``a``, ``b`` in input-crop pixels and ``s0 = score_scale``: 1 for
        a sure landmark, 1/2 at ``sqrt(a b) = s0``, falling as the ellipse
        grows, so MMPose's visualiser and score thresholds work. Under flip
        test the scales come from the unflipped image.
        """
        self._require_mean_shape('prediction')
        test_cfg = test_cfg or {}
        preds = super().predict(feats, batch_data_samples, test_cfg)
        if self.predict_scales is None:
            return preds
        plain = feats[0] if test_cfg.get('flip_test', False) else feats
        with torch.no_grad():
            params = self.forward_scales(plain)
            along, across = self.loss_module.scales_from_params(params)
            kpts = np.stack([p.keypoints[0] for p in preds])  # crop px
            tangents, valid = curve_tangents(
                torch.as_tensor(kpts, dtype=params.dtype).to(params.device),
                self.loss_module.neighbours,
            )
            ellipses = ellipse_axes(tangents, valid, along, across)
            scores = self.score_scale / (
                self.score_scale + (along * across).sqrt()
            )
            mapped = ellipses.clone()
            for i, sample in enumerate(batch_data_samples or ()):
                scale = _crop_to_image_scale(sample)
                if scale is not None:
                    mapped[i : i + 1] = map_ellipses(
                        ellipses[i : i + 1], scale.to(ellipses)
                    )
        for i, pred in enumerate(preds):
            pred.keypoint_ellipses = to_numpy(mapped[i : i + 1])
            pred.keypoint_scores = to_numpy(scores[i : i + 1])
        return preds

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
        if self.predict_scales is not None:
            return self._loss_with_scales(inputs, batch_data_samples)
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

    def _loss_with_scales(
        self, inputs: Tuple[Tensor], batch_data_samples: OptSampleList
    ) -> dict:
        """``RegressionHead.loss`` with the predicted scales passed on."""
        pred = self.forward(inputs)
        params = self.forward_scales(inputs)
        labels = torch.cat(
            [d.gt_instance_labels.keypoint_labels for d in batch_data_samples]
        )
        weights = torch.cat(
            [d.gt_instance_labels.keypoint_weights for d in batch_data_samples]
        )
        losses = dict(
            loss_kpt=self.loss_module(
                pred, labels, weights.unsqueeze(-1), scale_params=params
            )
        )
        _, avg_acc, _ = keypoint_pck_accuracy(
            pred=to_numpy(pred),
            gt=to_numpy(labels),
            mask=to_numpy(weights) > 0,
            thr=0.05,
            norm_factor=np.ones((pred.size(0), 2), dtype=np.float32),
        )
        losses['acc_pose'] = torch.tensor(avg_acc, device=labels.device)
        with torch.no_grad():
            losses.update(
                self.loss_module.scale_summary(
                    *self.loss_module.scales_from_params(params)
                )
            )
        return losses


def _crop_to_image_scale(sample) -> Optional[Tensor]:
    """``bbox_scale / input_size`` of a top-down sample, shape (1, 2), as
    MMPose's ``TopdownPoseEstimator`` maps keypoints; None if unknown."""
    gt = getattr(sample, 'gt_instances', None)
    size = getattr(sample, 'metainfo', {}).get('input_size')
    if gt is None or 'bbox_scales' not in gt or size is None:
        return None
    bbox_scales = torch.as_tensor(np.asarray(gt.bbox_scales, np.float64))
    size = torch.as_tensor(np.asarray(size, np.float64))
    return (bbox_scales.reshape(-1, 2)[:1] / size).float()
