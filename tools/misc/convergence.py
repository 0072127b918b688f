"""How fast each config of a study reaches an NME threshold.

    python tools/misc/convergence.py STUDY_DIR --threshold 10
        [--out convergence.png]

Reads the validation NME that MMEngine logged during each training of a
``tools/misc/study.py`` work dir (``<config>/seed<S>/<timestamp>/vis_data/
scalars.json``) and prints, per config, the first training step (iteration,
or epoch for epoch-based loops) at which the validation NME is at or below
``--threshold`` (in the metric's unit, % for FaceLandmarkMetric), as mean ±
std over seeds, with how many seeds got there at all. ``--out`` plots the
validation NME against the step, one line per run.
"""

import argparse
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmaniso.evaluation.table import sample_mean_std


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('study_dir')
    parser.add_argument('--threshold', type=float, required=True)
    parser.add_argument('--key', default='NME')
    parser.add_argument('--out', help='PNG of validation NME vs step')
    return parser.parse_args(argv)


def validation_curve(run_dir: str, key: str = 'NME') -> List[Tuple]:
    """``(step, value)`` of every logged validation of one training run."""
    points = []
    for path in sorted(
        glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))
    ):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if key in record and 'step' in record:
                    points.append((record['step'], float(record[key])))
    # A test run in the same folder logs the metric too, at step 0 or at
    # the last step: keep the first value logged at each step.
    seen = {}
    for step, value in points:
        seen.setdefault(step, value)
    return sorted(seen.items())


def first_step_below(curve, threshold: float) -> Optional[int]:
    for step, value in curve:
        if value <= threshold:
            return step
    return None


def collect(study_dir: str, key: str) -> Dict[str, Dict[str, list]]:
    runs: Dict[str, Dict[str, list]] = {}
    for run_dir in sorted(glob.glob(osp.join(study_dir, '*', 'seed*'))):
        config = osp.basename(osp.dirname(run_dir))
        curve = validation_curve(run_dir, key)
        if curve:
            runs.setdefault(config, {})[osp.basename(run_dir)] = curve
    if not runs:
        raise SystemExit(
            f'no validation {key} found under {study_dir}/*/seed*/; train '
            'with a val_interval shorter than the run (e.g. '
            'train_cfg.val_interval=100)'
        )
    return runs


def summarise(runs, threshold: float) -> List[str]:
    lines = [
        f'first step with validation NME <= {threshold:g} '
        '(mean ± std over the seeds that got there)',
        f'{"config":<34} {"reached":>8} {"step":>16} {"final NME":>16}',
    ]
    for config, seeds in runs.items():
        steps = [first_step_below(c, threshold) for c in seeds.values()]
        reached = [s for s in steps if s is not None]
        finals = [c[-1][1] for c in seeds.values()]
        lines.append(
            f'{config:<34} {len(reached):>4}/{len(steps):<3} '
            f'{_mean_std(reached):>16} {_mean_std(finals):>16}'
        )
    return lines


def _mean_std(values) -> str:
    if not values:
        return '-'
    return '{:.1f} ± {:.1f}'.format(*sample_mean_std(values))


def plot(runs, threshold: float, out: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    colours = {}
    for config, seeds in runs.items():
        for i, curve in enumerate(seeds.values()):
            steps, values = zip(*curve)
            (line,) = ax.plot(
                steps,
                values,
                color=colours.get(config),
                alpha=0.8,
                label=config if i == 0 else None,
            )
            colours[config] = line.get_color()
    ax.axhline(threshold, color='grey', linestyle=':', linewidth=1)
    ax.set_xlabel('training step')
    ax.set_ylabel('validation NME')
    ax.set_yscale('log')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main(argv=None):
    args = parse_args(argv)
    if args.out:
        from mmaniso.utils.output_paths import refuse_writing_inputs

        logs = glob.glob(
            osp.join(args.study_dir, '**', 'scalars.json'), recursive=True
        )
        refuse_writing_inputs(
            [('--out', args.out)],
            [('the training log', path) for path in logs],
            fix='name another --out file',
        )
    runs = collect(args.study_dir, args.key)
    print('\n'.join(summarise(runs, args.threshold)))
    if args.out:
        plot(runs, args.threshold, args.out)
        print(f'wrote {args.out}')
    return runs


if __name__ == '__main__':
    main()
