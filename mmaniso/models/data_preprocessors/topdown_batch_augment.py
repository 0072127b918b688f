"""MMPose's top-down training augmentation, run on a batch on the device."""

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.structures import InstanceData
from mmpose.registry import MODELS
from torch import Tensor, nn

from mmaniso.ops.batch_affine import (
    TopdownParams,
    draw_topdown_params,
    topdown_augment,
)

# MMPose 1.x's defaults (RandomFlip, RandomBBoxTransform).
DEFAULTS = dict(
    flip_prob=0.5,
    shift_factor=0.16,
    shift_prob=0.3,
    scale_factor=(0.5, 1.5),
    scale_prob=1.0,
    rotate_factor=80.0,
    rotate_prob=0.6,
)
# Steps of a top-down training pipeline that leave nothing to draw: the
# image is read by the dataset, the box padded by it, the batch packed.
_READ_BY_DATASET = ('LoadImage', 'GetBBoxCenterScale', 'PackPoseInputs')


def _name(step: Mapping) -> str:
    kind = step.get('type')
    return kind.rsplit('.', 1)[-1] if isinstance(kind, str) else str(kind)


def topdown_augment_settings(pipeline: Sequence[Mapping]) -> Dict:
    """:class:`TopdownBatchAugment`'s settings from a training pipeline.

    Reads ``RandomFlip`` (prob), ``RandomBBoxTransform`` (shift, scale and
    rotation factors and probabilities, MMPose's defaults where the config
    leaves them out), ``TopdownAffine`` (input size) and checks that
    ``GenerateTarget`` encodes ``RegressionLabel`` targets of that size.
    A pipeline without ``RandomFlip`` or ``RandomBBoxTransform`` gets no
    flip or no box transform.

    Args:
        pipeline: The training pipeline, as config dicts.

    Returns:
        dict: ``input_size``, ``flip_prob``, ``shift_factor``,
        ``shift_prob``, ``scale_factor``, ``scale_prob``,
        ``rotate_factor``, ``rotate_prob``.

    Raises:
        ValueError: A step that cannot run on the device (any other
            transform, a UDP warp, a flip that is not horizontal, a target
            that is not ``RegressionLabel``), or no ``TopdownAffine``.
    """
    settings = dict(
        DEFAULTS,
        flip_prob=0.0,
        shift_prob=0.0,
        scale_prob=0.0,
        rotate_prob=0.0,
    )
    input_size = None
    for step in pipeline:
        kind = _name(step)
        if kind in _READ_BY_DATASET:
            continue
        if kind == 'RandomFlip':
            prob = step.get('prob', 0.5)
            direction = step.get('direction', 'horizontal')
            if direction != 'horizontal' or not isinstance(prob, (int, float)):
                raise ValueError(
                    f'RandomFlip(prob={prob!r}, direction={direction!r}): '
                    'the device augmentation flips horizontally with one '
                    "probability; use direction='horizontal' and a float "
                    'prob, or keep the CPU pipeline'
                )
            settings['flip_prob'] = float(prob)
        elif kind == 'RandomBBoxTransform':
            for key in (
                'shift_factor',
                'shift_prob',
                'scale_factor',
                'scale_prob',
                'rotate_factor',
                'rotate_prob',
            ):
                settings[key] = step.get(key, DEFAULTS[key])
            settings['scale_factor'] = tuple(
                float(v) for v in settings['scale_factor']
            )
        elif kind == 'TopdownAffine':
            if step.get('use_udp', False):
                raise ValueError(
                    'TopdownAffine(use_udp=True): the device augmentation '
                    'warps as get_warp_matrix does (no UDP); keep the CPU '
                    'pipeline for UDP'
                )
            input_size = tuple(int(v) for v in step['input_size'])
        elif kind == 'GenerateTarget':
            encoder = step.get('encoder') or {}
            if (
                not isinstance(encoder, Mapping)
                or _name(encoder) != 'RegressionLabel'
                or step.get('use_dataset_keypoint_weights', False)
            ):
                raise ValueError(
                    f'GenerateTarget(encoder={encoder!r}): the device '
                    'augmentation makes RegressionLabel targets (without '
                    'dataset keypoint weights) only; keep the CPU pipeline '
                    'for other codecs'
                )
            codec_size = encoder.get('input_size')
            if input_size and tuple(codec_size) != input_size:
                raise ValueError(
                    f'RegressionLabel input_size {tuple(codec_size)} differs '
                    f"from TopdownAffine's {input_size}"
                )
        else:
            raise ValueError(
                f'the training pipeline step {kind!r} has no device '
                'counterpart; the device augmentation reproduces '
                'GetBBoxCenterScale, RandomFlip, RandomBBoxTransform, '
                'TopdownAffine and GenerateTarget(RegressionLabel) only. '
                'Remove the step or keep the CPU pipeline'
            )
    if input_size is None:
        raise ValueError(
            'the training pipeline has no TopdownAffine; the device '
            'augmentation needs its input_size'
        )
    settings['input_size'] = input_size
    return settings


def iteration_seed(stream_seed: int, iteration: int) -> int:
    """The seed of one training iteration's draws: a hash of the stream's
    seed and the iteration (NumPy's ``SeedSequence``), so neighbouring
    iterations and seeds give unrelated draws."""
    state = np.random.SeedSequence([stream_seed, iteration]).generate_state(
        2, np.uint32
    )
    return (int(state[0]) << 31) ^ int(state[1])


def runner_iteration() -> Optional[int]:
    """The training iteration MMEngine's ``RuntimeInfoHook`` last put in
    the current message hub (before every training iteration and when
    training starts or resumes); None outside a runner."""
    from mmengine.logging import MessageHub

    value = MessageHub.get_current_instance().get_info('iter')
    return None if value is None else int(value)


@MODELS.register_module()
class TopdownBatchAugment(nn.Module):
    """``RandomFlip`` + ``RandomBBoxTransform`` + ``TopdownAffine`` +
    ``GenerateTarget(RegressionLabel)`` on a batch, on its device.

    A batch augmentation of :class:`BatchAugmentDataPreprocessor`
    (``(inputs, data_samples) -> (inputs, data_samples)``). Each sample is
    a fixed-size source crop (:class:`~mmaniso.datasets.CropFeedDataset`)
    whose data sample holds, in source pixels, the padded box
    (``gt_instances.bbox_centers``, ``bbox_scales``), the keypoints and
    their visibility, and ``flip_indices`` in its metainfo. Per sample it
    draws a flip, shift, scale and rotation with MMPose's distributions
    (:func:`mmaniso.ops.batch_affine.draw_topdown_params`), warps the batch
    with one ``grid_sample`` and sets ``gt_instance_labels``
    (``keypoint_labels``, ``keypoint_weights``, ``keypoints_visible``) as
    ``GenerateTarget`` and ``PackPoseInputs`` would.

    It runs in float32 under AMP. In MMPose 1.2+'s own
    ``PoseDataPreprocessor(batch_augments=...)`` it runs after
    normalisation, so the outside of a photograph fills with the mean
    colour instead of black.

    Random stream: a ``torch.Generator`` on the batch's device, from
    ``seed + rank`` (``seed``: this argument, else the run's seed as
    MMEngine set it, ``torch.initial_seed()``). Inside a runner it is
    seeded again at every training iteration from ``(seed + rank,
    iteration)`` (the iteration MMEngine's ``RuntimeInfoHook`` puts in the
    message hub), so a resumed run draws what the uninterrupted run drew
    from its first resumed iteration on; outside a runner it is one stream.
    A fixed seed gives the same draws on the same kind of device.

    Args:
        pipeline: A training pipeline (config dicts) to take every setting
            from (:func:`topdown_augment_settings`); then give no other
            setting.
        input_size: Model input (w, h).
        flip_prob: ``RandomFlip(prob)``; None: MMPose's default.
        shift_factor: ``RandomBBoxTransform(shift_factor)``.
        shift_prob: ``RandomBBoxTransform(shift_prob)``.
        scale_factor: ``RandomBBoxTransform(scale_factor)``.
        scale_prob: ``RandomBBoxTransform(scale_prob)``.
        rotate_factor: ``RandomBBoxTransform(rotate_factor)``, degrees.
        rotate_prob: ``RandomBBoxTransform(rotate_prob)``.
        seed: Seed of the stream before the rank is added; None: the run's.
    """

    def __init__(
        self,
        pipeline: Optional[Sequence[Mapping]] = None,
        input_size: Optional[Tuple[int, int]] = None,
        flip_prob: Optional[float] = None,
        shift_factor: Optional[float] = None,
        shift_prob: Optional[float] = None,
        scale_factor: Optional[Tuple[float, float]] = None,
        scale_prob: Optional[float] = None,
        rotate_factor: Optional[float] = None,
        rotate_prob: Optional[float] = None,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__()
        given = dict(
            input_size=input_size,
            flip_prob=flip_prob,
            shift_factor=shift_factor,
            shift_prob=shift_prob,
            scale_factor=scale_factor,
            scale_prob=scale_prob,
            rotate_factor=rotate_factor,
            rotate_prob=rotate_prob,
        )
        given = {k: v for k, v in given.items() if v is not None}
        if pipeline is not None:
            if given:
                raise TypeError(
                    f'TopdownBatchAugment takes its settings from pipeline; '
                    f'do not also give {sorted(given)}'
                )
            settings = topdown_augment_settings(pipeline)
        else:
            if 'input_size' not in given:
                raise TypeError(
                    'TopdownBatchAugment needs input_size=(w, h) or the '
                    'training pipeline (pipeline=...)'
                )
            settings = dict(DEFAULTS, **given)
        w, h = (int(v) for v in settings.pop('input_size'))
        if w <= 0 or h <= 0:
            raise ValueError(f'input_size must be positive, got {(w, h)}')
        self.input_size = (w, h)
        settings['scale_factor'] = tuple(
            float(v) for v in settings['scale_factor']
        )
        # Validated once here, not at the first batch.
        draw_topdown_params(1, torch.Generator(), **settings)
        self.settings = settings
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f'seed must be an int or None, got {seed!r}')
        self.seed = seed
        self._generator: Optional[torch.Generator] = None
        self._stream_seed = 0
        self._seeded_at: Optional[int] = None
        self._flip_indices: Dict[Tuple, Tensor] = {}
        self.last_params: Optional[TopdownParams] = None

    def generator(
        self, device: torch.device, iteration: Optional[int] = None
    ) -> torch.Generator:
        """This rank's random stream on ``device``: seeded at first use, and
        again whenever ``iteration`` (the runner's training iteration, None
        outside a runner) differs from the last call's; calls within one
        iteration go on along the stream."""
        device = torch.device(device)
        gen = self._generator
        fresh = gen is None or gen.device != device
        if fresh:
            seed = torch.initial_seed() if self.seed is None else self.seed
            rank, _ = get_dist_info()
            self._stream_seed = (int(seed) + rank) % (2**63)
            gen = torch.Generator(device=device)
            gen.manual_seed(self._stream_seed)
            self._generator = gen
            self._seeded_at = None
        if iteration is not None and iteration != self._seeded_at:
            gen.manual_seed(iteration_seed(self._stream_seed, iteration))
            self._seeded_at = iteration
        return gen

    def _flip_index(self, samples: List, device) -> Tensor:
        keys = [tuple(s.metainfo['flip_indices']) for s in samples]
        for key in dict.fromkeys(keys):
            if (key, device) not in self._flip_indices:
                self._flip_indices[key, device] = torch.tensor(
                    key, dtype=torch.long, device=device
                )
        if len(set(keys)) == 1:
            return self._flip_indices[keys[0], device]
        out = [self._flip_indices[k, device] for k in keys]
        return torch.stack(out)  # (B, K)

    @staticmethod
    def _gather(samples: List, device) -> Tuple[Tensor, ...]:
        """Boxes, keypoints and visibility of a batch, in one copy."""
        fields = ('bbox_centers', 'bbox_scales', 'keypoints')
        gts = [s.gt_instances for s in samples]
        b = len(gts)
        parts = []
        for name in fields + ('keypoints_visible',):
            values = [gt.get(name) for gt in gts]
            if any(v is None for v in values):
                raise KeyError(
                    f'TopdownBatchAugment: a data sample has no '
                    f'gt_instances.{name}; train from CropFeedDataset, '
                    'whose samples carry the padded box and keypoints'
                )
            if isinstance(values[0], Tensor):
                values = [v.detach().cpu().numpy() for v in values]
            parts.append(np.concatenate(values).reshape(b, -1))
        flat = np.concatenate(parts, 1).astype(np.float32, copy=False)
        flat = torch.from_numpy(flat).to(device, non_blocking=True)
        k = parts[3].shape[1]
        center, scale = flat[:, 0:2], flat[:, 2:4]
        keypoints = flat[:, 4 : 4 + 2 * k].reshape(b, k, 2)
        return center, scale, keypoints, flat[:, 4 + 2 * k :]

    def forward(
        self, inputs: Tensor, data_samples: List
    ) -> Tuple[Tensor, List]:
        """Augments a batch of source crops into model inputs.

        Args:
            inputs (Tensor): Source crops, shape (B, C, H, W), float.
            data_samples (list[PoseDataSample]): One per crop.

        Returns:
            tuple: Inputs, shape (B, C, h, w), and the data samples with
            their ``gt_instance_labels`` set.
        """
        if inputs.dim() != 4 or len(data_samples) != inputs.shape[0]:
            raise ValueError(
                f'expected inputs (B, C, H, W) and B data samples, got '
                f'{tuple(inputs.shape)} and {len(data_samples)} samples'
            )
        device = inputs.device
        gen = self.generator(device, runner_iteration())
        params = draw_topdown_params(
            inputs.shape[0], gen, device, **self.settings
        )
        center, scale, keypoints, visible = self._gather(data_samples, device)
        # MMEngine runs the data preprocessor inside the AMP context; in
        # half precision the maps would move keypoints by tenths of a pixel.
        with torch.autocast(device.type, enabled=False):
            out = topdown_augment(
                inputs.float(),
                center,
                scale,
                keypoints,
                visible,
                params,
                self.input_size,
                self._flip_index(data_samples, device),
            )
        self.last_params = params
        for i, sample in enumerate(data_samples):
            labels = InstanceData()
            labels.keypoint_labels = out.keypoint_labels[i : i + 1]
            labels.keypoint_weights = out.keypoint_weights[i : i + 1]
            labels.keypoints_visible = out.keypoint_weights[i : i + 1]
            sample.gt_instance_labels = labels
            sample.set_field(
                self.input_size, 'input_size', field_type='metainfo'
            )
        return out.images, data_samples

    def extra_repr(self) -> str:
        items = dict(input_size=self.input_size, **self.settings)
        return ', '.join(f'{k}={v}' for k, v in items.items())
