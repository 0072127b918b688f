"""Run several seeds of one or more configs and tabulate mean ± std.

    python tools/misc/study.py CONFIG [CONFIG ...] --seeds 0 1 2
        [--work-dir work_dirs/study] [--gpus N | --jobs N]
        [--checkpoint best|last] [--cfg-options k=v ...]
    python tools/misc/study.py --table a|b|c|d [--seeds ...] [--jobs N]
        [--work-dir work_dirs/study_tables] [--plot-dir docs/images]
    python tools/misc/study.py --table e|f|g|h|evidence [--jobs N]
        [--seeds ...] [--work-dir work_dirs/evidence]
        [--records results/synthface_evidence] [--report]

``--table e|f|g|h`` runs one table of the second round of evidence
(:mod:`mmaniso.study.evidence`: exact twins, 8 seeds, four noise models,
a memorisation regime) on its own freshly generated data;
``--table evidence`` runs all four seed by seed, so that a study cut off
early has whole seeds of every table. Each finished run's small files are
copied to ``--records`` as it lands; ``--report`` only renders the tables
and comparisons from the runs found (in ``--work-dir``).

``--table`` runs one table of the SynthFace study (docs/study.md;
:mod:`mmaniso.study.tables` says which runs each needs): it writes
the SynthFace data it needs (validation split, clean copies, the noise
sweep's annotations) when missing, trains and tests what is not done yet
(runs are shared between tables), and writes ``table_<x>.md`` in the work
dir and ``study_<x>.png`` in the plot dir. Table d first chooses table a's
best anisotropic variant on the validation split.

Each (config, seed) is trained with ``tools/train.py`` (``randomness.seed``
set, a work dir of its own) and tested with ``tools/test.py``; the run's
record is its checked ``test_metrics.json`` and ``run_record.json``, the
fingerprint of what it was made with (config text, seed, options, tested
checkpoint, noise model). A run whose record has the fingerprint asked for
is not run again, so an interrupted study picks up where it stopped; a
record made with other settings, or cut off, is moved aside into the run's
``previous_<timestamp>/`` and the run trained again, and the study says
so. Records written before records carried a fingerprint are reused for
``--table`` runs given no ``--cfg-options`` (the study gave those runs
their options itself), never otherwise; ``--report`` renders them, and
refuses a record whose fingerprint names other settings. With ``--gpus N``
up to N runs go at once, each on one GPU (``CUDA_VISIBLE_DEVICES``);
otherwise one after another. A SIGTERM or Ctrl-C stops the trainings it
runs as well, and the study exits non-zero.

Prints one table per config (the paper's layout: one row per subset, NME,
FR and AUC as mean ± std over the seeds) and writes ``study.csv`` (one line
per config, subset and metric, with mean, std and the per-seed values) and
``study.json`` beside it.
"""

import argparse
import csv
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Mapping, Optional

from mmaniso.study.runner import (
    METRICS_FILE,
    ProgressLine,
    RecordError,
    RunInterrupted,
    find_record,
    forward_signals,
    move_record_aside,
    run_fingerprint,
    thread_env,
    train_then_test,
)
from mmaniso.utils.atomic_files import (
    atomic_write_json,
    atomic_write_text,
    replacing,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Multi-seed study of one or more configs'
    )
    parser.add_argument('configs', nargs='*', help='config files')
    parser.add_argument(
        '--table',
        choices=['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'evidence',
                 'confirmation'],
        help='one table of the SynthFace study instead of CONFIGs '
        '(confirmation: the pre-registered third round, '
        'docs/preregistration.md)',
    )
    parser.add_argument(
        '--block',
        choices=['primary', 'secondary'],
        help='with --table confirmation: train only the primary or only the '
        'secondary rows (default both, primary first)',
    )
    parser.add_argument(
        '--records',
        help="with --table e-h|evidence|confirmation: copy each finished "
        "run's small files here (default results/synthface_evidence, "
        'results/synthface_confirmation)',
    )
    parser.add_argument(
        '--report',
        action='store_true',
        help='with --table e-h|evidence|confirmation: only render the '
        'tables from the '
        'runs found in --work-dir, train nothing',
    )
    parser.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        help='default 0 1 2 (table d: 0 1)',
    )
    parser.add_argument(
        '--work-dir',
        help='default work_dirs/study, with --table work_dirs/study_tables',
    )
    parser.add_argument(
        '--plot-dir',
        default='docs/images',
        help='where --table writes study_<table>.png',
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='CPU runs at once, the cores split between them (two at once '
        'train about 1.7x as fast in total as one on 2 cores)',
    )
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
    args = parser.parse_args(argv)
    if bool(args.configs) == bool(args.table):
        parser.error('give either CONFIG files or --table, not both')
    if args.gpus and args.jobs > 1:
        parser.error('--jobs splits the CPU; with --gpus N, N runs go at once')
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    evidence = args.table in EVIDENCE_TABLES
    if args.report and not (evidence or args.table == 'confirmation'):
        parser.error(
            '--report renders the tables e-h (--table evidence) or the '
            'confirmation round'
        )
    if args.block and args.table != 'confirmation':
        parser.error('--block goes with --table confirmation')
    if args.table == 'confirmation':
        if args.seeds or args.cfg_options:
            parser.error(
                'the confirmation round runs its pre-registered seeds and '
                'options only (docs/preregistration.md): drop --seeds and '
                '--cfg-options'
            )
        args.work_dir = args.work_dir or 'work_dirs/confirmation'
        args.records = args.records or 'results/synthface_confirmation'
        return args
    if evidence:
        args.work_dir = args.work_dir or 'work_dirs/evidence'
        args.records = args.records or 'results/synthface_evidence'
        return args
    if args.seeds is None:
        args.seeds = [0, 1] if args.table == 'd' else [0, 1, 2]
    if args.work_dir is None:
        args.work_dir = (
            'work_dirs/study_tables' if args.table else 'work_dirs/study'
        )
    return args


EVIDENCE_TABLES = ('e', 'f', 'g', 'h', 'evidence')


def run_dir(work_dir: str, config: str, seed: int) -> str:
    name = osp.splitext(osp.basename(config))[0]
    return osp.join(work_dir, name, f'seed{seed}')


def _env(args, gpu: Optional[int]) -> Optional[Dict[str, str]]:
    if gpu is not None:
        return {'CUDA_VISIBLE_DEVICES': str(gpu)}
    if args.jobs > 1:
        # Each run gets its share of the cores, else the runs' thread pools
        # fight over them.
        return thread_env(args.jobs)
    return None


def run_one(
    config: str,
    seed: int,
    args,
    gpu: Optional[int],
    folder: Optional[str] = None,
    cfg_options: Optional[List[str]] = None,
    checkpoint: Optional[str] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> dict:
    """Trains and tests one (config, seed) unless its folder holds a record
    made with the same settings; returns its test metrics."""
    folder = folder or run_dir(args.work_dir, config, seed)
    cfg_options = args.cfg_options if cfg_options is None else cfg_options
    checkpoint = checkpoint or args.checkpoint
    metrics_file = osp.join(folder, METRICS_FILE)
    found = find_record(
        folder,
        run_fingerprint(
            config,
            seed=seed,
            cfg_options=cfg_options,
            checkpoint=checkpoint,
            extra=extra,
        ),
        accept_legacy=_legacy_ok(args),
    )
    if found.metrics is not None:
        note = (
            ' (a record without fingerprint, made before records carried '
            "one: taken as made with this row's settings)"
            if found.legacy
            else ''
        )
        print(
            f'[study] {config} seed {seed}: done before, reusing '
            f'{metrics_file}{note}',
            flush=True,
        )
        return found.metrics
    if found.problem:
        aside = move_record_aside(folder)
        print(
            f'[study] {config} seed {seed}: not reusing it: '
            f'{found.problem}. Moved it into {aside}; training it again',
            flush=True,
        )
    log_path = osp.join(folder, 'study_run.log')
    print(
        f'[study] {config} seed {seed}: training (log {log_path})',
        flush=True,
    )
    # An interrupted run left checkpoints but no metrics: the runner trains
    # it again, its old checkpoints moved aside rather than mixed in.
    # One progress line every 5 epochs; never rewritten in place, since
    # parallel runs share the terminal.
    label = f'[study] {osp.basename(osp.dirname(folder))} seed {seed}'
    result = train_then_test(
        config,
        folder,
        seed=seed,
        cfg_options=cfg_options,
        checkpoint=checkpoint,
        env=_env(args, gpu),
        log_file=log_path,
        progress=ProgressLine(label, tty=False),
        record_extra=extra,
    )
    print(
        f'[study] {config} seed {seed}: finished in {result.seconds:.0f} s',
        flush=True,
    )
    return result.metrics


def _legacy_ok(args) -> bool:
    """Whether a record without fingerprint may stand for a run: only for
    the table rows run with the study's own options (no --cfg-options, the
    default --checkpoint), which is how every such record was made."""
    if not args.table or args.cfg_options or args.table == 'confirmation':
        return False
    return args.table in EVIDENCE_TABLES or args.checkpoint == 'last'


def _noise_extra(row) -> Optional[Dict[str, Any]]:
    """The noise model of a row's training annotations, for its
    fingerprint (the evidence rows; None for the others)."""
    if row.noise is None:
        return None
    from mmaniso.synthface.noise import describe_noise

    return {'noise': describe_noise(row.noise)}


def check_records(args, jobs, protocol) -> None:
    """Refuses to report a record whose fingerprint names other settings
    than the row's (legacy records without one are reported).

    Raises:
        RecordError: Naming the record, what differs and the fix.
    """
    from mmaniso.study import tables as st

    for row, seed in jobs:
        folder = st.run_dir(args.work_dir, row, seed)
        options = list(protocol) + list(row.options) + args.cfg_options
        expected = run_fingerprint(
            row.config,
            seed=seed,
            cfg_options=options,
            # The evidence rows choose theirs; tables a-d test --checkpoint.
            checkpoint=row.checkpoint if row.noise else args.checkpoint,
            extra=_noise_extra(row),
        )
        found = find_record(folder, expected, accept_legacy=True)
        if found.problem:
            raise RecordError(
                f'{row.label}, seed {seed}: {found.problem}. Move that run '
                'aside (or delete it) and run the same command without '
                '--report to train it again, or give the --cfg-options it '
                'was made with'
            )


def collect(args) -> Dict[str, List[dict]]:
    jobs = [(c, s) for c in args.configs for s in args.seeds]
    results: Dict[str, List[dict]] = {c: [] for c in args.configs}
    at_once = args.gpus or args.jobs
    if at_once > 1:
        with ThreadPoolExecutor(max_workers=at_once) as pool:
            futures = [
                pool.submit(
                    run_one, c, s, args, i % args.gpus if args.gpus else None
                )
                for i, (c, s) in enumerate(jobs)
            ]
            for (config, _), future in zip(jobs, futures):
                results[config].append(future.result())
    else:
        for config, seed in jobs:
            results[config].append(run_one(config, seed, args, None))
    return results


def run_rows(args, rows) -> None:
    """Trains and tests every (row, seed) not done yet, seed by seed, so
    that an interrupted table has whole seeds."""
    from mmaniso.study import tables as st

    jobs = [(row, seed) for seed in args.seeds for row in rows]
    at_once = args.gpus or args.jobs

    def one(i, row, seed):
        options = list(st.PROTOCOL) + list(row.options) + args.cfg_options
        gpu = i % args.gpus if args.gpus else None
        folder = st.run_dir(args.work_dir, row, seed)
        return run_one(row.config, seed, args, gpu, folder, options)

    if at_once > 1:
        with ThreadPoolExecutor(max_workers=at_once) as pool:
            futures = [
                pool.submit(one, i, row, seed)
                for i, (row, seed) in enumerate(jobs)
            ]
            for future in futures:
                future.result()
    else:
        for i, (row, seed) in enumerate(jobs):
            one(i, row, seed)


def train_and_record(args, jobs, protocol, extra_options, every_job):
    """Trains and tests ``jobs`` (row, seed) not done yet, ``args.jobs``
    (or one per GPU) at a time, copying each finished run's record to
    ``args.records``; then copies the record of every finished run of
    ``every_job`` (also of runs a cut-off study finished: copying is
    idempotent). Shared by the evidence and the confirmation rounds."""
    from mmaniso.study import evidence as ev
    from mmaniso.study import tables as st

    def one(i, row, seed):
        options = list(protocol) + list(row.options) + list(extra_options)
        gpu = i % args.gpus if args.gpus else None
        folder = st.run_dir(args.work_dir, row, seed)
        metrics = run_one(
            row.config, seed, args, gpu, folder, options,
            row.checkpoint, _noise_extra(row),
        )  # fmt: skip
        ev.copy_record(folder, args.records, row, seed)
        return metrics

    if jobs:
        at_once = args.gpus or args.jobs
        with ThreadPoolExecutor(max_workers=max(at_once, 1)) as pool:
            futures = [
                pool.submit(one, i, row, seed)
                for i, (row, seed) in enumerate(jobs)
            ]
            for future in futures:
                future.result()
    if osp.abspath(args.work_dir) != osp.abspath(args.records):
        for row, seed in every_job:
            folder = st.run_dir(args.work_dir, row, seed)
            if osp.isfile(osp.join(folder, METRICS_FILE)):
                ev.copy_record(folder, args.records, row, seed)


def run_evidence(args) -> str:
    """Tables e-h: trains what is missing (seed by seed), copies each
    finished run's record, then writes ``evidence.md`` in the work dir."""
    from mmaniso.study import evidence as ev

    tables = ev.TABLES if args.table == 'evidence' else (args.table,)
    if not args.report:
        ev.prepare_data()
    jobs = [
        (row, seed)
        for row, seed in ev.all_jobs(args.seeds)
        if any(row in ev.table_rows(t) for t in tables)
    ]
    train_and_record(
        args, [] if args.report else jobs, ev.PROTOCOL, args.cfg_options,
        ev.all_jobs(),
    )  # fmt: skip
    check_records(
        args,
        [
            (row, seed)
            for row, seed in ev.all_jobs()
            if any(row in ev.table_rows(t) for t in tables)
        ],
        ev.PROTOCOL,
    )
    text = ev.report(args.work_dir, tables)
    out = osp.join(args.work_dir, 'evidence.md')
    atomic_write_text(out, text + '\n')
    print(text)
    plots = [
        ev.plot_comparisons(
            args.work_dir, osp.join(args.plot_dir, 'study_evidence.png')
        ),
        ev.plot_memorisation(
            args.work_dir, osp.join(args.plot_dir, 'study_memorisation.png')
        )
        if 'h' in tables
        else None,
    ]
    written = [out] + [p for p in plots if p]
    print(f'\n[study] wrote {", ".join(written)}')
    return out


def run_confirmation(args) -> str:
    """The pre-registered confirmation round: trains what is missing in
    the plan's order, copies each finished run's record, then writes
    ``confirmation.md`` in the work dir."""
    from mmaniso.study import confirmation as cf

    if not args.report:
        cf.prepare_data()
    # The pre-registered options only: no --cfg-options (parse_args
    # refuses them for this table).
    train_and_record(
        args, [] if args.report else cf.jobs(args.block), cf.PROTOCOL, [],
        cf.jobs(),
    )  # fmt: skip
    check_records(args, cf.jobs(), cf.PROTOCOL)
    text = cf.report(args.work_dir)
    out = osp.join(args.work_dir, 'confirmation.md')
    atomic_write_text(out, text + '\n')
    plot = cf.plot(
        args.work_dir, osp.join(args.plot_dir, 'study_confirmation.png')
    )
    print(text)
    print(f'\n[study] wrote {out}' + (f' and {plot}' if plot else ''))
    return out


def run_table(args) -> str:
    from mmaniso.study import tables as st

    if args.table in EVIDENCE_TABLES:
        return run_evidence(args)
    if args.table == 'confirmation':
        return run_confirmation(args)

    table = args.table
    sigma_ts = st.SWEEP_SIGMA_T if table == 'b' else ()
    st.prepare_data(sigma_ts=sigma_ts)
    if table == 'd':
        best = st.choose_best(
            args.work_dir, st.table_rows('a'), st.DEFAULT_SEEDS['a']
        )
        print(
            f'[study] table d: best anisotropic variant on the validation '
            f'split: {best.label} ({best.config})',
            flush=True,
        )
        rows = st.sensitivity_rows(best)
    else:
        rows = st.table_rows(table)
    run_rows(args, rows)
    check_records(
        args, [(row, seed) for seed in args.seeds for row in rows],
        st.PROTOCOL,
    )  # fmt: skip
    plot = osp.join(args.plot_dir, f'study_{table}.png')
    if table == 'c':
        text = st.markdown_convergence(args.work_dir, rows, args.seeds)
        st.plot_convergence(args.work_dir, rows, args.seeds, plot)
    else:
        text = st.markdown_results(args.work_dir, rows, args.seeds)
        if table == 'b':
            st.plot_sweep(args.work_dir, rows, args.seeds, plot)
        else:
            st.plot_results(args.work_dir, rows, args.seeds, plot)
    out = osp.join(args.work_dir, f'table_{table}.md')
    atomic_write_text(out, text + '\n')
    print(text)
    print(f'\n[study] wrote {out} and {plot}')
    return out


def write_outputs(
    results: Dict[str, List[dict]], seeds: List[int], work_dir: str
) -> str:
    from mmaniso.evaluation.table import format_face_table, mean_std

    csv_path = osp.join(work_dir, 'study.csv')
    summary = {}
    with replacing(csv_path) as tmp, open(tmp, 'w', newline='') as f:
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
    atomic_write_json(
        osp.join(work_dir, 'study.json'), dict(seeds=seeds, configs=summary)
    )
    print(f'\n[study] wrote {csv_path} and study.json')
    return csv_path


def main(argv=None):
    args = parse_args(argv)
    # A SIGTERM or Ctrl-C reaches the trainings too (own process groups).
    forward_signals()
    try:
        if args.table:
            return run_table(args)
        for config in args.configs:
            if not osp.isfile(config):
                raise SystemExit(f'config file not found: {config}')
        results = collect(args)
        write_outputs(results, args.seeds, args.work_dir)
        return results
    except RecordError as e:
        raise SystemExit(f'[study] {e}') from None
    except RunInterrupted as e:
        print(f'[study] {e}', file=sys.stderr, flush=True)
        sys.exit(128 + e.signum)


if __name__ == '__main__':
    main()
