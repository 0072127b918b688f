"""Pose-balanced sampling (Rayhan et al., BMVC 2020; Feng et al., CVPR 2018).

The training shapes are put in equal-width bins along the first principal
component of their Procrustes-aligned coordinates
(:func:`mmaniso.datasets.training_shapes.dataset_pose_bins`), once, when the
sampler is built.
Each epoch then draws a balanced list of indices from a private generator
seeded with ``seed + epoch``; every rank draws the same list and keeps its
``[rank::world_size]`` share, as MMEngine's ``DefaultSampler`` does.
"""

import hashlib
import math
from typing import Iterator, Optional, Sequence, Sized, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from mmpose.registry import DATA_SAMPLERS
from torch import Tensor
from torch.utils.data import Sampler

from .training_shapes import dataset_pose_bins

MODES = ('undersample', 'oversample', 'tempered')


def balanced_draw_size(counts: Tensor, mode: str) -> int:
    """Length of a balanced epoch: non-empty bins times their target size.

    .. math::
        L = |\\{b : n_b > 0\\}| \\cdot \\min_{n_b > 0} n_b
        \\ \\text{(undersample)} \\quad \\text{or} \\quad \\cdot \\max_b n_b
        \\ \\text{(oversample)}

    Args:
        counts (Tensor): Shapes per bin, shape (num_bins,).
        mode: ``'undersample'`` or ``'oversample'``.

    Returns:
        int: The number of indices in one epoch, over all ranks.

    Example:
        >>> balanced_draw_size(torch.tensor([5, 0, 2, 9]), 'undersample')
        6
    """
    nonempty = counts[counts > 0]
    if len(nonempty) == 0:
        return 0
    per_bin = nonempty.min() if mode == 'undersample' else nonempty.max()
    return int(len(nonempty) * per_bin)


def balanced_draw(
    bin_ids: Tensor,
    num_bins: int,
    mode: str,
    generator: torch.Generator,
    shuffle: bool = True,
) -> Tensor:
    """Draws one epoch of pose-balanced dataset indices.

    ``undersample``: every non-empty bin gives as many indices as the
    smallest non-empty bin holds, drawn without replacement.
    ``oversample``: every non-empty bin gives as many as the largest holds;
    a smaller bin repeats all its members as often as fits, and the rest
    are drawn without replacement. Only ``generator`` is used, so the
    result depends on nothing but its seed.

    Args:
        bin_ids (Tensor): Bin of each sample, shape (N,), int64.
        num_bins: Number of bins.
        mode: ``'undersample'`` or ``'oversample'``.
        generator (torch.Generator): Source of randomness.
        shuffle: Shuffle the drawn indices; else return them sorted.

    Returns:
        Tensor: Indices, shape (L,), int64, with L from
        :func:`balanced_draw_size`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> ids = torch.tensor([0, 0, 0, 1, 2, 2])
        >>> epoch = balanced_draw(ids, 3, 'undersample', g)
        >>> sorted(ids[epoch].tolist())
        [0, 1, 2]
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    num = len(bin_ids)
    counts = torch.bincount(bin_ids, minlength=num_bins)
    # Group the samples by bin, in a random order within each bin.
    perm = torch.randperm(num, generator=generator)
    order = perm[torch.argsort(bin_ids[perm], stable=True)]  # (N,)
    starts = torch.cumsum(counts, 0) - counts  # (num_bins,)
    rank_in_bin = torch.arange(num) - starts[bin_ids[order]]  # (N,)
    nonempty = counts[counts > 0]
    if mode == 'undersample':
        chosen = order[rank_in_bin < nonempty.min()]
    else:
        target = int(nonempty.max())
        parts = []
        for b in torch.nonzero(counts).flatten().tolist():
            members = order[starts[b] : starts[b] + counts[b]]
            repeats, rest = divmod(target, len(members))
            parts += [members.repeat(repeats), members[:rest]]
        chosen = torch.cat(parts)
    if shuffle:
        chosen = chosen[torch.randperm(len(chosen), generator=generator)]
    else:
        chosen = torch.sort(chosen).values
    return chosen


def tempered_draw(
    bin_ids: Tensor,
    num_bins: int,
    temperature: float,
    size: int,
    generator: torch.Generator,
    shuffle: bool = True,
) -> Tensor:
    """Draws ``size`` indices, bin ``b`` getting a share ``∝ n_b^α``.

    .. math:: q_b = \\frac{n_b^\\alpha}{\\sum_{c : n_c > 0} n_c^\\alpha}

    Each non-empty bin gets ``round(size * q_b)`` indices (largest
    remainders, so they add up to ``size``), taken from a fresh random
    order of its members and cycling through them when it needs more than
    it has, so no face repeats before every face of its bin has been drawn.
    ``α = 0`` gives every bin the same share (the paper's undersampling,
    at any epoch length); ``α = 1`` gives each bin its own size, so with
    ``size = N`` every face is drawn exactly once (no balancing).

    Args:
        bin_ids (Tensor): Bin of each sample, shape (N,), int64.
        num_bins: Number of bins.
        temperature: ``α`` in [0, 1].
        size: Number of indices to draw.
        generator (torch.Generator): Source of randomness.
        shuffle: Shuffle the drawn indices; else return them sorted.

    Returns:
        Tensor: Indices, shape (size,), int64.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> ids = torch.tensor([0, 0, 0, 0, 1, 2])
        >>> draw = tempered_draw(ids, 3, 0.0, 6, g)
        >>> torch.bincount(ids[draw]).tolist()
        [2, 2, 2]
    """
    if not 0 <= temperature <= 1:
        raise ValueError(f'temperature must be in [0, 1], got {temperature}')
    counts = torch.bincount(bin_ids, minlength=num_bins)
    nonempty = torch.nonzero(counts).flatten()
    share = counts[nonempty].double().pow(temperature)
    exact = size * share / share.sum()
    quota = exact.floor().long()
    # Largest remainders (ties to the lower bin) fill up to ``size``.
    short = size - int(quota.sum())
    if short > 0:
        order = torch.argsort(exact - quota, descending=True, stable=True)
        quota[order[:short]] += 1
    parts = []
    for b, want in zip(nonempty.tolist(), quota.tolist()):
        members = torch.nonzero(bin_ids == b).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        repeats, rest = divmod(want, len(members))
        parts += [members.repeat(repeats), members[:rest]]
    chosen = torch.cat(parts) if parts else bin_ids.new_zeros(0)
    if shuffle:
        return chosen[torch.randperm(len(chosen), generator=generator)]
    return torch.sort(chosen).values


def _draws_per_epoch(
    value: Union[int, str], num_samples: int, draw_size: int
) -> int:
    if value == 'auto':
        return max(1, round(num_samples / max(draw_size, 1)))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"draws_per_epoch must be a positive int or 'auto', got {value!r}"
        )
    return value


@DATA_SAMPLERS.register_module()
class PoseBalancedSampler(Sampler):
    """Samples every pose bin equally often, on one or many ranks.

    The training shapes (keypoints normalised to each sample's box, read
    from the annotations without loading images) are binned along their
    first principal component after generalised Procrustes alignment,
    once, at construction; the bin counts and the epoch length are logged.
    Each epoch:

    - ``undersample`` (Rayhan et al.): each non-empty bin contributes as
      many samples as the smallest non-empty bin, drawn afresh without
      replacement. One draw is ``num_nonempty_bins * min_count`` samples,
      often far fewer than the dataset; by default (``draws_per_epoch=
      'auto'``) an epoch chains fresh draws up to about the dataset's
      length, so the schedule keeps its number of iterations.
    - ``oversample`` (Wing loss): minority bins are repeated up to the
      largest bin. A draw of ``num_nonempty_bins * max_count`` can be
      several times the dataset; with ``draws_per_epoch='auto'`` each draw
      is cut to the dataset's length, so that an oversampled run trains as
      many iterations as its reference.
    - ``tempered`` (``temperature=α``, :func:`tempered_draw`): each draw is
      as long as the dataset, bin ``b`` getting a share ``∝ n_b^α``; α = 0
      is equal shares (undersampling's balance without its short epochs),
      α = 1 no balancing. Giving ``temperature`` selects this mode.

    Randomness comes from a private ``torch.Generator`` seeded with
    ``seed + epoch``, so global reseeding does not change the draw and a run
    resumed at epoch ``e`` (``set_epoch(e)``, by MMEngine's
    ``DistSamplerSeedHook``) draws what an uninterrupted run would, given
    the same seed (``PoseBalancingHook`` keeps the seed in checkpoints).
    Every rank draws the same list, padded by repetition to a multiple of
    the world size when ``round_up``, and takes ``[rank::world_size]``.

    Args:
        dataset (Sized): A top-down pose dataset.
        num_bins: Number of equal-width pose bins.
        mode: ``'undersample'`` or ``'oversample'``.
        shuffle: Shuffle each epoch's indices; else yield them in dataset
            order (the balanced draw is still new each epoch).
        seed: Seed shared by all ranks; a synchronised random one when not
            given.
        round_up: Pad the epoch so that every rank gets the same number of
            indices.
        temperature: ``α`` in [0, 1] of the ``tempered`` mode.
        clip_quantiles: ``(low, high)`` quantiles of the pose scores that
            span the bins (outlier-robust edges, e.g. ``(0.01, 0.99)``);
            the full range when not given.
        draws_per_epoch: Balanced draws concatenated into one epoch, each
            drawn afresh (one paper epoch each). ``'auto'`` (the default)
            takes as many as make an epoch about as long as the dataset, so
            that a schedule written in dataset epochs (MMPose's 210e) keeps
            its number of iterations when the sampler is pasted into it; an
            int chooses the number (``1``: the paper's short epochs, whose
            schedule must then be scaled by ``len(dataset) / draw_size``).
            Also a matter of speed: MMEngine pays a fixed cost per epoch
            (worker start-up; a 2 s pause per epoch in
            ``IterBasedTrainLoop``), which short undersampled epochs would
            pay every few iterations.

    Attributes:
        bin_ids (Tensor): Pose bin of each sample, shape (N,), int64.
        bin_counts (Tensor): Samples per bin, shape (num_bins,), int64.
        bin_edges (Tensor): Bin edges along the first principal component,
            shape (num_bins + 1,).
        pose_scores (Tensor): Each sample's coordinate along that
            component, shape (N,).
        draw_size (int): Indices in one balanced draw.
        draws_per_epoch (int): Balanced draws per epoch.
        epoch_size (int): Indices per epoch over all ranks, before padding.
        annotations (PoseAnnotations): The keypoints, visibilities and boxes
            read from the dataset.
        pose_bins (DatasetPoseBins): Those annotations and their bins, from
            :func:`~mmaniso.datasets.training_shapes.dataset_pose_bins` (which
            ``PoseBalancingHook`` reuses for the mean shape).
    """

    def __init__(
        self,
        dataset: Sized,
        num_bins: int = 9,
        mode: str = 'undersample',
        shuffle: bool = True,
        seed: Optional[int] = None,
        round_up: bool = True,
        draws_per_epoch: Union[int, str] = 'auto',
        temperature: Optional[float] = None,
        clip_quantiles: Optional[Sequence[float]] = None,
    ) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, int):
            raise TypeError(f'num_bins must be an int, got {num_bins!r}')
        if num_bins < 1:
            raise ValueError(f'num_bins must be >= 1, got {num_bins}')
        if temperature is not None:
            if mode == 'undersample':  # the default: temperature decides
                mode = 'tempered'
            if mode != 'tempered':
                raise ValueError(
                    f"temperature goes with mode='tempered', not {mode!r}"
                )
            if isinstance(temperature, bool) or not 0 <= temperature <= 1:
                raise ValueError(
                    f'temperature must be in [0, 1], got {temperature!r}'
                )
        elif mode == 'tempered':
            raise ValueError("mode='tempered' needs a temperature in [0, 1]")
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        rank, world_size = get_dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        self.num_bins = num_bins
        self.mode = mode
        self.shuffle = shuffle
        if seed is None:
            seed = sync_random_seed()
        self.seed = seed
        self.epoch = 0
        self.round_up = round_up

        self.temperature = None if temperature is None else float(temperature)
        self.clip_quantiles = (
            None if clip_quantiles is None else tuple(clip_quantiles)
        )
        self.pose_bins = dataset_pose_bins(
            dataset, num_bins, self.clip_quantiles
        )
        self.annotations = self.pose_bins.annotations
        bins = self.pose_bins.bins
        bin_ids = bins.ids
        self.bin_ids = bin_ids
        self.bin_counts = torch.bincount(bin_ids, minlength=num_bins)
        self.bin_edges = bins.edges
        self.pose_scores = bins.scores
        num_samples = len(self.bin_ids)
        if mode == 'tempered':
            self.draw_size = num_samples
        else:
            self.draw_size = balanced_draw_size(self.bin_counts, mode)
        # 'auto' keeps an epoch about as long as the dataset, cutting a
        # longer (oversampled) draw to its length.
        self.draw_limit = (
            num_samples
            if draws_per_epoch == 'auto' and self.draw_size > num_samples
            else self.draw_size
        )
        self.draws_per_epoch = _draws_per_epoch(
            draws_per_epoch, num_samples, self.draw_limit
        )
        self.epoch_size = self.draw_limit * self.draws_per_epoch

        if self.round_up:
            self.num_samples = math.ceil(self.epoch_size / world_size)
            self.total_size = self.num_samples * world_size
        else:
            self.num_samples = math.ceil((self.epoch_size - rank) / world_size)
            self.total_size = self.epoch_size
        how = mode if mode != 'tempered' else f'tempered (α={temperature})'
        cut = (
            f' cut to {self.draw_limit}'
            if self.draw_limit < self.draw_size
            else ''
        )
        print_log(
            f'PoseBalancedSampler: {len(self.bin_ids)} samples in '
            f'{num_bins} pose bins, counts '
            f'{self.bin_counts.tolist()}; {how} draw of '
            f'{self.draw_size} samples{cut}, {self.draws_per_epoch} '
            f'draw(s) per epoch: epoch of {self.epoch_size} samples '
            f'({self.num_samples} per rank, world size {world_size})',
            logger='current',
        )

    def checkpoint_settings(self) -> dict:
        """What decides this sampler's sequence of draws, for checkpoints.

        A resumed run draws what the uninterrupted run would only if these
        are unchanged (``PoseBalancingHook`` compares them on resume).
        ``annotations`` is a fingerprint of the training keypoints,
        visibilities and boxes.

        Returns:
            dict: ``num_bins``, ``mode``, ``shuffle``, ``round_up``,
            ``draws_per_epoch``, ``num_samples`` and ``annotations``, all
            plain Python values.
        """
        return dict(
            num_bins=int(self.num_bins),
            mode=str(self.mode),
            shuffle=bool(self.shuffle),
            round_up=bool(self.round_up),
            draws_per_epoch=int(self.draws_per_epoch),
            draw_limit=int(self.draw_limit),
            temperature=self.temperature,
            clip_quantiles=(
                None
                if self.clip_quantiles is None
                else [float(q) for q in self.clip_quantiles]
            ),
            num_samples=int(len(self.bin_ids)),
            annotations=self.annotation_fingerprint,
        )

    @property
    def annotation_fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of the training annotations."""
        if getattr(self, '_fingerprint', None) is None:
            digest = hashlib.sha256()
            for array in self.annotations:
                array = np.ascontiguousarray(array, dtype=np.float32)
                digest.update(str(array.shape).encode())
                digest.update(array.tobytes())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def __iter__(self) -> Iterator[int]:
        """Yields this rank's share of the current epoch's indices."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        # Successive draws of one generator: the same sequence of balanced
        # draws whatever their grouping into epochs.
        indices = torch.cat(
            [self._draw(generator) for _ in range(self.draws_per_epoch)]
        )
        if self.round_up and len(indices) < self.total_size:
            repeats = math.ceil(self.total_size / len(indices))
            indices = indices.repeat(repeats)[: self.total_size]
        indices = indices[self.rank : self.total_size : self.world_size]
        return iter(indices.tolist())

    def _draw(self, generator: torch.Generator) -> Tensor:
        if self.mode == 'tempered':
            return tempered_draw(
                self.bin_ids,
                self.num_bins,
                self.temperature,
                self.draw_size,
                generator,
                self.shuffle,
            )
        draw = balanced_draw(
            self.bin_ids, self.num_bins, self.mode, generator, self.shuffle
        )
        if self.draw_limit < len(draw):
            # Shuffled, a prefix keeps the balance in expectation; sorted,
            # take an even spread so that no bin is cut off.
            if self.shuffle:
                return draw[: self.draw_limit]
            keep = torch.linspace(0, len(draw) - 1, self.draw_limit)
            return draw[keep.round().long()]
        return draw

    def __len__(self) -> int:
        """The number of indices this rank yields per epoch."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch, and so the seed ``seed + epoch`` of its draw.

        Args:
            epoch: Epoch number.
        """
        self.epoch = epoch
