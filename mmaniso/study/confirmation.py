"""The confirmation round: the plan of ``docs/preregistration.md`` in code.

``tools/misc/study.py --table confirmation`` trains the rows below on table
e's training data (``resampled`` labels of ``data/synthface_evidence``),
validates on its validation split, and tests once on fresh faces
(:data:`TEST_ROOT`, generation seed :data:`TEST_GENERATION_SEED`, never
used before). The primary rows run first, seed by seed; then the
secondary rows. ``--report`` renders every declared comparison with its
paired t interval, a bootstrap interval over seeds *and* test faces, the
nominal and the Holm-adjusted p, and the pre-registered reading.

The report reads its comparisons from :data:`COMPARISONS` and
:data:`MECHANISM` only: ``tests/study/test_preregistration.py`` checks that
they and the committed pre-registration say the same, so nothing is tested
that was not declared.
"""

import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from mmaniso.study import evidence as ev
from mmaniso.study.statistics import (
    ALPHA,
    bootstrap_seeds_faces,
    format_p,
    holm,
    paired_interval,
    paired_test,
    reading,
)
from mmaniso.study.tables import ANN, Row, write_clean_annotations

TEST_ROOT = 'data/synthface_confirmation'
TEST_GENERATION_SEED = 2
TEST_FACES = 1000
NOISE = 'resampled'
PRIMARY_SEEDS = tuple(range(8, 24))
SECONDARY_SEEDS = tuple(range(8, 16))
# Seeds and generation seeds the earlier rounds used: a confirmation on
# any of them would not be fresh.
USED_TRAINING_SEEDS = tuple(range(8))
USED_GENERATION_SEEDS = (0, ev.GENERATION_SEED)

_EVIDENCE = ev.DATA_ROOT + '/'
_TEST = TEST_ROOT + '/'
TEST_CLEAN = ANN.format('test_clean')
PROTOCOL = (
    'train_cfg.val_interval=1',
    'train_dataloader.num_workers=1',
    'val_dataloader.num_workers=1',
    f'train_dataloader.dataset.data_root={_EVIDENCE}',
    f'val_dataloader.dataset.data_root={_EVIDENCE}',
    f'val_dataloader.dataset.ann_file={ANN.format("val_clean")}',
    f'test_dataloader.dataset.data_root={_TEST}',
    f'test_dataloader.dataset.ann_file={TEST_CLEAN}',
    f'test_evaluator.ann_file={_TEST}{TEST_CLEAN}',
)

PRIMARY = 'primary'
SECONDARY = 'secondary'
_SEEDS = {PRIMARY: PRIMARY_SEEDS, SECONDARY: SECONDARY_SEEDS}

# (label, config stem, a (None: the config's), which seeds)
ROWS = (
    ('L1 + head (per coordinate)', 'l1-meanhead', None, PRIMARY),
    ('aniso L1 + head (a/b 5/3)', 'aniso-normalised-l1-nobalance', None,
     PRIMARY),
    ('point L1 + head (a = b)', 'aniso-normalised-l1-nobalance', 3.0,
     SECONDARY),
    ('learned aniso L1 + head', 'aniso-learned-l1', None, SECONDARY),
    ('learned iso L1 + head', 'iso-learned-l1', None, SECONDARY),
    ('predicted aniso L1 + head', 'aniso-predicted-l1', None, SECONDARY),
    ('predicted iso L1 + head', 'iso-predicted-l1', None, SECONDARY),
)  # fmt: skip

# (id, first, second, role): "first minus second" of the test NME.
COMPARISONS = (
    ('P', 'aniso L1 + head (a/b 5/3)', 'L1 + head (per coordinate)',
     PRIMARY),
    ('S1', 'aniso L1 + head (a/b 5/3)', 'point L1 + head (a = b)',
     SECONDARY),
    ('S2', 'learned aniso L1 + head', 'aniso L1 + head (a/b 5/3)',
     SECONDARY),
    ('S3', 'learned aniso L1 + head', 'learned iso L1 + head', SECONDARY),
    ('S4', 'predicted aniso L1 + head', 'aniso L1 + head (a/b 5/3)',
     SECONDARY),
    ('S5', 'predicted aniso L1 + head', 'predicted iso L1 + head',
     SECONDARY),
)  # fmt: skip
# The second family: (comparison id, metric key), Holm among themselves.
MECHANISM = (
    ('P', 'NME_along'),
    ('P', 'NME_across'),
    ('S1', 'NME_along'),
    ('S1', 'NME_across'),
)


# Descriptive only (pre-registered, no test). The predicted rows'
# calibration and failure detection, as FaceLandmarkMetric reports them:
UNCERTAINTY = ('Cover@1', 'Cover@2', 'Cover@3', 'AUROC@8', 'AUROC@10',
               'Spearman_scale')  # fmt: skip
# ... against what their training density puts inside the k-scale ellipses
# (the rows' loss: distance='mahalanobis', Laplace-like).
DISTANCE = 'mahalanobis'
PREDICTED_ROWS = ('predicted aniso L1 + head', 'predicted iso L1 + head')
# ... and the learned rows' global scales.
LEARNED_ROWS = ('learned aniso L1 + head', 'learned iso L1 + head')
PREREGISTRATION = 'docs/preregistration.md'


def rows() -> List[Row]:
    """The rows of the round, as the study harness runs them."""
    out = []
    for label, stem, a, _ in ROWS:
        row = ev._row(label, stem, NOISE, a)
        out.append(row)
    return out


def row_seeds(label: str) -> Tuple[int, ...]:
    """The pre-registered training seeds of the row called ``label``."""
    for name, _, _, which in ROWS:
        if name == label:
            return _SEEDS[which]
    raise KeyError(f'no row {label!r} in the confirmation plan')


def jobs(block: Optional[str] = None) -> List[Tuple[Row, int]]:
    """Every (row, seed) in the pre-registered order: the primary rows seed
    by seed, then the secondary rows seed by seed (only ``block``'s when
    given)."""
    by_label = {r.label: r for r in rows()}
    out = []
    for which in (PRIMARY, SECONDARY):
        if block is not None and which != block:
            continue
        labels = [label for label, _, _, w in ROWS if w == which]
        for seed in _SEEDS[which]:
            out += [(by_label[label], seed) for label in labels]
    return out


def prepare_data(workers: int = 2) -> Dict[str, str]:
    """Table e's data (:func:`evidence.prepare_data`) and the fresh test
    faces: :data:`TEST_FACES` SynthFace faces at generation seed
    :data:`TEST_GENERATION_SEED`, with their clean copy."""
    from mmaniso.synthface import write_synthface

    paths = ev.prepare_data(workers=workers)
    test = osp.join(TEST_ROOT, ANN.format('test'))
    if not osp.isfile(test):
        write_synthface(
            TEST_ROOT, dict(test=TEST_FACES), seed=TEST_GENERATION_SEED,
            workers=workers,
        )  # fmt: skip
    clean = osp.join(TEST_ROOT, TEST_CLEAN)
    if not osp.isfile(clean):
        write_clean_annotations(test, clean)
    paths['confirmation_test_clean'] = clean
    return paths


class Comparison(NamedTuple):
    """One declared comparison, computed."""

    id: str
    first: str
    second: str
    key: str
    n: int
    mean: float
    low: float
    high: float
    boot_low: Optional[float]
    boot_high: Optional[float]
    p: float
    p_holm: float
    wins: int


def compare(
    work_dir: str, family: Sequence[Tuple[str, str]]
) -> List[Comparison]:
    """The comparisons of one family, given as (comparison id, metric
    key), with Holm's correction over the whole family (those without two
    seeds yet counted with p = 1)."""
    by_label = {r.label: r for r in rows()}
    declared = {c[0]: c for c in COMPARISONS}
    found = []
    for cid, key in family:
        _, first, second, _ = declared[cid]
        a_row, b_row = by_label[first], by_label[second]
        seeds = sorted(set(row_seeds(first)) & set(row_seeds(second)))
        a = ev.load_runs(work_dir, a_row, seeds)
        b = ev.load_runs(work_dir, b_row, seeds)
        common = sorted(set(a) & set(b))
        if len(common) < 2:
            found.append((cid, first, second, key, len(common), None))
            continue
        va = [a[s][key] for s in common]
        vb = [b[s][key] for s in common]
        stats = paired_test(va, vb)
        boot = (None, None)
        if key == 'NME':
            diffs = ev.face_differences(work_dir, a_row, b_row, common)
            if diffs is not None:
                boot = bootstrap_seeds_faces(diffs)
        found.append((cid, first, second, key, len(common), (stats, boot)))
    computed = [f for f in found if f[5] is not None]
    # Holm over the whole declared family: a comparison not computed yet
    # enters with p = 1, so an interim report never corrects over fewer
    # comparisons than were declared (its adjusted p can only fall, never
    # rise, when the others come in below 1: Holm never exceeds
    # Bonferroni's m * p).
    pending = [1.0] * (len(found) - len(computed))
    adjusted = holm([f[5][0][3] for f in computed] + pending)
    out, k = [], 0
    for cid, first, second, key, n, result in found:
        if result is None:
            nan = float('nan')
            out.append(Comparison(cid, first, second, key, n, nan, nan, nan,
                                  None, None, nan, nan, 0))  # fmt: skip
            continue
        (mean, lo, hi, p, wins), (blo, bhi) = result
        out.append(Comparison(cid, first, second, key, n, mean, lo, hi,
                              blo, bhi, p, adjusted[k], wins))  # fmt: skip
        k += 1
    return out


def planned_pairs(c: Comparison) -> int:
    """How many seed pairs the pre-registration plans for ``c``."""
    return len(set(row_seeds(c.first)) & set(row_seeds(c.second)))


def _interim(c: Comparison) -> str:
    # Before all planned seeds are in, a reading is an interim look, not
    # the pre-registered result.
    planned = planned_pairs(c)
    return '' if c.n >= planned else f'interim ({c.n} of {planned}): '


def comparisons_markdown(found: Sequence[Comparison]) -> str:
    lines = [
        '| id | first − second | metric | n | paired [t 95%] | '
        'bootstrap seeds × faces [95%] | p | p (Holm) | first lower | '
        'reading |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for c in found:
        if c.n < 2:
            lines.append(
                f'| {c.id} | {c.first} − {c.second} | {c.key} | {c.n} | '
                'too few seeds | | | | | |'
            )
            continue
        boot = (
            f'[{c.boot_low:+.3f}, {c.boot_high:+.3f}]'
            if c.boot_low is not None
            else '–'
        )
        lines.append(
            f'| {c.id} | {c.first} − {c.second} | {c.key} | {c.n} | '
            f'{c.mean:+.3f} [{c.low:+.3f}, {c.high:+.3f}] | {boot} | '
            f'{format_p(c.p)} | {format_p(c.p_holm)} | {c.wins} of {c.n} | '
            f'{_interim(c)}{reading(c.mean, c.p_holm, c.p)} |'
        )
    return '\n'.join(lines)


def primary_verdict(found: Sequence[Comparison]) -> str:
    """The pre-registered sentence on the primary comparison."""
    p = next(c for c in found if c.id == 'P')
    planned = len(PRIMARY_SEEDS)
    if p.n < 2:
        return f'Primary comparison: {p.n} of {planned} seeds; not tested.'
    done = f'{p.n} of {planned} pre-registered seeds'
    size = f'{p.mean:+.3f} NME [{p.low:+.3f}, {p.high:+.3f}]'
    if p.p_holm < ALPHA and p.mean < 0:
        verdict = 'confirmed'
    elif p.p_holm < ALPHA:
        verdict = 'refuted (the anisotropic L1 is worse)'
    else:
        verdict = 'not confirmed'
    if p.n < planned:
        # No interim analysis was declared: a look before the last seed
        # decides nothing, whichever way it points.
        return (
            f'Primary comparison ({done}): undecided, the round is not '
            f'complete (at this interim look it would read "{verdict}"); '
            f'{size}, Holm-adjusted p {format_p(p.p_holm)}.'
        )
    unfinished = [c.id for c in found if c.n < planned_pairs(c)]
    if unfinished:
        # P's own seeds are all in, but Holm's p depends on the others.
        # Holm is monotone (no adjusted p rises when another p falls), so
        # counting every unfinished comparison at p = 1 bounds P's final
        # adjusted p from above: below alpha, the verdict cannot change.
        complete = [c.p if c.id not in unfinished else 1.0 for c in found]
        bound = holm(complete)[[c.id for c in found].index('P')]
        if bound < ALPHA:
            return (
                f'Primary comparison ({done}): {verdict}; {size}, '
                f'Holm-adjusted p {format_p(bound)} with the unfinished '
                f'{", ".join(unfinished)} counted as p = 1 (an upper bound '
                'their runs can only lower, so this verdict is final).'
            )
        return (
            f'Primary comparison ({done}): undecided until '
            f'{", ".join(unfinished)} are complete: with them counted as '
            f'p = 1 its Holm-adjusted p is {format_p(bound)}, which their '
            f'runs can only lower; {size}, nominal p {format_p(p.p)}.'
        )
    return (
        f'Primary comparison ({done}): {verdict}; '
        f'{size}, Holm-adjusted p {format_p(p.p_holm)}.'
    )


def _mean_cell(
    values: Sequence[float],
    digits: int = 3,
    limits: Tuple[float, float] = (-np.inf, np.inf),
) -> str:
    """``mean [low, high]`` over seeds (t 95%), or the one value; the
    interval is cut to ``limits``, the range the quantity can take (a share
    or an AUROC above 1 would be read as a bug, not as an interval)."""
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return '–'
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    mean, lo, hi, _ = paired_interval(values, [0.0] * len(values))
    lo, hi = max(lo, limits[0]), min(hi, limits[1])
    return f'{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]'


def uncertainty_markdown(work_dir: str) -> str:
    """The predicted rows' calibration (Cover@k, the share of test errors
    inside the k-scale ellipses, beside the training density's own share)
    and failure detection (AUROC of the per-image mean scale for faces
    above 8 and 10 % NME; Spearman of that scale with the per-image NME),
    each as its mean and t 95% interval over seeds."""
    from mmaniso.evaluation.uncertainty import expected_coverage

    by_label = {r.label: r for r in rows()}
    head = '| row | seeds | ' + ' | '.join(UNCERTAINTY) + ' |'
    lines = [head, '|' + '---|' * (len(UNCERTAINTY) + 2)]
    expected = expected_coverage(DISTANCE)
    cells = [f'{expected[float(k[-1])]:.3f}' for k in UNCERTAINTY[:3]]
    lines.append(
        f'| expected ({DISTANCE}) | | ' + ' | '.join(cells)
        + ' | 0.5 (chance) | 0.5 (chance) | 0 (none) |'
    )  # fmt: skip
    for label in PREDICTED_ROWS:
        runs = ev.load_runs(work_dir, by_label[label], row_seeds(label))
        values = [
            _mean_cell(
                [runs[s].get(k, float('nan')) for s in sorted(runs)],
                limits=(-1.0, 1.0) if k.startswith('Spearman') else (0, 1),
            )
            for k in UNCERTAINTY
        ]
        lines.append(f'| {label} | {len(runs)} | ' + ' | '.join(values) + ' |')
    return '\n'.join(lines)


def learned_scales(work_dir: str, label: str) -> Dict[int, dict]:
    """seed -> the learned scales a finished run of ``label`` kept
    (:func:`evidence.write_learned_scales`)."""
    import json

    found = {}
    row = {r.label: r for r in rows()}[label]
    for seed in row_seeds(label):
        path = osp.join(ev.run_dir(work_dir, row, seed),
                        ev.LEARNED_SCALES_FILE)  # fmt: skip
        if osp.isfile(path):
            with open(path) as f:
                found[seed] = json.load(f)
    return found


def learned_markdown(work_dir: str) -> str:
    """The learned rows' global scales (input-crop pixels; they start at
    5 along and 3 across): the mean along the curves (landmarks with a
    tangent) and across (all landmarks), mean and t 95% interval over
    seeds."""
    lines = ['| row | seeds | along (curve points) | across (all) |',
             '|---|---|---|---|']  # fmt: skip
    for label in LEARNED_ROWS:
        found = learned_scales(work_dir, label)
        along, across = [], []
        for s in sorted(found):
            tangent = np.asarray(found[s]['has_tangent'], bool)
            along.append(
                float(np.mean(np.asarray(found[s]['along'])[tangent]))
            )
            across.append(float(np.mean(found[s]['across'])))
        lines.append(f'| {label} | {len(found)} | {_mean_cell(along, 2)} | '
                     f'{_mean_cell(across, 2)} |')  # fmt: skip
    return '\n'.join(lines)


def plot(work_dir: str, out: str) -> Optional[str]:
    """The declared NME comparisons (paired t and bootstrap 95% intervals;
    green or red only where the Holm-adjusted p < 0.05) and, per landmark,
    the learned rows' scales over seeds; None before any comparison has
    two seeds."""
    nme = compare(work_dir, [(c[0], 'NME') for c in COMPARISONS])
    if all(c.n < 2 for c in nme):
        return None
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmaniso.study.tables import save_figure

    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 3.6), gridspec_kw=dict(width_ratios=(1, 1.6))
    )
    for y, c in enumerate(nme):
        if c.n < 2:
            continue
        colour = 'tab:grey'
        if c.p_holm < ALPHA:
            colour = 'tab:green' if c.mean < 0 else 'tab:red'
        left.plot([c.low, c.high], [y, y], color=colour, lw=3, alpha=0.5)
        if c.boot_low is not None:
            left.plot([c.boot_low, c.boot_high], [y + 0.18] * 2,
                      color=colour, lw=1)  # fmt: skip
        left.plot([c.mean], [y], 'o', color=colour)
    left.axvline(0, color='k', lw=0.8)
    left.set_yticks(range(len(nme)))
    left.set_yticklabels(
        [f'{c.id}: {c.first} − {c.second}\n'
         + (f'n={c.n}, Holm p {format_p(c.p_holm)}' if c.n >= 2
            else 'not run yet') for c in nme],
        fontsize=6,
    )  # fmt: skip
    left.set_ylim(len(nme) - 0.5, -0.5)  # the first comparison on top
    left.set_xlabel('first − second, test NME (%); thick: paired t 95%, '
                    'thin: bootstrap seeds × faces', fontsize=7)  # fmt: skip
    for label, colour in zip(LEARNED_ROWS, ('tab:blue', 'tab:orange')):
        found = learned_scales(work_dir, label)
        if not found:
            continue
        # Along is drawn where a landmark has a tangent (elsewhere it is
        # the across scale).
        along = np.array([
            np.where(found[s]['has_tangent'], found[s]['along'], np.nan)
            for s in sorted(found)
        ])  # fmt: skip
        across = np.array([found[s]['across'] for s in sorted(found)])
        k = np.arange(along.shape[1])
        for values, style, name in ((along, '-', 'along'),
                                    (across, ':', 'across')):  # fmt: skip
            if name == 'along' and label.startswith('learned iso'):
                continue  # one scale per point: along is across
            right.plot(k, np.nanmean(values, 0), style, color=colour,
                       label=f'{label}: {name} (n={len(found)})')  # fmt: skip
            low, high = np.nanmin(values, 0), np.nanmax(values, 0)
            right.fill_between(k, low, high, color=colour, alpha=0.15, lw=0)
    if right.lines:
        right.set_xlabel('landmark (WFLW index); band: range over seeds',
                         fontsize=7)  # fmt: skip
        right.set_ylabel('learned scale (input-crop px)', fontsize=7)
        right.legend(fontsize=6)
    else:
        right.set_axis_off()
    return save_figure(fig, out)


def preregistration_commits(repo: str = '.') -> List[str]:
    """``hash (date)`` of every commit that changed the pre-registration,
    oldest first (empty outside a git checkout); ``git log --
    docs/preregistration.md`` says why each was made."""
    import subprocess

    try:
        out = subprocess.run(
            ['git', 'log', '--reverse', '--format=%h (%ad)',
             '--date=short', '--', PREREGISTRATION],
            cwd=repo, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.splitlines() if out.returncode == 0 else []


def report(work_dir: str) -> str:
    """Markdown of the round: the pre-registration's commits, its rows, the
    declared NME comparisons (Holm over the six), the mechanism family (Holm
    over the four), the descriptive figures of the predicted and learned
    scales and, last, the primary verdict."""
    parts = []
    commits = preregistration_commits()
    if commits:
        parts.append(
            f'Plan: {PREREGISTRATION}, registered in {commits[0]}'
            + (f', changed in {", ".join(commits[1:])} (`git log -- '
               f'{PREREGISTRATION}` says why)' if commits[1:] else '')
            + '. Every comparison below is declared there (COMPARISONS and '
            'MECHANISM, held to it by tests/study/test_preregistration.py).\n'
        )
    parts.append('### Rows (test NME on the fresh faces)\n')
    table_rows = rows()
    seeds = sorted(set(PRIMARY_SEEDS) | set(SECONDARY_SEEDS))
    parts.append(ev.markdown_table(work_dir, table_rows, seeds))
    nme = compare(work_dir, [(c[0], 'NME') for c in COMPARISONS])
    parts.append('\n### Declared NME comparisons (Holm over all six)\n')
    parts.append(comparisons_markdown(nme))
    parts.append('\n### Mechanism: along and across the curve (Holm over '
                 'the four)\n')  # fmt: skip
    parts.append(comparisons_markdown(compare(work_dir, MECHANISM)))
    parts.append('\n### Predicted scales: calibration and failure '
                 'detection (descriptive, no test)\n')  # fmt: skip
    parts.append(uncertainty_markdown(work_dir))
    parts.append('\n### Learned global scales (descriptive, no test)\n')
    parts.append(learned_markdown(work_dir))
    parts.append('\n' + primary_verdict(nme) + '\n')
    return '\n'.join(parts)
