"""The statistics of the study's reports: paired tests, Holm's correction,
a bootstrap over training seeds and test faces, and the words that follow
them. Pure numpy/scipy."""

from typing import List, Sequence, Tuple

import numpy as np

BOOTSTRAP_RESAMPLES = 10000
BOOTSTRAP_SEED = 0
ALPHA = 0.05


def paired_interval(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> Tuple[float, float, float, int]:
    """Mean of ``a - b`` over pairs, its t interval and how many pairs
    have ``a < b``."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1)) * se
    return mean, mean - half, mean + half, int((d < 0).sum())


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values, in the order given.

    Example:
        >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, float)
    m = len(p)
    order = np.argsort(p, kind='stable')
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def paired_test(a: Sequence[float], b: Sequence[float]):
    """Mean of ``a - b``, its paired t 95% interval, the two-sided p of a
    paired t-test, and how many pairs have ``a < b``."""
    from scipy import stats

    mean, lo, hi, wins = paired_interval(a, b)
    d = np.asarray(a, float) - np.asarray(b, float)
    p = float(stats.ttest_1samp(d, 0.0).pvalue) if np.ptp(d) > 0 else (
        0.0 if d[0] != 0 else 1.0
    )  # fmt: skip
    return mean, lo, hi, p, wins


def bootstrap_seeds_faces(
    diffs: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> Tuple[float, float]:
    """Percentile interval of the mean difference when both the training
    seeds and the test faces are drawn again.

    Args:
        diffs: Per-face differences "first - second" of the NME, shape
            (S, F): S seeds, F test faces, the same faces in every row.

    Each resample draws S seeds and F faces with replacement (the same
    faces for every seed, as both rows of a pair see the same test set)
    and takes the mean of the drawn block.
    """
    diffs = np.asarray(diffs, float)
    s, f = diffs.shape
    rng = np.random.default_rng(seed)
    seed_counts = rng.multinomial(s, np.full(s, 1.0 / s), size=resamples)
    stats = np.empty(resamples)
    # Faces in chunks: the (resamples, F) count matrix of 10,000 x 1,000
    # is 80 MB at once.
    for start in range(0, resamples, 1000):
        stop = min(start + 1000, resamples)
        face_counts = rng.multinomial(
            f, np.full(f, 1.0 / f), size=stop - start
        )  # (R, F)
        per_seed = diffs @ face_counts.T / f  # (S, R)
        stats[start:stop] = (
            np.einsum('rs,sr->r', seed_counts[start:stop], per_seed) / s
        )
    tail = (1 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))


def reading(mean: float, p_holm: float, p: float) -> str:
    """The pre-registered words for one comparison."""
    direction = 'first lower' if mean < 0 else 'second lower'
    if p_holm < ALPHA:
        return f'resolved: {direction}'
    if p < ALPHA:
        return f'nominal only: {direction} (not after Holm)'
    return 'not resolved'


def per_face_nme(pred_file: str) -> Tuple[np.ndarray, np.ndarray]:
    """(annotation ids, per-face NME in %) from a run's ``test.pred.npz``:
    the mean over points of the error length, over the face's
    normalising distance."""
    with np.load(pred_file) as z:
        ids = np.asarray(z['ids'])
        residual = np.asarray(z['residual'], np.float32)  # (F, K, 2)
        norm = np.asarray(z['norm'], np.float32)  # (F,)
    nme = np.linalg.norm(residual, axis=-1).mean(axis=-1) / norm * 100
    order = np.argsort(ids)
    return ids[order], nme[order]


def format_p(p: float) -> str:
    """A p-value for a table: two significant digits, scientific below
    0.001, a dash where none was computed."""
    if np.isnan(p):
        return '–'
    # '#' keeps a trailing zero: 0.104 reads '0.10', not '0.1'.
    return f'{p:#.2g}' if p >= 0.001 else f'{p:.1e}'
