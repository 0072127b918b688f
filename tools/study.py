"""Run several seeds of one or more configs and tabulate mean ± std.

    python tools/study.py CONFIG [CONFIG ...] --seeds 0 1 2
        [--work-dir work_dirs/study] [--gpus N] [--checkpoint best|last]
        [--cfg-options k=v ...]

Each (config, seed) is trained with ``tools/train.py`` (``randomness.seed``
set, a work dir of its own) and tested with ``tools/test.py``; runs whose
metrics file already exists are not run again, so an interrupted study
picks up where it stopped. With ``--gpus N`` up to N runs go at once, each
on one GPU (``CUDA_VISIBLE_DEVICES``); otherwise one after another.

Prints one table per config (the paper's layout: one row per subset, NME,
FR and AUC as mean ± std over the seeds) and writes ``study.csv`` (one line
per config, subset and metric, with mean, std and the per-seed values) and
``study.json`` beside it.
"""

import argparse
import csv
import json
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

from mmaniso.utils.train_test_runner import METRICS_FILE, train_then_test


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Multi-seed study of one or more configs'
    )
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/study')
    parser.add_argument(
        '--gpus',
        type=int,
        default=0,
        help='run up to this many trainings at once, one GPU each; 0 runs '
        'them one after another on the default device',
    )
    parser.add_argument(
        '--checkpoint',
        choices=['best', 'last'],
        default='last',
        help="test the last checkpoint or the 'best_*' one saved by "
        'CheckpointHook(save_best=...)',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='passed to both tools/train.py and tools/test.py',
    )
    return parser.parse_args(argv)


def run_dir(work_dir: str, config: str, seed: int) -> str:
    name = osp.splitext(osp.basename(config))[0]
    return osp.join(work_dir, name, f'seed{seed}')


def run_one(config: str, seed: int, args, gpu: Optional[int]) -> dict:
    folder = run_dir(args.work_dir, config, seed)
    metrics_file = osp.join(folder, METRICS_FILE)
    if osp.isfile(metrics_file):
        print(
            f'[study] {config} seed {seed}: done before, reusing '
            f'{metrics_file}',
            flush=True,
        )
        with open(metrics_file) as f:
            return json.load(f)
    log_path = osp.join(folder, 'study_run.log')
    print(
        f'[study] {config} seed {seed}: training (log {log_path})',
        flush=True,
    )
    # An interrupted run left checkpoints but no metrics: the runner trains
    # it again, its old checkpoints moved aside rather than mixed in.
    result = train_then_test(
        config,
        folder,
        seed=seed,
        cfg_options=args.cfg_options,
        checkpoint=args.checkpoint,
        env=None if gpu is None else {'CUDA_VISIBLE_DEVICES': str(gpu)},
        log_file=log_path,
    )
    print(
        f'[study] {config} seed {seed}: finished in {result.seconds:.0f} s',
        flush=True,
    )
    return result.metrics


def collect(args) -> Dict[str, List[dict]]:
    jobs = [(c, s) for c in args.configs for s in args.seeds]
    results: Dict[str, List[dict]] = {c: [] for c in args.configs}
    if args.gpus > 0:
        with ThreadPoolExecutor(max_workers=args.gpus) as pool:
            futures = [
                pool.submit(run_one, c, s, args, i % args.gpus)
                for i, (c, s) in enumerate(jobs)
            ]
            for (config, _), future in zip(jobs, futures):
                results[config].append(future.result())
    else:
        for config, seed in jobs:
            results[config].append(run_one(config, seed, args, None))
    return results


def write_outputs(
    results: Dict[str, List[dict]], seeds: List[int], work_dir: str
) -> str:
    from mmaniso.evaluation.table import format_face_table, mean_std

    os.makedirs(work_dir, exist_ok=True)
    csv_path = osp.join(work_dir, 'study.csv')
    summary = {}
    with open(csv_path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(
            ['config', 'key', 'mean', 'std', 'n'] + [f'seed{s}' for s in seeds]
        )
        for config, runs in results.items():
            means, stds = mean_std(runs)
            summary[config] = dict(mean=means, std=stds, runs=runs)
            for key in means:
                writer.writerow(
                    [
                        config,
                        key,
                        f'{means[key]:.6g}',
                        f'{stds[key]:.6g}',
                        sum(key in r for r in runs),
                    ]
                    + [f'{r[key]:.6g}' if key in r else '' for r in runs]
                )
            print()
            print(
                format_face_table(
                    means,
                    title=f'{config}: mean ± std over seeds '
                    f'{", ".join(map(str, seeds))}',
                    stds=stds,
                )
            )
    with open(osp.join(work_dir, 'study.json'), 'w') as f:
        json.dump(dict(seeds=seeds, configs=summary), f, indent=1)
    print(f'\n[study] wrote {csv_path} and study.json')
    return csv_path


def main(argv=None):
    args = parse_args(argv)
    for config in args.configs:
        if not osp.isfile(config):
            raise SystemExit(f'config file not found: {config}')
    results = collect(args)
    write_outputs(results, args.seeds, args.work_dir)
    return results


if __name__ == '__main__':
    main()
