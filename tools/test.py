"""Test a checkpoint and print its metrics, with mmaniso registered.

Mirrors MMPose's ``tools/test.py`` flags::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--show-dir DIR] [--show] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}] [--metrics-out FILE.json]
        [--overwrite]

With mmaniso's ``FaceLandmarkMetric`` as the test evaluator, one command
evaluates every subset of the test file (WFLW's six attributes, 300W's
common/challenging, AFLW's frontal) and prints them as one table.

Only one run at a time uses a work dir (``--work-dir`` or the config's): a
second training or test there is refused, naming the process that holds
it. ``--metrics-out`` is written whole or not at all (a temporary file,
renamed). Nothing is overwritten silently: an existing ``--out`` or
``--metrics-out`` file, or an existing output file of a
``FaceLandmarkMetric``'s ``outfile_prefix``, stops the run before the
model is built unless ``--overwrite`` is given. The checkpoint may be a
local file or anything MMEngine loads by ``scheme://`` (https://, s3://,
open-mmlab://, ...).
"""

import argparse
import os.path as osp

from mmengine.config import DictAction


def parse_args(argv=None):
    # Same flags as tools/train.py's parser (and export_onnx's, plot_ced's):
    # each tool keeps MMPose's own command line and stands alone.
    parser = argparse.ArgumentParser(description='Test a pose model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint', help='checkpoint file, or a URL (scheme://...)'
    )
    parser.add_argument(
        '--work-dir', help='the directory to save evaluation results'
    )
    parser.add_argument(
        '--out', help='dump the predictions to this pickle file'
    )
    parser.add_argument(
        '--show-dir',
        help='draw predictions on the images and save them here, relative '
        'to the timestamped log folder of the work dir',
    )
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window'
    )
    parser.add_argument(
        '--interval', type=int, default=1, help='visualise every N images'
    )
    parser.add_argument(
        '--wait-time',
        type=float,
        default=1,
        help='seconds each shown image stays up',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs',
    )
    # Same flag as tools/train.py's: each tool keeps MMPose's own flags.
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    parser.add_argument(
        '--metrics-out',
        help='also write the metrics as JSON to this file (mmaniso; '
        'tools/misc/study.py collects runs through it)',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace existing --out, --metrics-out and FaceLandmarkMetric '
        'outfile_prefix files (refused otherwise)',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int)
    return parser.parse_args(argv)


def check_outputs(args):
    """Refuses existing ``--out``/``--metrics-out`` files up front, before
    the config is even read, unless ``--overwrite``."""
    from mmaniso.utils.launch import has_url_scheme, refuse_existing_files
    from mmaniso.utils.output_paths import refuse_writing_inputs

    outputs = [('--out', args.out), ('--metrics-out', args.metrics_out)]
    checkpoint = None if has_url_scheme(args.checkpoint) else args.checkpoint
    refuse_writing_inputs(
        outputs,
        [('the config', args.config), ('the checkpoint', checkpoint)],
        fix='name another --out / --metrics-out file',
    )
    refuse_existing_files(outputs, args.overwrite)


def _face_metric_cfgs(evaluator):
    """The FaceLandmarkMetric configs of an evaluator config: a metric, a
    list of them, or an ``Evaluator`` dict with ``metrics``."""
    if isinstance(evaluator, (list, tuple)):
        for item in evaluator:
            yield from _face_metric_cfgs(item)
    elif isinstance(evaluator, dict):
        if 'metrics' in evaluator:
            yield from _face_metric_cfgs(evaluator['metrics'])
            return
        kind = evaluator.get('type')
        name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
        if name.rsplit('.', 1)[-1] == 'FaceLandmarkMetric':
            yield evaluator


def _refuse_writing_test_annotations(cfg, args):
    """``--out``/``--metrics-out`` may not be the test annotation file."""
    from mmaniso.utils.output_paths import refuse_writing_inputs

    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    ann_file = dataset.get('ann_file')
    if not isinstance(ann_file, str) or not ann_file:
        return
    root = dataset.get('data_root') or ''
    refuse_writing_inputs(
        [('--out', args.out), ('--metrics-out', args.metrics_out)],
        [('the test annotation file', osp.join(root, ann_file))],
        fix='name another --out / --metrics-out file',
    )


def merge_args(cfg, args):
    """Applies the command-line switches to the config."""
    from mmaniso.utils.launch import has_url_scheme, refuse_existing_files

    checkpoint = args.checkpoint
    # A URL or another MMEngine scheme is the loader's business.
    if not has_url_scheme(checkpoint) and not osp.isfile(checkpoint):
        raise SystemExit(f'checkpoint not found: {checkpoint}')
    cfg.load_from = checkpoint
    _refuse_writing_test_annotations(cfg, args)
    overwrite = getattr(args, 'overwrite', False)
    for metric in _face_metric_cfgs(cfg.get('test_evaluator')):
        if overwrite:
            metric['overwrite'] = True
            continue
        prefix = metric.get('outfile_prefix')
        if prefix and metric.get('save_outputs', True):
            if metric.get('overwrite', False):
                continue
            # The metric refuses them too, but only once the model is
            # built; say it now.
            from mmaniso.evaluation import FaceLandmarkMetric

            option = 'the FaceLandmarkMetric output file'
            refuse_existing_files(
                [(option, f) for f in FaceLandmarkMetric.output_files(prefix)],
                overwrite=False,
            )
    if args.show or args.show_dir:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise SystemExit(
                '--show/--show-dir need default_hooks.visualization '
                "(MMPose's PoseVisualizationHook) in the config"
            )
        vis.enable = True
        vis.show = args.show
        vis.interval = args.interval
        vis.wait_time = args.wait_time
        if args.show_dir:
            vis.out_dir = args.show_dir
        from mmaniso.utils.launch import drawable_visualizer

        switched = drawable_visualizer(cfg)
        if switched:
            print(switched, flush=True)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'--out must name a .pkl file, got {args.out}')
        evaluators = cfg.test_evaluator
        if not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        cfg.test_evaluator = list(evaluators) + [
            dict(type='DumpResults', out_file_path=args.out)
        ]
    return cfg


def main(argv=None):
    args = parse_args(argv)
    check_outputs(args)
    from mmaniso.datasets.checks import DataCheckError
    from mmaniso.utils.launch import (
        lock_work_dir,
        set_local_rank,
        setup_run_config,
    )

    set_local_rank(args.local_rank)
    try:
        cfg = setup_run_config(
            args.config,
            args.cfg_options,
            args.work_dir,
            args.launcher,
            ('test',),
        )
    except DataCheckError as e:
        raise SystemExit(f'{args.config}: {e}') from None
    cfg = merge_args(cfg, args)
    lock_work_dir(cfg.work_dir, cfg.get('launcher', args.launcher))

    from mmengine.runner import Runner

    import mmaniso  # noqa: F401  (registers modules and checkpoint types)

    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    report(metrics, args.config, args.metrics_out)
    return metrics


def report(metrics: dict, config: str, metrics_out=None) -> None:
    """Prints the paper-style table on rank 0 and writes --metrics-out."""
    from mmengine.dist import is_main_process

    from mmaniso.evaluation.table import format_face_table

    if not is_main_process():
        return
    table = format_face_table(
        metrics, title=f'Face alignment results of {config}'
    )
    if table:
        print(table, flush=True)
    if metrics_out:
        from mmaniso.utils.atomic_files import atomic_write_json

        # Whole or not at all: a reader never finds half a file.
        atomic_write_json(
            metrics_out, {k: float(v) for k, v in metrics.items()}
        )


if __name__ == '__main__':
    main()
