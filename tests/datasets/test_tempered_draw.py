"""Tempered pose balancing (share ∝ n_b^α) and outlier-robust bin edges."""

import numpy as np
import pytest
import torch

from mmaniso.datasets.samplers import tempered_draw
from mmaniso.ops.pose import pose_bins

# A heavy-tailed pose set: bin sizes like the AFLW-19 training shapes'.
COUNTS = [2, 6, 28, 36, 46, 38, 32, 12, 1]


def _bin_ids(counts=COUNTS):
    return torch.repeat_interleave(
        torch.arange(len(counts)), torch.tensor(counts)
    )


def _shares_by_loop(counts, alpha, size):
    """Largest-remainder quotas of size * n_b^α / Σ n^α, one bin at a time."""
    nonempty = [b for b, n in enumerate(counts) if n > 0]
    total = sum(counts[b] ** alpha for b in nonempty)
    exact = {b: size * counts[b] ** alpha / total for b in nonempty}
    quota = {b: int(np.floor(exact[b])) for b in nonempty}
    rest = sorted(nonempty, key=lambda b: (-(exact[b] - quota[b]), b))
    for b in rest[: size - sum(quota.values())]:
        quota[b] += 1
    return [quota.get(b, 0) for b in range(len(counts))]


@pytest.mark.parametrize('alpha', [0.0, 0.3, 0.5, 1.0])
def test_bin_shares_follow_n_to_the_alpha(alpha):
    ids = _bin_ids()
    size = len(ids)
    g = torch.Generator().manual_seed(0)
    draw = tempered_draw(ids, len(COUNTS), alpha, size, g)
    assert len(draw) == size
    got = torch.bincount(ids[draw], minlength=len(COUNTS)).tolist()
    assert got == _shares_by_loop(COUNTS, alpha, size)


def test_alpha_one_at_dataset_length_is_no_balancing():
    ids = _bin_ids()
    g = torch.Generator().manual_seed(1)
    draw = tempered_draw(ids, len(COUNTS), 1.0, len(ids), g)
    assert sorted(draw.tolist()) == list(range(len(ids)))


def test_alpha_zero_gives_equal_shares_and_cycles_within_a_bin():
    ids = _bin_ids()
    g = torch.Generator().manual_seed(2)
    draw = tempered_draw(ids, len(COUNTS), 0.0, 9 * 20, g)
    per_bin = torch.bincount(ids[draw], minlength=len(COUNTS))
    assert per_bin.tolist() == [20] * 9
    # A bin of 2 faces drawn 20 times: each face exactly 10 times, and a
    # bin of 46 drawn 20 times: no face twice.
    for b in range(len(COUNTS)):
        faces = torch.bincount(draw[ids[draw] == b])
        faces = faces[faces > 0]
        assert int(faces.max()) - int(faces.min()) <= 1


def test_empty_bins_get_nothing_and_seed_decides():
    ids = _bin_ids([3, 0, 5])
    a = tempered_draw(ids, 3, 0.0, 10, torch.Generator().manual_seed(3))
    b = tempered_draw(ids, 3, 0.0, 10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.bincount(ids[a], minlength=3).tolist() == [5, 0, 5]
    with pytest.raises(ValueError, match='temperature'):
        tempered_draw(ids, 3, 1.5, 10, torch.Generator())


def _one_axis_shapes(scores):
    """Shapes that differ along one mode only, by the given amounts."""
    base = torch.tensor([[-1.0, 0], [1, 0], [0, 1], [0, -1], [0.5, 0.5]])
    mode = torch.tensor([[0.1, 0], [0.1, 0], [0, 0], [0, 0], [0, 0.05]])
    return base + torch.as_tensor(scores)[:, None, None].float() * mode


def test_clip_quantiles_keep_outliers_from_taking_bins():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 0.3, 200), [6.0, -6.0]])
    shapes = _one_axis_shapes(scores)
    full = pose_bins(shapes, num_bins=9)
    robust = pose_bins(shapes, num_bins=9, clip_quantiles=(0.01, 0.99))
    # Full range: two outliers stretch the range, most faces in 1-3 bins.
    assert int((full.counts > 0).sum()) < 6
    # Clipped: the bins span the bulk, and the outliers join the end bins.
    assert int((robust.counts > 0).sum()) == 9
    assert robust.counts.sum() == len(scores)
    assert {int(robust.ids[-1]), int(robust.ids[-2])} == {0, 8}
    with pytest.raises(ValueError, match='clip_quantiles'):
        pose_bins(shapes, clip_quantiles=(0.9, 0.1))
