"""The README's main job: the study's finding in one run on SynthFace.

    python tools/demo.py [--full] [--work-dir DIR] [--data-root DIR]
        [--num-train N] [--num-test N] [--epochs N] [--jobs N]

The short demo (``make demo``, a few minutes on two cores) trains three
models side by side: MMPose's L1 on its stock regression head, the same
L1 of each point's error on the mean-shape head (``twin``: the
anisotropic loss with a = b), and the anisotropic L1 (a/b = 5/3) on that
head (``aniso``), on 1,000 SynthFace faces for 8 epochs. ``--full``
(``make demo-full``) trains the four models of the study's budget on
2,000 faces for 15 epochs: the paper's set-up
(configs/synthface/res18_aniso_synthface.py), the study's best variant,
its exact a = b twin and the true SoftWing baseline.

1. generates SynthFace if it is missing;
2. trains the models side by side on CPU (``--jobs``), one progress line
   at least every 30 seconds;
3. tests them against the *clean* landmarks of the test faces (training
   used the noisy "annotated" ones);
4. prints NME, FR@0.1, AUC@0.1, the NME of curve points and corners and
   the curve points' error along and across the curve (the metric's
   ``NME_along``/``NME_across``), saying which way is better; saves the
   CED plot and a picture of each model's points on a few test faces; and
   ends with the ``tools/infer.py`` command for the best model.
"""

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Sequence

import numpy as np

from mmaniso.study.runner import (
    ProgressLine,
    RunInterrupted,
    forward_signals,
    thread_env,
    train_then_test,
)
from mmaniso.study.tables import count_images, write_clean_annotations
from mmaniso.utils.atomic_files import (
    atomic_write_text,
    replacing,
)

# The anisotropic variant with the lowest validation NME in the evidence's
# key table e (docs/study.md, `evidence.choose_best` over its seeds (8 for
# the L1 forms, 4 for SoftWing) and both noise models, 300 validation
# faces): the normalised anisotropic L1
# on the mean-shape head without balancing; no test face took part.
BEST_VARIANT = (
    'configs/synthface/res18_aniso-normalised-l1-nobalance_synthface.py'
)
# The configs and tools are named relative to the repository.
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

TWIN = 'configs/synthface/res18_point-l1-meanhead_synthface.py'
# The full demo: the study's budget, four models.
RUNS = [
    ('paper', 'configs/synthface/res18_aniso_synthface.py'),
    ('best', BEST_VARIANT),
    # The best variant with a = b: the same loss without the along-curve
    # discount, its exact isotropic twin.
    ('twin', TWIN),
    ('softwing', 'configs/synthface/res18_softwing-true_synthface.py'),
]
# The short demo: the two halves of the finding, the head's gain (L1 ->
# twin) and the anisotropy's trade (twin -> aniso), on a smaller budget.
SHORT_RUNS = [
    ('L1', 'configs/synthface/res18_l1_synthface.py'),
    ('twin', TWIN),
    ('aniso', BEST_VARIANT),
]
SHORT = dict(num_train=1000, num_test=300, epochs=8)
# The full demo's data apart: the SynthFace configs read data/synthface,
# which the short demo writes.
FULL = dict(num_train=2000, num_test=500, epochs=None)
# What each row is, in words, for the table's legend.
DESCRIBE = {
    'paper': "the paper's set-up: anisotropic squared cost, pose "
    'balancing, mean-shape head',
    'best': "the study's best variant: anisotropic L1 (a/b = 5/3) on the "
    'mean-shape head',
    'aniso': 'anisotropic L1 (a/b = 5/3) on the mean-shape head',
    'twin': "the same L1 of each point's error with a = b (no along-curve "
    'discount) on the mean-shape head',
    'softwing': "MMPose's SoftWing with its published pixel parameters",
    'L1': "MMPose's L1 on its stock regression head",
}
COLOURS = {
    'paper': 'tab:red',
    'best': 'tab:orange',
    'aniso': 'tab:orange',
    'twin': 'tab:purple',
    'softwing': 'tab:blue',
    'L1': 'tab:blue',
}
# Seconds without a line before the demo says where each training is.
HEARTBEAT_S = 30.0
TRAIN_ANN = 'annotations/face_landmarks_wflw_train.json'
TEST_ANN = 'annotations/face_landmarks_wflw_test.json'
CLEAN_ANN = 'annotations/face_landmarks_wflw_test_clean.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='mmaniso demo')
    parser.add_argument(
        '--full',
        action='store_true',
        help="the study's budget: four models, 2,000 faces, 15 epochs "
        '(make demo-full); default: the short demo, three models, 1,000 '
        'faces, 8 epochs (make demo)',
    )
    parser.add_argument(
        '--work-dir', help='default work_dirs/demo (--full: demo_full)'
    )
    parser.add_argument(
        '--data-root',
        help='default data/synthface, where the SynthFace configs read it '
        '(--full: data/synthface_full)',
    )
    parser.add_argument('--num-train', type=int)
    parser.add_argument('--num-test', type=int)
    parser.add_argument(
        '--epochs',
        type=int,
        default=None,
        help='training epochs of each model (default: 8; --full: the '
        "configs' 15); the learning-rate steps scale with it",
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=None,
        help='trainings at once, the cores split between them (default: '
        'all; on two cores this is ~2x faster than one after another, '
        'whose thread pools fight the data workers)',
    )
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='dataloader workers of each training (default 1)',
    )
    args = parser.parse_args(argv)
    length = FULL if args.full else SHORT
    args.runs = RUNS if args.full else SHORT_RUNS
    args.work_dir = args.work_dir or (
        'work_dirs/demo_full' if args.full else 'work_dirs/demo'
    )
    args.data_root = args.data_root or (
        'data/synthface_full' if args.full else 'data/synthface'
    )
    for key in ('num_train', 'num_test', 'epochs'):
        if getattr(args, key) is None:
            setattr(args, key, length[key])
    if args.jobs is None:
        args.jobs = len(args.runs)
    return args


_print_lock = threading.Lock()


def log(message: str) -> None:
    # One lock for every line the demo's threads print: two trainings
    # finishing at once must not merge their lines.
    with _print_lock:
        print(f'[demo] {message}', flush=True)


def schedule_options(epochs: int) -> list:
    """``--cfg-options`` that train ``epochs`` epochs with the SynthFace
    configs' learning-rate steps (after 11 and 14 of 15) at the same
    fractions of the run."""
    return [
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}',
        f'default_hooks.checkpoint.interval={epochs}',
        f'param_scheduler.1.end={epochs}',
        'param_scheduler.1.milestones='
        f'[{_step(epochs, 11)},{_step(epochs, 14)}]',
    ]


def _step(epochs: int, of_15: int) -> int:
    return max(1, round(epochs * of_15 / 15))


class Heartbeat:
    """Prints where every training is when nothing was printed for
    :data:`HEARTBEAT_S` seconds, so a slow machine never looks hung."""

    def __init__(self, shows: dict, period: float = HEARTBEAT_S):
        self.shows = shows
        self.period = period
        self.start = time.time()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.period):
            parts = []
            for name, show in self.shows.items():
                last = show.last
                state = getattr(show, 'state', None)
                if state:
                    parts.append(f'{name} {state}')
                elif last is None:
                    parts.append(f'{name} starting')
                else:
                    parts.append(
                        f'{name} epoch {last.epoch} iter {last.iteration}/'
                        f'{last.iterations} eta {last.eta}'
                    )
            log(f'{time.time() - self.start:.0f} s: ' + ', '.join(parts))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class _LockedProgress:
    """A :class:`ProgressLine` whose lines go through the demo's print
    lock."""

    def __init__(self, show):
        self.show = show
        self.state = ''

    @property
    def last(self):
        return self.show.last

    def __call__(self, p) -> None:
        with _print_lock:
            self.show(p)

    def close(self) -> None:
        self.show.close()


def ensure_data(root: str, num_train: int, num_test: int) -> None:
    if osp.isfile(osp.join(root, TRAIN_ANN)) and osp.isfile(
        osp.join(root, TEST_ANN)
    ):
        found = {
            split: count_images(osp.join(root, ann))
            for split, ann in (('train', TRAIN_ANN), ('test', TEST_ANN))
        }
        if found != dict(train=num_train, test=num_test):
            raise SystemExit(
                f'{root} holds SynthFace with {found["train"]} training and '
                f'{found["test"]} test faces; this demo needs {num_train} '
                f'and {num_test}. Give another --data-root, or move {root} '
                'aside and run the demo again'
            )
        log(f'SynthFace found in {root}')
    else:
        log(
            f'generating SynthFace ({num_train} train + {num_test} test) '
            f'in {root}'
        )
        run(
            [
                sys.executable,
                'tools/dataset_converters/make_synthface.py',
                root,
                '--num-train',
                str(num_train),
                '--num-test',
                str(num_test),
            ]
        )
    write_clean_annotations(
        osp.join(root, TEST_ANN), osp.join(root, CLEAN_ANN)
    )


def run(cmd: list) -> None:
    log('$ ' + ' '.join(cmd))
    subprocess.run(cmd, check=True, cwd=REPO)


def loader_options(root: str, workers: int) -> list:
    root = root.rstrip('/') + '/'
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.num_workers={workers}',
            f'{split}_dataloader.persistent_workers={workers > 0}',
        ]
    # Tested against the clean landmarks, with SynthFace's subset flags.
    return opts + [
        f'test_dataloader.dataset.ann_file={CLEAN_ANN}',
        f'test_evaluator.ann_file={osp.join(root, CLEAN_ANN)}',
    ]


def load_predictions(preds_file: str) -> Dict[int, np.ndarray]:
    """The predicted keypoints of each test face, shape (K, 2), by
    annotation id, from a ``tools/test.py --out`` file.

    Read with mmaniso's restricted unpickler (plain containers and numpy
    arrays), like a checkpoint: a pickle found in a work dir must not be
    able to run code.
    """
    from mmaniso.checkpoint.safe_loader import (
        CheckpointRefusedError,
        SafeUnpickler,
        check_loaded,
    )

    with open(preds_file, 'rb') as f:
        try:
            # The same two checks as a checkpoint load: what the unpickler
            # builds, then a walk for non-plain numpy dtypes.
            samples = check_loaded(SafeUnpickler(f).load(), preds_file)
        except CheckpointRefusedError as error:
            raise CheckpointRefusedError(
                f'{preds_file}: refused to read these test predictions: '
                f'{error}. tools/test.py --out writes only plain data here; '
                'delete the file and run the demo again'
            ) from None
    return {
        s['id']: np.asarray(s['pred_instances']['keypoints'])[0]
        for s in samples
    }


def point_group_nme(
    preds: Dict[int, np.ndarray],
    clean_ann: str,
    groups: Dict[str, Sequence[int]],
) -> Dict[str, float]:
    """Inter-ocular NME over each group of points, as a fraction.

    The metric's per-image NME with the mean taken over the group's points
    only (the eye corners still normalise), averaged over the test faces.
    """
    from mmaniso.evaluation.functional import (
        keypoint_distances,
        norm_indices_for,
        per_image_nme,
    )

    with open(clean_ann) as f:
        anns = {a['id']: a for a in json.load(f)['annotations']}
    ids = list(preds)
    gt = np.stack(
        [
            np.asarray(anns[i]['keypoints'], dtype=float).reshape(-1, 3)[:, :2]
            for i in ids
        ]
    )  # (N, K, 2)
    pred = np.stack([preds[i] for i in ids])  # (N, K, 2)
    iod = keypoint_distances(gt, norm_indices_for('inter_ocular', 'wflw'))
    return {
        name: float(per_image_nme(pred[:, idx], gt[:, idx], iod, ids).mean())
        for name, idx in groups.items()
    }


def curve_and_corner_points():
    from mmaniso.datasets.point_types import get_point_types

    types = get_point_types('wflw')
    corners = sorted(types.corners)
    on_curve = sorted(
        {i for c in types.curves for i in c.indices if i not in types.corners}
    )
    return on_curve, corners


def draw_predictions(
    out_png: str, root: str, clean_ann: str, results: dict, num: int = 3
) -> None:
    """One row per test face, one column per model: the face enlarged with
    the clean landmarks and that model's points, the lines between them
    showing each point's error; one legend for the figure."""
    import cv2
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    with open(clean_ann) as f:
        data = json.load(f)
    images = {img['id']: img for img in data['images']}
    anns = data['annotations'][:num]
    names = list(results)
    fig, axes = plt.subplots(
        len(anns), len(names), figsize=(3.2 * len(names), 3.2 * len(anns)),
        squeeze=False,
    )  # fmt: skip
    for r, ann in enumerate(anns):
        img = cv2.imread(
            osp.join(root, 'images', images[ann['image_id']]['file_name'])
        )
        gt = np.asarray(ann['keypoints'], dtype=float).reshape(-1, 3)[:, :2]
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(img[..., ::-1], interpolation='bicubic')
            pred = results[name]['preds'][ann['id']]
            colour = COLOURS.get(name, f'C{c}')
            ax.plot(
                np.stack([gt[:, 0], pred[:, 0]]),
                np.stack([gt[:, 1], pred[:, 1]]),
                color=colour, lw=0.8,
            )  # fmt: skip
            ax.scatter(gt[:, 0], gt[:, 1], s=7, c='lime', zorder=3,
                       label='clean landmarks')  # fmt: skip
            ax.scatter(
                pred[:, 0], pred[:, 1], s=9, c=colour, marker='x',
                linewidths=0.9, zorder=4, label='prediction',
            )  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, color=colour, fontsize=11)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, ['clean landmarks', "the model's prediction"],
               loc='lower center', ncol=2, fontsize=9)  # fmt: skip
    fig.suptitle(
        'SynthFace test faces, enlarged: each line joins a clean '
        "landmark to the model's point",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    try:
        with replacing(out_png) as tmp:
            fig.savefig(tmp, format='png', dpi=80)
    finally:
        plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    # A SIGTERM or Ctrl-C reaches the trainings too (own process groups).
    forward_signals()
    try:
        _demo(args)
    except RunInterrupted as e:
        log(str(e))
        sys.exit(128 + e.signum)


def _demo(args) -> None:
    # The tools run in the repository: paths given relative to where the
    # demo started are made absolute, so that both read the same files.
    args.work_dir = osp.abspath(args.work_dir)
    args.data_root = osp.abspath(args.data_root)
    start = time.time()
    ensure_data(args.data_root, args.num_train, args.num_test)
    options = loader_options(args.data_root, args.workers)
    if args.epochs:
        options += schedule_options(args.epochs)
    groups = dict(zip(('curve', 'corners'), curve_and_corner_points()))
    if args.jobs < 1:
        raise SystemExit(f'--jobs must be at least 1, got {args.jobs}')
    runs = args.runs
    jobs = min(args.jobs, len(runs))
    env = thread_env(jobs)
    log(
        f'{len(runs)} trainings, {jobs} at a time, '
        f'{env["OMP_NUM_THREADS"]} thread(s) and {args.workers} data '
        'worker(s) each'
    )
    shows = {
        name: _LockedProgress(
            ProgressLine(f'[demo] {name}', tty=False if jobs > 1 else None)
        )
        for name, _ in runs
    }

    def one(name: str, config: str) -> dict:
        work_dir = osp.join(args.work_dir, name)
        preds_file = osp.join(work_dir, 'test_preds.pkl')
        log_file = osp.join(work_dir, 'demo_run.log')
        log(
            f'training {name}: {config}, then testing it against the clean '
            f'landmarks (full logs: {log_file})'
        )
        # A rerun trains afresh (the earlier checkpoints are moved into
        # <work_dir>/previous_<timestamp>/, not mixed in) and its results
        # replace the earlier ones. Runs side by side print their progress
        # as lines, since they share the terminal.
        show = shows[name]
        show.state = ''
        run_result = train_then_test(
            config,
            work_dir,
            # Each setting by name: a keyword list, not logic.
            cfg_options=options,
            predictions_file=preds_file,
            overwrite_results=True,
            env=env,
            cwd=REPO,
            log_file=log_file,
            progress=show,
        )
        show.close()
        show.state = 'done'
        log(f'{name} finished in {run_result.seconds:.0f} s')
        preds = load_predictions(preds_file)
        return dict(
            metrics=run_result.metrics,
            group_nme=point_group_nme(
                preds, osp.join(args.data_root, CLEAN_ANN), groups
            ),
            preds=preds,
            nme_file=_latest(work_dir, 'wflw.nme.json'),
            seconds=run_result.seconds,
            config=config,
            checkpoint=run_result.checkpoint,
        )

    with Heartbeat(shows), ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            name: pool.submit(one, name, config) for name, config in runs
        }
        # In the order of the runs whichever finishes first; a failed
        # training raises here with the end of its log.
        results = {name: future.result() for name, future in futures.items()}
    report(args, results)
    log(f'total {time.time() - start:.0f} s')


def _latest(work_dir: str, name: str) -> str:
    import glob

    found = sorted(
        glob.glob(osp.join(work_dir, '*', name)), key=os.path.getmtime
    )
    return found[-1] if found else ''


def _cell(value) -> str:
    """A metric in percent with two decimals, '-' where a run's metrics
    lack it (written before the metric reported it)."""
    return '-' if value is None else f'{value:.2f}'


def best_model(results: dict) -> str:
    """The run with the lowest test NME."""
    return min(results, key=lambda name: results[name]['metrics']['NME'])


def infer_command(result: dict) -> str:
    """The ``tools/infer.py`` command that runs a trained model on your own
    photographs."""
    config = osp.relpath(result['config'], REPO) if osp.isabs(
        result['config']
    ) else result['config']  # fmt: skip
    checkpoint = result.get('checkpoint') or '<checkpoint>'
    cwd = os.getcwd()
    if osp.isabs(checkpoint) and checkpoint.startswith(cwd + os.sep):
        checkpoint = osp.relpath(checkpoint, cwd)
    return (
        f'python tools/infer.py {config} {checkpoint} YOUR_PHOTOS/ '
        '--out-dir work_dirs/infer'
    )


def report(args, results: dict) -> None:
    from mmaniso.evaluation.ced_plot import plot_ced

    on_curve, corners = curve_and_corner_points()
    lines = [
        'SynthFace test set, errors against the clean landmarks '
        '(inter-ocular NME, %). Lower is better in every column but AUC '
        '(higher is better).',
        'along / across: the error of the curve points along the curve and '
        'across it; a loss that discounts along-curve error trades one for '
        'the other.',
        f'{"model":<10} {"NME":>6} {"FR@0.1":>7} {"AUC@0.1":>8} '
        f'{"curve pts":>10} {"along":>6} {"across":>6} {"corners":>8} '
        f'{"train+test":>11}',
    ]
    for name, res in results.items():
        m, group_nme = res['metrics'], res['group_nme']
        lines.append(
            f'{name:<10} {m["NME"]:>6.2f} {m["FR@0.1"]:>7.2f} '
            f'{m["AUC@0.1"]:>8.4f} {100 * group_nme["curve"]:>10.2f} '
            f'{_cell(m.get("NME_along")):>6} '
            f'{_cell(m.get("NME_across")):>6} '
            f'{100 * group_nme["corners"]:>8.2f} '
            f'{res["seconds"]:>10.0f}s'
        )
    lines.append('')
    lines += [
        f'{name:<10} {DESCRIBE.get(name, "")} ({res.get("config", "")})'
        for name, res in results.items()
    ]
    table = '\n'.join(lines)
    print('\n' + table)
    atomic_write_text(osp.join(args.work_dir, 'results.txt'), table + '\n')
    ced_png = osp.join(args.work_dir, 'ced.png')
    curves = {}
    for name, res in results.items():
        with open(res['nme_file']) as f:
            curves[name] = np.array([r['nme'] for r in json.load(f)])
    with replacing(ced_png) as tmp:
        plot_ced(curves, tmp, max_nme=0.1)
    pred_png = osp.join(args.work_dir, 'predictions.png')
    draw_predictions(
        pred_png, args.data_root, osp.join(args.data_root, CLEAN_ANN), results
    )
    log(
        f'curve points: {len(on_curve)} non-corner points on curves; '
        f'corners: {len(corners)} (eye and mouth corners)'
    )
    log(
        f'wrote {osp.join(args.work_dir, "results.txt")}, {ced_png}, '
        f'{pred_png}'
    )
    best = best_model(results)
    if 'preds' in results[best] and 'config' in results[best]:
        log(
            f'lowest NME: {best}. Run it on your own photographs '
            '(faces found by the offline detector; JSON and PNG per image):'
        )
        print('  ' + infer_command(results[best]), flush=True)


if __name__ == '__main__':
    main()
