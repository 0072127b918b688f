"""Fills the head's mean shape and keeps the pose sampler's seed."""

from typing import List, Optional

from mmengine.dist import broadcast
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

from mmaniso.datasets.samplers import PoseBalancedSampler
from mmaniso.datasets.training_shapes import (
    DEFAULT_BBOX_PADDING,
    dataset_pose_bins,
    head_mean_shape,
    pipeline_setting,
)
from mmaniso.models.heads.mean_shape_head import MeanShapeRegressionHead

SEED_KEY = 'pose_balanced_sampler_seed'
SETTINGS_KEY = 'pose_balanced_sampler'


@HOOKS.register_module()
class PoseBalancingHook(Hook):
    """Training-time companion of pose balancing; one line in a config.

    ``custom_hooks = [dict(type='PoseBalancingHook')]`` does two things:

    - **Mean shape.** At ``before_train`` (after ``load_from``/resume), each
      :class:`~mmaniso.models.heads.MeanShapeRegressionHead` whose
      ``mean_shape`` is still unset (not in the checkpoint, not in the
      config) gets the mean over pose bins of the bins' mean shapes, from
      the training annotations (no image is read). The bins are those of
      the :class:`~mmaniso.datasets.PoseBalancedSampler` when it is the
      training sampler, else computed here with ``num_bins``. Rank 0's value
      is broadcast, so every rank starts identical.
    - **Sampler seed.** The sampler's seed is stored in every checkpoint and
      restored on resume, so that the resumed epochs draw what an
      uninterrupted run would have drawn even when the run's seed was
      random.
    - **Resume check.** Beside the seed, every checkpoint records the
      sampler's settings (``num_bins``, ``mode``, ``shuffle``,
      ``round_up``, ``draws_per_epoch``) and a fingerprint of the training
      annotations. A resumed run whose sampler differs in any of them would
      silently draw another sequence than the uninterrupted run: it stops
      at ``before_train`` and says what changed, unless
      ``accept_changed_sampler=True``.

    Args:
        num_bins: Pose bins for the mean shape when the training sampler is
            not a PoseBalancedSampler.
        bbox_padding: GetBBoxCenterScale's padding; read from the training
            pipeline when not given (1.25 if it is not found there).
        accept_changed_sampler: Resume even when the sampler's settings or
            the training annotations differ from the checkpoint's.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(
        self,
        num_bins: int = 9,
        bbox_padding: Optional[float] = None,
        accept_changed_sampler: bool = False,
    ) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, int):
            raise TypeError(f'num_bins must be an int, got {num_bins!r}')
        if num_bins < 1:
            raise ValueError(f'num_bins must be >= 1, got {num_bins}')
        if bbox_padding is not None and bbox_padding <= 0:
            raise ValueError(
                f'bbox_padding must be positive, got {bbox_padding}'
            )
        self.num_bins = num_bins
        self.bbox_padding = bbox_padding
        self.accept_changed_sampler = bool(accept_changed_sampler)
        self._checkpoint_seed = None
        self._checkpoint_settings = None

    @staticmethod
    def _sampler(runner):
        return getattr(runner.train_dataloader, 'sampler', None)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remembers the sampler seed and settings of the checkpoint."""
        meta = checkpoint.get('meta') or {}
        self._checkpoint_seed = meta.get(SEED_KEY)
        self._checkpoint_settings = meta.get(SETTINGS_KEY)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Stores the sampler seed and settings in the checkpoint's meta."""
        sampler = self._sampler(runner)
        if isinstance(sampler, PoseBalancedSampler):
            meta = checkpoint.setdefault('meta', {})
            meta[SEED_KEY] = int(sampler.seed)
            meta[SETTINGS_KEY] = sampler.checkpoint_settings()

    def before_train(self, runner) -> None:
        """Restores the sampler seed on resume; fills unset mean shapes."""
        self._restore_seed(runner)
        self._fill_mean_shapes(runner)

    def _restore_seed(self, runner) -> None:
        sampler = self._sampler(runner)
        seed = self._checkpoint_seed
        # Resumed (not merely load_from): the loop starts past iteration 0.
        resumed = runner.iter > 0 or runner.epoch > 0
        if (
            seed is None
            or not resumed
            or not isinstance(sampler, PoseBalancedSampler)
        ):
            return
        self._check_settings(sampler)
        if sampler.seed != seed:
            print_log(
                f'PoseBalancingHook: sampler seed {sampler.seed} -> {seed} '
                'from the resumed checkpoint',
                logger='current',
            )
            sampler.seed = seed

    def _check_settings(self, sampler: PoseBalancedSampler) -> None:
        saved = self._checkpoint_settings
        if saved is None:
            print_log(
                'PoseBalancingHook: the checkpoint records no sampler '
                'settings (written before they were recorded); the resumed '
                'draws are not checked against it',
                logger='current',
            )
            return
        now = sampler.checkpoint_settings()
        changed = [
            f'  {key}: {saved.get(key)!r} in the checkpoint, {now[key]!r} now'
            for key in now
            if saved.get(key) != now[key]
        ]
        if not changed:
            return
        what = '\n'.join(changed)
        if self.accept_changed_sampler:
            print_log(
                'PoseBalancingHook: resuming with a changed sampler '
                f'(accept_changed_sampler=True):\n{what}',
                logger='current',
            )
            return
        raise RuntimeError(
            'PoseBalancingHook: the resumed run would draw another sequence '
            'of training samples than the run that wrote the checkpoint:\n'
            f'{what}\n'
            '("annotations" is a fingerprint of the training keypoints and '
            'boxes; "num_samples" their number.) Resume with the '
            "checkpoint's settings and data, or accept the change on "
            "purpose with dict(type='PoseBalancingHook', "
            'accept_changed_sampler=True) in custom_hooks.'
        )

    @staticmethod
    def _heads(runner) -> List[MeanShapeRegressionHead]:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        return [
            m
            for m in model.modules()
            if isinstance(m, MeanShapeRegressionHead)
        ]

    def _fill_mean_shapes(self, runner) -> None:
        heads = self._heads(runner)
        if not heads:
            print_log(
                'PoseBalancingHook: the model has no MeanShapeRegressionHead;'
                ' no mean shape to fill',
                logger='current',
            )
            return
        unset = [h for h in heads if not h.has_mean_shape]
        if not unset:
            print_log(
                'PoseBalancingHook: keeping the mean shape of the checkpoint '
                'or config',
                logger='current',
            )
            return
        dataset = runner.train_dataloader.dataset
        sampler = self._sampler(runner)
        # One binning for the sampler and the mean: the sampler's when it
        # is the pose sampler, else the same function here.
        if isinstance(sampler, PoseBalancedSampler):
            binned, num_bins = sampler.pose_bins, sampler.num_bins
        else:
            binned = dataset_pose_bins(dataset, self.num_bins)
            num_bins = self.num_bins
        annotations, bin_ids = binned.annotations, binned.bins.ids
        padding = self.bbox_padding
        if padding is None:
            padding = pipeline_setting(
                dataset, 'GetBBoxCenterScale', 'padding'
            )
        if padding is None:
            padding = DEFAULT_BBOX_PADDING
        for head in unset:
            input_size = self._input_size(head, dataset)
            mean = head_mean_shape(
                annotations,
                bin_ids,
                input_size,
                padding,
                num_bins,
                exclude=binned.exclude,
            )
            if mean.shape[0] != head.num_joints:
                raise ValueError(
                    f'the training data has {mean.shape[0]} keypoints but '
                    f'the head predicts num_joints={head.num_joints}'
                )
            broadcast(mean, src=0)
            head.set_mean_shape(mean)
            counts = [int(c) for c in bin_ids.bincount(minlength=num_bins)]
            left_out = (
                0 if binned.exclude is None else int(binned.exclude.sum())
            )
            used = len(bin_ids) - left_out
            print_log(
                f'PoseBalancingHook: mean shape of {used} training '
                'shapes'
                + (f' ({left_out} outliers left out)' if left_out else '')
                + f' over the non-empty of {num_bins} pose bins '
                f'(counts {counts}), input size {tuple(input_size)}, box '
                f'padding {padding}; range x [{float(mean[:, 0].min()):.3f}, '
                f'{float(mean[:, 0].max()):.3f}], y '
                f'[{float(mean[:, 1].min()):.3f}, '
                f'{float(mean[:, 1].max()):.3f}]',
                logger='current',
            )

    @staticmethod
    def _input_size(head: MeanShapeRegressionHead, dataset):
        size = getattr(getattr(head, 'decoder', None), 'input_size', None)
        if size is None:
            size = pipeline_setting(dataset, 'TopdownAffine', 'input_size')
        if size is None:
            raise ValueError(
                'cannot tell the input size for the mean shape: give the '
                'head a RegressionLabel decoder or put TopdownAffine in '
                'the training pipeline'
            )
        return tuple(size)
