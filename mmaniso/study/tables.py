"""The SynthFace study's tables: which runs each needs and how it is read.

``tools/misc/study.py --table a|b|c|d`` runs what a table needs (runs already
done are reused, also across tables) and writes it as Markdown, with a
plot. The tables (docs/study.md):

- ``a``, ablation: every isotropic loss and every anisotropic form, with
  and without pose balancing and the mean-shape head.
- ``b``, noise sweep: NME against the along-curve annotation noise
  ``sigma_t`` of the *training* annotations, the losses without balancing.
- ``c``, convergence: training iterations until the validation NME first
  reaches 10 and 8, read from table a's runs.
- ``d``, sensitivity of the best anisotropic variant of table a (chosen on
  the validation split) to ``a / b``.

Every run follows one protocol (:data:`PROTOCOL`): trained on SynthFace's
noisy annotations, validated every epoch on the *clean* landmarks of a
separate validation split, tested once on the clean landmarks of the test
faces. Choices read only validation figures.

Example:
    >>> [row.name for row in table_rows('a')][:2]
    ['res18_l1_synthface', 'res18_softwing-true_synthface']
"""

import glob
import json
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mmaniso.utils.atomic_files import (
    atomic_copy,
    atomic_write_json,
    replacing,
)

DATA_ROOT = 'data/synthface'
SPLITS = dict(train=2000, val=300, test=500)
ANN = 'annotations/face_landmarks_wflw_{}.json'
VAL_CLEAN = ANN.format('val_clean')
TEST_CLEAN = ANN.format('test_clean')
# Table b's sigma_t values (fractions of d); sigma_n = sigma_c stay at
# SynthFace's 0.01. The middle one is SynthFace's default, so table b reuses
# table a's runs there.
SWEEP_SIGMA_T = (0.0, 0.06, 0.15)
# Table d's a / b values, b kept at the paper's 3 (a = 5 is the paper's).
SENSITIVITY_A = (3.0, 5.0, 9.0, 18.0)
SENSITIVITY_B = 3.0
CONVERGENCE_NME = (10.0, 8.0)
DEFAULT_SEEDS = dict(a=(0, 1, 2), b=(0, 1, 2), c=(0, 1, 2), d=(0, 1))

# One protocol for every run of every table. One data-loading worker: the
# augmentation's random streams depend on the worker count, so fixing it
# keeps a run's result the same however many runs share the machine.
PROTOCOL = (
    'train_cfg.val_interval=1',
    'train_dataloader.num_workers=1',
    'val_dataloader.num_workers=1',
    f'val_dataloader.dataset.ann_file={VAL_CLEAN}',
    f'test_dataloader.dataset.ann_file={TEST_CLEAN}',
    f'test_evaluator.ann_file={DATA_ROOT}/{TEST_CLEAN}',
)

_CONFIG = 'configs/synthface/res18_{}_synthface.py'


@dataclass(frozen=True)
class Row:
    """One line of a table: a config, maybe changed by options.

    Attributes:
        label: What the table calls it.
        config: The config file, relative to the repository.
        options: ``--cfg-options`` on top of :data:`PROTOCOL`.
        tag: Run-dir suffix that tells the changed run from the config's.
        sigma_t: Along-curve noise of its training annotations (table b).
        ratio: ``a / b`` of its anisotropic loss (table d).
        noise: SynthFace's noise model of its training annotations
            (:mod:`mmaniso.study.evidence`).
        checkpoint: Which checkpoint is tested: ``'last'`` or ``'best'``
            (on the validation split).
    """

    label: str
    config: str
    options: Tuple[str, ...] = ()
    tag: str = ''
    sigma_t: Optional[float] = None
    ratio: Optional[float] = None
    noise: Optional[str] = None
    checkpoint: str = 'last'

    @property
    def name(self) -> str:
        """The run's folder name under the study's work dir."""
        stem = osp.splitext(osp.basename(self.config))[0]
        return f'{stem}@{self.tag}' if self.tag else stem

    @property
    def anisotropic(self) -> bool:
        return 'aniso' in osp.basename(self.config)


# Table a: each anisotropic form beside its isotropic twin on the same head
# and sampler (squared: L2; mahalanobis: L1; softwing: SoftWing), the
# paper's pieces added one by one. "+ mean-shape head" rows use the default
# sampler (no pose balancing); "alone" rows MMPose's RegressionHead.
ABLATION = (
    ('L1', 'l1'),
    ('true SoftWing', 'softwing-true'),
    ('L2', 'l2'),
    ('L1 + mean-shape head', 'l1-meanhead'),
    ('true SoftWing + mean-shape head', 'softwing-true-meanhead'),
    ('L2 + mean-shape head', 'l2-meanhead'),
    ('paper loss alone', 'aniso-loss-only'),
    ('paper loss + balancing', 'aniso-balanced'),
    ('paper loss + mean-shape head', 'aniso-meanhead'),
    ('paper set-up (loss + balancing + head)', 'aniso'),
    ('paper set-up, tempered balancing (alpha 0.5)', 'aniso-tempered'),
    ('normalised aniso L2 + mean-shape head', 'aniso-normalised-l2-nobalance'),
    ('normalised aniso L1 alone', 'aniso-normalised-l1-loss-only'),
    ('normalised aniso L1 + mean-shape head', 'aniso-normalised-l1-nobalance'),
    ('normalised aniso L1, paper set-up', 'aniso-normalised-l1'),
    ('normalised aniso SoftWing alone', 'aniso-normalised-softwing-loss-only'),
    (
        'normalised aniso SoftWing + mean-shape head',
        'aniso-normalised-softwing-nobalance',
    ),
    ('normalised aniso SoftWing, paper set-up', 'aniso-normalised-softwing'),
)
# Table b: the losses alone (RegressionHead, no balancing), then L1 and the
# normalised forms on the mean-shape head (still no balancing).
SWEEP = (
    ('L1', 'l1'),
    ('true SoftWing', 'softwing-true'),
    ('paper loss alone', 'aniso-loss-only'),
    ('normalised aniso L1 alone', 'aniso-normalised-l1-loss-only'),
    ('normalised aniso SoftWing alone', 'aniso-normalised-softwing-loss-only'),
    ('L1 + mean-shape head', 'l1-meanhead'),
    ('normalised aniso L1 + mean-shape head', 'aniso-normalised-l1-nobalance'),
    (
        'normalised aniso SoftWing + mean-shape head',
        'aniso-normalised-softwing-nobalance',
    ),
)


def sweep_ann(sigma_t: float) -> str:
    """Training annotations of SynthFace's images at another ``sigma_t``."""
    return ANN.format(f'train_st{sigma_t:g}')


def _ablation_rows() -> List[Row]:
    return [Row(label, _CONFIG.format(stem)) for label, stem in ABLATION]


def _sweep_rows() -> List[Row]:
    from mmaniso.synthface import SIGMA_T

    rows = []
    for sigma_t in SWEEP_SIGMA_T:
        for label, stem in SWEEP:
            if sigma_t == SIGMA_T:
                rows.append(Row(label, _CONFIG.format(stem), sigma_t=sigma_t))
                continue
            option = f'train_dataloader.dataset.ann_file={sweep_ann(sigma_t)}'
            rows.append(
                Row(
                    label,
                    _CONFIG.format(stem),
                    (option,),
                    tag=f'st{sigma_t:g}',
                    sigma_t=sigma_t,
                )
            )
    return rows


def sensitivity_rows(best: Row) -> List[Row]:
    """Table d: ``best`` at every ``a / b`` of :data:`SENSITIVITY_A`."""
    rows = []
    for a in SENSITIVITY_A:
        ratio = a / SENSITIVITY_B
        if a == 5.0:
            rows.append(Row(f'a/b = {ratio:.3g}', best.config, ratio=ratio))
            continue
        rows.append(
            Row(
                f'a/b = {ratio:.3g}',
                best.config,
                (
                    f'model.head.loss.a={a:g}',
                    f'model.head.loss.b={SENSITIVITY_B:g}',
                ),
                tag=f'a{a:g}b{SENSITIVITY_B:g}',
                ratio=ratio,
            )
        )
    return rows


def table_rows(table: str) -> List[Row]:
    """The rows of table ``a``, ``b`` or ``c`` (``d`` needs a choice first:
    :func:`sensitivity_rows`)."""
    if table in ('a', 'c'):
        return _ablation_rows()
    if table == 'b':
        return _sweep_rows()
    raise ValueError(f"table must be 'a', 'b' or 'c' here, got {table!r}")


# ------------------------------------------------------------------ data
def count_images(path: str) -> int:
    """How many images a COCO annotation file lists."""
    with open(path) as f:
        return len(json.load(f)['images'])


def write_clean_annotations(src: str, dst: str) -> None:
    """A copy of SynthFace's ``src`` whose ``keypoints`` are the clean
    landmarks (``keypoints_clean``), written whole or not at all.

    Raises:
        ValueError: If an annotation has no ``keypoints_clean``.
    """
    with open(src) as f:
        data = json.load(f)
    for ann in data['annotations']:
        if 'keypoints_clean' not in ann:
            raise ValueError(
                f'{src}: annotation id={ann.get("id")} has no '
                '"keypoints_clean"; regenerate the data with '
                'tools/dataset_converters/make_synthface.py'
            )
        ann['keypoints'] = ann['keypoints_clean']
    # Whole or not at all: the study takes an existing file for done.
    atomic_write_json(dst, data, indent=None)


def prepare_data(
    root: str = DATA_ROOT,
    splits: Mapping[str, int] = SPLITS,
    sigma_ts: Sequence[float] = (),
    workers: int = 2,
) -> Dict[str, str]:
    """Makes sure ``root`` holds what the study reads; writes what is
    missing.

    SynthFace's images and annotations (train, val, test), the clean copies
    of val and test (``*_clean.json``), and for each of ``sigma_ts`` other
    than SynthFace's default the training annotations of the *same* images
    with that along-curve noise (:func:`sweep_ann`). Each split has random
    streams of its own, so writing a missing one leaves the others as they
    are.

    Args:
        root: SynthFace's data root (the configs' ``data_root``).
        splits: Faces per split.
        sigma_ts: Along-curve noise levels of table b.
        workers: Rendering processes.

    Returns:
        The annotation file of each split and noise level written or found.

    Raises:
        ValueError: An existing split has another size than ``splits``
            asks for (a demo with other sizes wrote it).
    """
    from mmaniso.synthface import SIGMA_T, write_synthface

    paths, missing = {}, {}
    for split, num in splits.items():
        path = osp.join(root, ANN.format(split))
        if not osp.isfile(path):
            missing[split] = num
            continue
        found = count_images(path)
        if found != num:
            raise ValueError(
                f'{path} holds {found} faces, the study needs {num}; move '
                f'{root} aside (or delete it) and run again to regenerate it'
            )
        paths[split] = path
    if missing:
        paths.update(write_synthface(root, missing, workers=workers))
    for split in ('val', 'test'):
        if split not in paths:
            continue
        clean = osp.join(root, ANN.format(f'{split}_clean'))
        if not osp.isfile(clean):
            write_clean_annotations(paths[split], clean)
        paths[f'{split}_clean'] = clean
    for sigma_t in sigma_ts:
        if sigma_t == SIGMA_T:
            continue
        dst = osp.join(root, sweep_ann(sigma_t))
        if not osp.isfile(dst):
            write_train_annotations(
                dst, splits['train'], workers=workers, sigma_t=sigma_t
            )
        paths[f'train_st{sigma_t:g}'] = dst
    return paths


def write_train_annotations(dst: str, num: int, **synthface) -> None:
    """Writes to ``dst`` the training annotations of SynthFace's images
    under other noise settings (``write_synthface`` options: ``seed``,
    ``noise``, ``sigma_t``, ``workers``...).

    The split is rendered again into a scratch folder: the images come out
    the same (the scene has its own random stream), only the noise differs;
    just the annotation file is kept.
    """
    from mmaniso.synthface import write_synthface

    with tempfile.TemporaryDirectory() as tmp:
        written = write_synthface(tmp, dict(train=num), **synthface)
        atomic_copy(written['train'], dst)


# ------------------------------------------------------------------ reading
def run_dir(work_dir: str, row: Row, seed: int) -> str:
    return osp.join(work_dir, row.name, f'seed{seed}')


def save_figure(fig, out_file: str) -> str:
    """Lays out a matplotlib figure, writes it to ``out_file`` (its folder
    made if missing; whole or not at all) at the study plots' resolution,
    closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    kind = osp.splitext(out_file)[1][1:] or 'png'
    try:
        with replacing(out_file) as tmp:
            fig.savefig(tmp, format=kind, dpi=110, bbox_inches='tight')
    finally:
        plt.close(fig)
    return out_file


def val_curve(run_folder: str) -> Tuple[np.ndarray, np.ndarray]:
    """The validation NME after each epoch of a finished training run.

    Read from MMEngine's ``vis_data/scalars.json`` of the newest training
    in ``run_folder``.

    Returns:
        Iterations at the end of each validated epoch, shape (E,), and the
        NME there, shape (E,).
    """
    files = sorted(
        glob.glob(osp.join(run_folder, '2*', 'vis_data', 'scalars.json'))
    )
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json under {run_folder}')
    last_iter_of_epoch: Dict[int, int] = {}
    val: Dict[int, float] = {}
    with open(files[-1]) as f:
        for line in f:
            entry = json.loads(line)
            if 'NME' in entry:
                val[int(entry['step'])] = float(entry['NME'])
            elif 'epoch' in entry and 'iter' in entry:
                epoch = int(entry['epoch'])
                last_iter_of_epoch[epoch] = max(
                    last_iter_of_epoch.get(epoch, 0), int(entry['iter'])
                )
    if not val:
        raise ValueError(
            f'{files[-1]} holds no validation NME; was the run trained with '
            'train_cfg.val_interval=1?'
        )
    # The logger writes every `interval` iterations; an epoch's length is
    # the step between its logged ends, the first epoch's taken as the rest.
    epochs = sorted(val)
    lengths = np.diff([0] + [last_iter_of_epoch.get(e, 0) for e in epochs])
    per_epoch = int(np.median(lengths[1:])) if len(lengths) > 1 else None
    iters = np.array(
        [e * per_epoch if per_epoch else last_iter_of_epoch[e] for e in epochs]
    )
    return iters, np.array([val[e] for e in epochs])


def iterations_to(
    iters: np.ndarray, nme: np.ndarray, threshold: float
) -> Optional[int]:
    """The first iteration count whose validation NME is at most
    ``threshold``; None if never."""
    hit = np.flatnonzero(np.asarray(nme) <= threshold)
    return int(np.asarray(iters)[hit[0]]) if len(hit) else None


def _finished(run_folder: str) -> bool:
    """Whether a run was trained and tested (its metrics file exists)."""
    from mmaniso.study.runner import METRICS_FILE

    return osp.isfile(osp.join(run_folder, METRICS_FILE))


def final_val_nme(run_folder: str) -> float:
    return float(val_curve(run_folder)[1][-1])


def _fmt(values: Sequence[float], digits: int = 2) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return '–'
    mean = float(np.mean(values))
    if len(values) == 1:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {float(np.std(values, ddof=1)):.{digits}f}'


def load_metrics(work_dir: str, row: Row, seeds: Sequence[int]) -> List[dict]:
    """Test metrics and final validation NME of each finished seed.

    Raises:
        RecordError: A run's metrics file is not a valid record (e.g. cut
            off while written); the message names it and the fix.
    """
    from mmaniso.study.runner import METRICS_FILE, read_metrics

    runs = []
    for seed in seeds:
        folder = run_dir(work_dir, row, seed)
        path = osp.join(folder, METRICS_FILE)
        if not osp.isfile(path):
            continue
        metrics = read_metrics(path)
        metrics = dict(metrics, seed=seed)
        metrics['val/NME'] = final_val_nme(folder)
        runs.append(metrics)
    return runs


def choose_best(
    work_dir: str, rows: Sequence[Row], seeds: Sequence[int]
) -> Row:
    """The anisotropic row with the lowest mean final *validation* NME."""
    scores = {}
    for row in rows:
        if not row.anisotropic:
            continue
        runs = load_metrics(work_dir, row, seeds)
        if len(runs) == len(seeds):
            scores[row] = float(np.mean([r['val/NME'] for r in runs]))
    if not scores:
        raise ValueError(
            f'no anisotropic row of table a has all seeds {list(seeds)} in '
            f'{work_dir}; run --table a first'
        )
    return min(scores, key=scores.get)


# Columns of the curve points' error along and across the curve, shown
# when a run's metrics have them (runs tested before the metric reported
# them have not).
ALONG_ACROSS = (('along', 'NME_along'), ('across', 'NME_across'))


def markdown_results(
    work_dir: str, rows: Sequence[Row], seeds: Sequence[int]
) -> str:
    """Tables a, b and d: validation and test figures, mean ± std.

    The ``along`` and ``across`` columns (the curve points' NME split along
    and across the curve) appear when some run of the table has them."""
    loaded = {row: load_metrics(work_dir, row, seeds) for row in rows}
    split = [
        (title, key)
        for title, key in ALONG_ACROSS
        if any(key in r for runs in loaded.values() for r in runs)
    ]
    titles = (
        ['row', 'run', 'seeds', 'val NME', 'test NME', 'curve pts']
        + [title for title, _ in split]
        + ['corners', 'FR@0.1', 'AUC@0.1', 'large pose NME']
    )
    lines = [
        '| ' + ' | '.join(titles) + ' |',
        '|' + '---|' * len(titles),
    ]
    for row in rows:
        label = row.label
        if row.sigma_t is not None:
            label = f'{label}, sigma_t {row.sigma_t:g} d'
        runs = loaded[row]
        if not runs:
            lines.append(
                f'| {label} | `{row.name}` | – | not run |'
                + ' |' * (len(titles) - 4)
            )
            continue
        got = ','.join(str(r['seed']) for r in runs)
        cells = [
            label,
            f'`{row.name}`',
            got,
            _fmt([r['val/NME'] for r in runs]),
            _fmt([r['NME'] for r in runs]),
            _fmt([r.get('NME_curve') for r in runs]),
        ]
        cells += [_fmt([r.get(key) for r in runs]) for _, key in split]
        cells += [
            _fmt([r.get('NME_corners') for r in runs]),
            _fmt([r['FR@0.1'] for r in runs]),
            _fmt([r['AUC@0.1'] for r in runs], 4),
            _fmt([r.get('largepose/NME') for r in runs]),
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def markdown_convergence(
    work_dir: str, rows: Sequence[Row], seeds: Sequence[int]
) -> str:
    """Table c: iterations to each :data:`CONVERGENCE_NME` on validation."""
    cols = ' | '.join(f'iters to val NME {t:g}' for t in CONVERGENCE_NME)
    lines = [
        f'| row | seeds | {cols} |',
        '|---|---|' + '---|' * len(CONVERGENCE_NME),
    ]
    for row in rows:
        cells, done = [], []
        curves = []
        for seed in seeds:
            folder = run_dir(work_dir, row, seed)
            if not _finished(folder):
                continue  # a run still training has a partial curve
            try:
                curves.append(val_curve(folder))
                done.append(seed)
            except (FileNotFoundError, ValueError):
                continue
        for t in CONVERGENCE_NME:
            hits = [iterations_to(i, n, t) for i, n in curves]
            if not curves:
                cells.append('not run')
            elif any(h is None for h in hits):
                reached = sum(h is not None for h in hits)
                cells.append(
                    f'{_fmt(hits, 0)} ({reached}/{len(hits)} seeds reach it)'
                    if reached
                    else 'never'
                )
            else:
                cells.append(_fmt(hits, 0))
        seeds_cell = ','.join(map(str, done)) or '–'
        lines.append(
            f'| {row.label} | {seeds_cell} | ' + ' | '.join(cells) + ' |'
        )
    return '\n'.join(lines)


# ------------------------------------------------------------------ plots
def _plt():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def plot_results(
    work_dir: str, rows: Sequence[Row], seeds: Sequence[int], out_file: str
) -> str:
    """Table a or d as horizontal bars: test NME, mean ± std, and the
    validation NME beside it."""
    plt = _plt()
    labels, test, test_err, val, val_err = [], [], [], [], []
    for row in rows:
        runs = load_metrics(work_dir, row, seeds)
        if not runs:
            continue
        labels.append(row.label)
        t = [r['NME'] for r in runs]
        v = [r['val/NME'] for r in runs]
        test.append(np.mean(t))
        test_err.append(np.std(t, ddof=1) if len(t) > 1 else 0.0)
        val.append(np.mean(v))
        val_err.append(np.std(v, ddof=1) if len(v) > 1 else 0.0)
    if not labels:
        raise ValueError(f'no finished run of these rows in {work_dir}')
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
    ax.barh(y - 0.2, test, 0.4, xerr=test_err, label='test', color='#4C72B0')
    ax.barh(
        y + 0.2, val, 0.4, xerr=val_err, label='validation', color='#DD8452'
    )
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel(
        'NME (%, inter-ocular, clean landmarks), mean ± std over seeds'
    )
    # Above the axes: inside, it hid the end of the longest bars.
    ax.legend(
        loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False
    )
    ax.grid(axis='x', alpha=0.3)
    return save_figure(fig, out_file)


def plot_convergence(
    work_dir: str, rows: Sequence[Row], seeds: Sequence[int], out_file: str
) -> str:
    """Table c: validation NME against iterations, mean over seeds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap('tab20')
    drawn = 0
    for k, row in enumerate(rows):
        curves = []
        for seed in seeds:
            folder = run_dir(work_dir, row, seed)
            if not _finished(folder):
                continue
            try:
                curves.append(val_curve(folder))
            except (FileNotFoundError, ValueError):
                pass
        if not curves:
            continue
        n = min(len(c[0]) for c in curves)
        iters = curves[0][0][:n]
        nme = np.mean([c[1][:n] for c in curves], axis=0)
        style = '-' if row.anisotropic else '--'
        ax.plot(iters, nme, style, color=cmap(k), label=row.label)
        drawn += 1
    if not drawn:
        raise ValueError(f'no validation curve of these rows in {work_dir}')
    for t in CONVERGENCE_NME:
        ax.axhline(t, color='grey', lw=0.8, ls=':')
    ax.set_yscale('log')
    ax.set_xlabel('training iterations')
    ax.set_ylabel('validation NME (%), mean over seeds')
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return save_figure(fig, out_file)


def plot_sweep(
    work_dir: str, rows: Sequence[Row], seeds: Sequence[int], out_file: str
) -> str:
    """Table b: test NME against sigma_t, one line per loss, error bars;
    all points, the points on curves and the corners in three panels, and
    the curve points' error along and across the curve in two more when
    some run's metrics have them."""
    plt = _plt()
    panels = [
        ('NME', 'all points'),
        ('NME_curve', 'points on curves'),
        ('NME_corners', 'corners (W = I)'),
    ]
    runs = [r for row in rows for r in load_metrics(work_dir, row, seeds)]
    extra = [
        (key, f'curve points, {title} the curve')
        for title, key in ALONG_ACROSS
        if any(key in r for r in runs)
    ]
    panels[2:2] = extra
    fig, axes = plt.subplots(
        1, len(panels), figsize=(14 * len(panels) / 3, 4.5), sharey=True
    )
    found = False
    for ax, (key, title) in zip(axes, panels):
        by_label: Dict[str, List[Tuple[float, float, float]]] = {}
        for row in rows:
            values = [
                r[key] for r in load_metrics(work_dir, row, seeds) if key in r
            ]
            if values:
                by_label.setdefault(row.label, []).append(
                    (
                        row.sigma_t,
                        np.mean(values),
                        np.std(values, ddof=1) if len(values) > 1 else 0,
                    )
                )
        for label, points in by_label.items():
            found = True
            points.sort()
            x, y, e = zip(*points)
            ax.errorbar(x, y, yerr=e, marker='o', capsize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel('along-curve annotation noise sigma_t (fraction of d)')
        ax.grid(alpha=0.3)
    if not found:
        plt.close(fig)
        raise ValueError(f'no finished run of these rows in {work_dir}')
    axes[0].set_ylabel('test NME (%), mean ± std over seeds')
    axes[0].legend(fontsize=8)
    return save_figure(fig, out_file)
