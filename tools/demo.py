"""The README's main job: the paper's set-up, the study's best variant, its
exact isotropic twin and the true SoftWing baseline on SynthFace.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root DIR]
        [--num-train 2000] [--num-test 500] [--epochs N] [--jobs N]

1. generates SynthFace (2,000 + 500 rendered faces) if it is missing;
2. trains, side by side on CPU (``--jobs``) with one backbone and schedule:
   the paper's set-up (configs/synthface/res18_aniso_synthface.py:
   anisotropic loss, pose balancing, mean-shape head), the study's best
   variant (the normalised anisotropic L1 on the mean-shape head, chosen
   on the validation split, docs/study.md), the same loss with a = b (its
   exact isotropic twin: only the along-curve discount differs) and the
   true SoftWing baseline (MMPose's SoftWingLoss with its published pixel
   parameters converted to MMPose's normalised frame);
3. evaluates all four against the *clean* landmarks of the test faces
   (training used the noisy "annotated" ones);
4. prints NME, FR@0.1, AUC@0.1, the NME of curve points vs corners and the
   curve points' error along and across the curve (the metric's
   ``NME_along``/``NME_across``), and saves the CED plot and a picture of
   predictions in the work dir.
"""

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
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
from mmaniso.utils.atomic_files import (
    atomic_write_json,
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

RUNS = [
    ('paper', 'configs/synthface/res18_aniso_synthface.py'),
    ('best', BEST_VARIANT),
    # The best variant with a = b: the same loss without the along-curve
    # discount, its exact isotropic twin.
    ('twin', 'configs/synthface/res18_point-l1-meanhead_synthface.py'),
    ('softwing', 'configs/synthface/res18_softwing-true_synthface.py'),
]
TRAIN_ANN = 'annotations/face_landmarks_wflw_train.json'
TEST_ANN = 'annotations/face_landmarks_wflw_test.json'
CLEAN_ANN = 'annotations/face_landmarks_wflw_test_clean.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='mmaniso demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthface')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-test', type=int, default=500)
    parser.add_argument(
        '--epochs',
        type=int,
        default=None,
        help="training epochs of each model (default: the configs')",
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=len(RUNS),
        help='trainings at once, the cores split between them (default: '
        f'all {len(RUNS)}; on two cores this is ~2x faster than one after '
        'another, '
        'whose thread pools fight the data workers)',
    )
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='dataloader workers of each training (default 1)',
    )
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f'[demo] {message}', flush=True)


def ensure_data(root: str, num_train: int, num_test: int) -> None:
    if osp.isfile(osp.join(root, TRAIN_ANN)) and osp.isfile(
        osp.join(root, TEST_ANN)
    ):
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


def write_clean_annotations(src: str, dst: str) -> None:
    """A copy of ``src`` whose ``keypoints`` are the clean landmarks."""
    with open(src) as f:
        data = json.load(f)
    for ann in data['annotations']:
        if 'keypoints_clean' not in ann:
            raise ValueError(
                f'{src}: annotation id={ann.get("id")} has no '
                '"keypoints_clean"; regenerate it with '
                'tools/dataset_converters/make_synthface.py'
            )
        ann['keypoints'] = ann['keypoints_clean']
    atomic_write_json(dst, data, indent=None)


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
    out_png: str, root: str, clean_ann: str, results: dict, num: int = 6
) -> None:
    import cv2
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    with open(clean_ann) as f:
        data = json.load(f)
    images = {img['id']: img for img in data['images']}
    anns = data['annotations'][:num]
    fig, axes = plt.subplots(1, len(anns), figsize=(3 * len(anns), 3.4))
    colours = {
        'paper': 'tab:red',
        'best': 'tab:orange',
        'twin': 'tab:purple',
        'softwing': 'tab:blue',
    }
    for ax, ann in zip(np.atleast_1d(axes), anns):
        img = cv2.imread(
            osp.join(root, 'images', images[ann['image_id']]['file_name'])
        )
        ax.imshow(img[..., ::-1])
        gt = np.asarray(ann['keypoints'], dtype=float).reshape(-1, 3)
        ax.scatter(gt[:, 0], gt[:, 1], s=6, c='lime', label='clean truth')
        for name, res in results.items():
            pred = res['preds'][ann['id']]
            ax.scatter(
                pred[:, 0],
                pred[:, 1],
                s=6,
                c=colours.get(name),
                marker='x',
                linewidths=0.8,
                label=name,
            )
        ax.set_axis_off()
    np.atleast_1d(axes)[0].legend(loc='upper left', fontsize=7, framealpha=0.8)
    fig.suptitle('SynthFace test faces: clean landmarks and predictions')
    fig.tight_layout()
    try:
        with replacing(out_png) as tmp:
            fig.savefig(tmp, format='png', dpi=90)
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
        options += [
            f'train_cfg.max_epochs={args.epochs}',
            f'train_cfg.val_interval={args.epochs}',
            f'default_hooks.checkpoint.interval={args.epochs}',
        ]
    groups = dict(zip(('curve', 'corners'), curve_and_corner_points()))
    if args.jobs < 1:
        raise SystemExit(f'--jobs must be at least 1, got {args.jobs}')
    jobs = min(args.jobs, len(RUNS))
    env = thread_env(jobs)
    log(
        f'{len(RUNS)} trainings, {jobs} at a time, '
        f'{env["OMP_NUM_THREADS"]} thread(s) and {args.workers} data '
        'worker(s) each'
    )

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
        show = ProgressLine(f'[demo] {name}', tty=False if jobs > 1 else None)
        run_result = train_then_test(
            config,
            work_dir,
            cfg_options=options,
            predictions_file=preds_file,
            overwrite_results=True,
            env=env,
            cwd=REPO,
            log_file=log_file,
            progress=show,
        )
        show.close()
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
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            name: pool.submit(one, name, config) for name, config in RUNS
        }
        # In the order of RUNS whichever finishes first; a failed training
        # raises here with the end of its log.
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


def report(args, results: dict) -> None:
    from mmaniso.evaluation.ced_plot import plot_ced

    on_curve, corners = curve_and_corner_points()
    lines = [
        'SynthFace test set, errors against the clean landmarks '
        '(inter-ocular NME, %; along, across: the error of the curve '
        'points along and across the curve)',
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
    lines += [f'{name}: {config}' for name, config in RUNS]
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


if __name__ == '__main__':
    main()
