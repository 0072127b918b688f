"""Test a checkpoint and print its metrics, with mmaniso registered.

Mirrors MMPose's ``tools/test.py`` flags::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--show-dir DIR] [--show] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a pose model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
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
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int)
    return parser.parse_args(argv)


def merge_args(cfg, args):
    """Applies the command-line switches to the config."""
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
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
    from mmaniso.datasets.checks import DataCheckError
    from mmaniso.utils.launch import set_local_rank, setup_run_config

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

    from mmengine.runner import Runner

    import mmaniso  # noqa: F401  (registers modules and checkpoint types)

    runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
