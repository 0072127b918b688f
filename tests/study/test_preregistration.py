"""The confirmation round's plan in code says what the committed
pre-registration says, and its statistics are right."""

import os.path as osp
import re

import numpy as np
import pytest

from mmaniso.study import confirmation as cf

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PREREG = osp.join(REPO, 'docs', 'preregistration.md')


def _table(text: str, heading: str):
    """The body rows of the first markdown table after ``heading``."""
    part = text.split(heading, 1)[1]
    rows = []
    for line in part.splitlines():
        if line.startswith('|'):
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if set(cells[0]) <= set('-'):
                continue
            rows.append(cells)
        elif rows:
            break
    return rows[1:]


def _seeds(cell: str):
    lo, hi = (int(x) for x in re.findall(r'\d+', cell))
    return tuple(range(lo, hi + 1))


def test_rows_and_seeds_are_the_preregistered_ones():
    doc = _table(open(PREREG, encoding='utf-8').read(), '## Rows')
    planned = {label: cf.row_seeds(label) for label, *_ in cf.ROWS}
    assert {cells[0]: _seeds(cells[2]) for cells in doc} == planned
    stems = {label: stem for label, stem, *_ in cf.ROWS}
    for label, config, _ in doc:
        if config.startswith('the same'):  # an option on the row above
            assert 'model.head.loss.a=3' in config
            continue
        assert f'res18_{stems[label]}_synthface.py' in config, label


def test_comparisons_are_the_preregistered_ones():
    text = open(PREREG, encoding='utf-8').read()
    doc = _table(text, '## Hypotheses and comparisons')
    declared = {
        cells[0]: tuple(cells[1].replace('**', '').split(' − '))
        for cells in doc
    }
    assert declared == {cid: (a, b) for cid, a, b, _ in cf.COMPARISONS}
    primary = [cells[0] for cells in doc if 'primary' in cells[2]]
    assert primary == ['P']
    assert [c[0] for c in cf.COMPARISONS if c[3] == cf.PRIMARY] == ['P']
    # The mechanism family: along and across for P and S1, as declared.
    assert 'for P and S1: four' in ' '.join(text.split())
    assert sorted(cf.MECHANISM) == sorted(
        (c, k) for c in ('P', 'S1') for k in ('NME_along', 'NME_across')
    )


def test_seeds_and_test_faces_are_fresh():
    assert not set(cf.PRIMARY_SEEDS) & set(cf.USED_TRAINING_SEEDS)
    assert set(cf.SECONDARY_SEEDS) <= set(cf.PRIMARY_SEEDS)
    assert cf.TEST_GENERATION_SEED not in cf.USED_GENERATION_SEEDS
    # The test faces come from their own root, never table e's.
    test_opts = [o for o in cf.PROTOCOL if o.startswith('test_')]
    assert test_opts and all(cf.TEST_ROOT in o or 'ann_file=annotations'
                             in o for o in test_opts)  # fmt: skip
    train_opts = [o for o in cf.PROTOCOL if 'data_root' in o
                  and not o.startswith('test_')]  # fmt: skip
    assert all(cf.TEST_ROOT not in o for o in train_opts)


def test_primary_rows_run_first_seed_by_seed():
    jobs = cf.jobs()
    primary = [label for label, *_, w in cf.ROWS if w == cf.PRIMARY]
    n = len(primary) * len(cf.PRIMARY_SEEDS)
    assert {row.label for row, _ in jobs[:n]} == set(primary)
    assert [seed for _, seed in jobs[:n]][:4] == [8, 8, 9, 9]
    assert len(jobs) == n + 5 * len(cf.SECONDARY_SEEDS)
    assert cf.jobs('secondary') == jobs[n:]
    assert len(set(jobs)) == len(jobs)


def _write_run(root, label, seed, metrics, scalars=None):
    """A fake finished run of the row ``label``: its test metrics and a
    training log (validation NME 6.0 then the test NME unless ``scalars``
    are given), where the harness writes them. Returns the run folder."""
    import json
    import os

    from test_tables import write_scalars

    from mmaniso.study.tables import run_dir

    row = {r.label: r for r in cf.rows()}[label]
    folder = run_dir(str(root), row, seed)
    os.makedirs(folder)
    with open(osp.join(folder, 'test_metrics.json'), 'w') as f:
        json.dump(metrics, f)
    write_scalars(folder, 2, 10, 5, scalars or [6.0, metrics['NME']])
    return folder


@pytest.mark.parametrize('wins', [True, False])
def test_report_on_made_up_records(tmp_path, wins):
    """The report reads records as the harness writes them and gives the
    primary verdict by the pre-registered rule."""
    import json

    rng = np.random.default_rng(0)
    for label, *_ in cf.ROWS:
        shift = -0.3 if (wins and label.startswith('aniso')) else 0.0
        for seed in cf.row_seeds(label):
            base = 5.0 + 0.01 * seed + shift
            metrics = dict(NME=base + rng.normal(0, 0.01), NME_along=3.0,
                           NME_across=3.0 + shift)  # fmt: skip
            if label in cf.PREDICTED_ROWS:
                metrics.update({k: 0.5 + 0.01 * seed for k in cf.UNCERTAINTY})
            folder = _write_run(tmp_path, label, seed, metrics,
                                scalars=[base + 1, base])  # fmt: skip
            if label in cf.LEARNED_ROWS:
                learned = dict(along=[4.0 + seed] * 98,
                               across=[2.0] * 98, has_tangent=[True] * 98)
                with open(osp.join(folder, 'learned_scales.json'), 'w') as f:
                    json.dump(learned, f)
    text = cf.report(str(tmp_path))
    verdict = text.strip().splitlines()[-1]
    if wins:
        assert verdict.startswith('Primary comparison (16 of 16')
        assert ': confirmed;' in verdict
    else:
        assert ': not confirmed;' in verdict or ': refuted' in verdict
    assert text.count('| P |') == 3  # NME, along, across
    assert 'S5' in text
    # Descriptive figures: mean and t 95% interval over the 8 seeds,
    # computed here from scipy's t quantile.
    from scipy import stats

    values = 0.5 + 0.01 * np.arange(8, 16)
    half = stats.t.ppf(0.975, 7) * values.std(ddof=1) / np.sqrt(8)
    cell = f'{values.mean():.3f} [{values.mean() - half:.3f}, ' \
        f'{values.mean() + half:.3f}]'
    line = next(s for s in text.splitlines()
                if s.startswith('| predicted aniso L1 + head | 8 |'))
    assert line.count(cell) == len(cf.UNCERTAINTY)
    along = 4.0 + np.arange(8, 16)
    half = stats.t.ppf(0.975, 7) * along.std(ddof=1) / np.sqrt(8)
    line = next(s for s in text.splitlines()
                if s.startswith('| learned aniso L1 + head | 8 |'))
    assert f'{along.mean():.2f} [{along.mean() - half:.2f}, ' in line
    assert line.endswith('| 2.00 [2.00, 2.00] |')
    # The Laplace-like density's own shares inside 1, 2, 3 scales.
    shares = [1 - (1 + k) * np.exp(-k) for k in (1, 2, 3)]
    assert '| expected (mahalanobis) | | ' + ' | '.join(
        f'{v:.3f}' for v in shares) in text
    out = cf.plot(str(tmp_path), str(tmp_path / 'plot.png'))
    assert open(out, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


def test_an_interim_report_corrects_over_every_declared_comparison(tmp_path):
    """With only the primary rows run, P is still adjusted as one of six:
    its Holm p is six times its own (the five missing count as p = 1)."""
    rng = np.random.default_rng(1)
    nme = {}
    for label in ('L1 + head (per coordinate)', 'aniso L1 + head (a/b 5/3)'):
        for seed in cf.PRIMARY_SEEDS[:6]:
            value = 5.0 + rng.normal(0, 0.05)
            nme[label, seed] = value
            _write_run(tmp_path, label, seed, dict(NME=value))
    found = cf.compare(str(tmp_path), [(c[0], 'NME') for c in cf.COMPARISONS])
    p = found[0]
    assert p.id == 'P' and p.n == 6
    from scipy import stats

    d = [nme['aniso L1 + head (a/b 5/3)', s] - nme['L1 + head (per '
         'coordinate)', s] for s in cf.PRIMARY_SEEDS[:6]]  # fmt: skip
    nominal = stats.ttest_1samp(d, 0.0).pvalue
    assert p.p == pytest.approx(nominal)
    assert p.p_holm == pytest.approx(min(1.0, 6 * nominal))
    assert all(c.n == 0 for c in found[1:])


def test_a_verdict_before_the_last_seed_is_undecided(tmp_path):
    """No interim analysis was declared: with 15 of 16 primary seeds the
    verdict is "undecided" even where the comparison is far below 0, and
    each reading says it is interim."""
    rng = np.random.default_rng(2)
    for label, shift in (('L1 + head (per coordinate)', 0.0),
                         ('aniso L1 + head (a/b 5/3)', -0.3)):  # fmt: skip
        for seed in cf.PRIMARY_SEEDS[:15]:
            value = 5.0 + shift + rng.normal(0, 0.01)
            _write_run(tmp_path, label, seed,
                       dict(NME=value, NME_along=3.0, NME_across=3.0))
    text = cf.report(str(tmp_path))
    verdict = text.strip().splitlines()[-1]
    assert verdict.startswith('Primary comparison (15 of 16')
    assert 'undecided' in verdict and 'would read "confirmed"' in verdict
    line = next(s for s in text.splitlines() if s.startswith('| P |'))
    assert 'interim (15 of 16): resolved: first lower' in line


def _primary_runs(root, differences):
    """Fake finished runs of the two primary rows: MMPose's L1 at 5.0, the
    anisotropic L1 at 5.0 plus ``differences`` (one per primary seed)."""
    rows = (('L1 + head (per coordinate)', [0.0] * 16),
            ('aniso L1 + head (a/b 5/3)', differences))  # fmt: skip
    for label, shifts in rows:
        for seed, shift in zip(cf.PRIMARY_SEEDS, shifts):
            _write_run(root, label, seed,
                       dict(NME=5.0 + shift, NME_along=3.0, NME_across=3.0))


def test_a_primary_far_below_zero_is_final_before_the_secondary_runs(
        tmp_path):
    """All 16 primary seeds, no secondary run: counting the five unfinished
    comparisons at p = 1 bounds P's Holm p from above; far below 0.05 the
    verdict cannot change, so it is stated as final."""
    from scipy import stats

    d = -0.3 + np.random.default_rng(3).normal(0, 0.01, 16)
    _primary_runs(tmp_path, d)
    verdict = cf.report(str(tmp_path)).strip().splitlines()[-1]
    nominal = stats.ttest_1samp(d, 0.0).pvalue
    assert verdict.startswith('Primary comparison (16 of 16')
    assert ': confirmed;' in verdict and 'final' in verdict
    assert cf.format_p(6 * nominal) in verdict
    assert 'S1, S2, S3, S4, S5' in verdict


def test_a_primary_nominal_only_waits_for_the_secondary_runs(tmp_path):
    """All 16 primary seeds with a nominal p whose six-fold bound is above
    0.05: the secondary comparisons could still lower P's Holm p below it,
    so the verdict waits for them instead of reading "not confirmed"."""
    from scipy import stats

    z = np.linspace(-1.0, 1.0, 16)
    d = -0.02 + 0.03 * z / z.std(ddof=1)  # t = 0.02 / (0.03 / 4), p ~ 0.02
    nominal = stats.ttest_1samp(d, 0.0).pvalue
    assert nominal < 0.05 < 6 * nominal  # the case this test is about
    _primary_runs(tmp_path, d)
    verdict = cf.report(str(tmp_path)).strip().splitlines()[-1]
    assert 'undecided until S1, S2, S3, S4, S5 are complete' in verdict
    assert 'not confirmed' not in verdict and ': confirmed' not in verdict
    assert cf.format_p(min(1.0, 6 * nominal)) in verdict


def test_descriptive_intervals_stay_inside_the_range_of_a_share(tmp_path):
    """Two seeds with AUROC 0.97 and 0.999: the t interval runs past 1, and
    the table cuts it at 1 (a share or an AUROC cannot exceed it); the
    lower end and the mean are the t interval's own."""
    from scipy import stats

    values = (0.97, 0.999)
    for seed, value in zip(cf.SECONDARY_SEEDS, values):
        metrics = {k: value for k in cf.UNCERTAINTY}
        metrics['NME'] = 5.0
        _write_run(tmp_path, 'predicted aniso L1 + head', seed, metrics)
    half = stats.t.ppf(0.975, 1) * np.std(values, ddof=1) / np.sqrt(2)
    mean = np.mean(values)
    assert mean + half > 1  # the case this test is about
    line = next(s for s in cf.uncertainty_markdown(str(tmp_path)).splitlines()
                if s.startswith('| predicted aniso L1 + head | 2 |'))
    cell = f'{mean:.3f} [{mean - half:.3f}, 1.000]'
    assert line.count(cell) == len(cf.UNCERTAINTY)
