"""The study's statistics against independent references."""

import numpy as np

from mmaniso.study import statistics as stats


def _holm_reference(p):
    """Holm by its definition: reject in order while p_(i) <= a/(m-i+1);
    the adjusted p is the smallest level at which each is rejected."""
    m = len(p)
    out = []
    for i in range(m):
        best = 1.0
        for level in np.linspace(0, 1, 20001):
            order = sorted(range(m), key=lambda j: p[j])
            rejected = set()
            for rank, j in enumerate(order):
                if p[j] <= level / (m - rank):
                    rejected.add(j)
                else:
                    break
            if i in rejected:
                best = level
                break
        out.append(best)
    return out


def test_holm_matches_its_definition():
    p = [0.01, 0.04, 0.03, 0.2, 0.0005, 0.04]
    assert np.allclose(stats.holm(p), _holm_reference(p), atol=1e-4)
    assert stats.holm([0.5]) == [0.5]
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]


def test_bootstrap_of_seeds_and_faces():
    rng = np.random.default_rng(3)
    # Seeds differ by a shift; faces by noise: the interval must hold the
    # mean, widen with the face noise, and repeat for the same seed.
    diffs = -0.05 + rng.normal(0, 0.03, (16, 1))
    diffs = diffs + rng.normal(0, 1.0, (16, 400))
    lo, hi = stats.bootstrap_seeds_faces(diffs, resamples=2000)
    assert lo < diffs.mean() < hi
    assert (lo, hi) == stats.bootstrap_seeds_faces(diffs, resamples=2000)
    seeds_only = diffs.mean(axis=1, keepdims=True) * np.ones((1, 400))
    slo, shi = stats.bootstrap_seeds_faces(seeds_only, resamples=2000)
    assert hi - lo > shi - slo
    # A slow reference of one resample's statistic.
    s_idx = rng.integers(0, 16, 16)
    f_idx = rng.integers(0, 400, 400)
    slow = np.mean([[diffs[s, f] for f in f_idx] for s in s_idx])
    fast = diffs[s_idx][:, f_idx].mean()
    assert np.isclose(slow, fast)


def test_per_face_nme_from_saved_predictions(tmp_path):
    residual = np.zeros((3, 4, 2), np.float16)
    residual[0, :, 0] = 3
    residual[0, :, 1] = 4  # every point 5 px off
    residual[2, 0] = (6, 8)  # one point 10 px off
    norm = np.array([50.0, 50.0, 100.0], np.float32)
    np.savez(tmp_path / 'p.npz', ids=np.array([7, 3, 5]),
             residual=residual, norm=norm)  # fmt: skip
    ids, nme = stats.per_face_nme(str(tmp_path / 'p.npz'))
    assert ids.tolist() == [3, 5, 7]
    assert np.allclose(nme, [0.0, 10 / 4 / 100 * 100, 5 / 50 * 100])


def test_reading_follows_the_preregistered_words():
    assert stats.reading(-0.1, 0.01, 0.002) == 'resolved: first lower'
    assert stats.reading(0.1, 0.2, 0.02).startswith('nominal only')
    assert stats.reading(-0.1, 0.3, 0.2) == 'not resolved'


def test_p_values_keep_two_significant_digits():
    assert stats.format_p(0.104) == '0.10'
    assert stats.format_p(0.05) == '0.050'
    assert stats.format_p(0.0054) == '0.0054'
    assert stats.format_p(1.0) == '1.0'
    assert stats.format_p(8.65e-06) == '8.7e-06'
    assert stats.format_p(float('nan')) == '–'
