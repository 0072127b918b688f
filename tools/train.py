"""Train a pose model with mmaniso's components registered.

Mirrors MMPose's ``tools/train.py`` flags::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--no-validate] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}] [--overwrite]
        [--device-augment [array|decode]]

A fresh run (no ``--resume``) in a work dir that already holds checkpoints
stops before anything is built, since the new checkpoints would mix with
the old ones; ``--overwrite`` (mmaniso) moves the old ones into
``<work_dir>/previous_<timestamp>/`` first. ``--resume`` with nothing to
resume (no or an empty ``last_checkpoint``, a missing file) stops too.

Every config, MMPose's own included, trains with mmaniso's guards
(``mmaniso.utils.launch.add_training_guards``): the run stops at the first
NaN or infinite loss naming the iteration and samples, never saves a
checkpoint with non-finite tensors, writes checkpoints under a temporary
name and renames them when complete, and refuses to resume on changed
training annotations.

``--device-augment`` (mmaniso) moves a top-down regression config's
augmentation onto the model's device: the CPU only reads fixed-size crops
of the face-crop cache (its memory-mapped array, or ``decode`` the crop
files) and the data preprocessor flips, shifts, scales and rotates the
batch with the distributions of the config's own pipeline
(mmaniso/utils/device_feed.py; docs/benchmarks.md, "Device feed").
"""

import argparse

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a pose model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint; with no value, from the '
        'latest checkpoint in the work dir',
    )
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision training (needs a CUDA device)',
    )
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training',
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs such as '
        'train_cfg.max_epochs=2',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='train afresh in a work dir that holds checkpoints of an '
        'earlier run, moving them into <work_dir>/previous_<timestamp>/ '
        '(never deleted); without it such a work dir is refused',
    )
    parser.add_argument(
        '--device-augment',
        nargs='?',
        const='array',
        choices=['array', 'decode'],
        help="augment on the model's device; the CPU reads crops of the "
        'face-crop cache (data_root): from its memory-mapped array '
        '(default; make_crop_cache.py --array) or by decoding the crops',
    )
    # torch.distributed.launch passes --local-rank (older: --local_rank).
    parser.add_argument('--local_rank', '--local-rank', type=int)
    return parser.parse_args(argv)


def merge_args(cfg, args):
    """Applies the command-line switches to the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.amp:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a CUDA device; none is available')
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise SystemExit(
                f'--amp replaces OptimWrapper by AmpOptimWrapper, but the '
                f'config uses {optim_wrapper}'
            )
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in (
            cfg.auto_scale_lr or {}
        ):
            raise SystemExit(
                '--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N)'
                ' in the config'
            )
        cfg.auto_scale_lr.enable = True
    if args.device_augment:
        from mmaniso.utils.device_feed import device_augment_config

        try:
            device_augment_config(cfg, args.device_augment)
        except ValueError as e:
            raise SystemExit(f'--device-augment: {e}') from None
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    from mmaniso.datasets.checks import DataCheckError
    from mmaniso.utils.launch import (
        add_training_guards,
        check_resume,
        guard_work_dir,
        lock_work_dir,
        set_local_rank,
        setup_run_config,
    )

    set_local_rank(args.local_rank)
    splits = ('train',) if args.no_validate else ('train', 'val')
    try:
        cfg = setup_run_config(
            args.config, args.cfg_options, args.work_dir, args.launcher, splits
        )
    except DataCheckError as e:
        raise SystemExit(f'{args.config}: {e}') from None
    cfg = merge_args(cfg, args)
    # One run at a time in a work dir, before anything is moved there.
    lock_work_dir(cfg.work_dir, cfg.get('launcher', args.launcher))
    guard_work_dir(cfg, args.overwrite, args.launcher)
    check_resume(cfg)
    add_training_guards(cfg)

    from mmengine.runner import Runner

    import mmaniso  # noqa: F401  (registers modules and checkpoint types)
    from mmaniso.engine.hooks import (
        ChangedAnnotationsError,
        NonFiniteLossError,
    )

    runner = Runner.from_cfg(cfg)
    try:
        runner.train()
    except (NonFiniteLossError, ChangedAnnotationsError) as e:
        raise SystemExit(f'{args.config}: {e}') from None


if __name__ == '__main__':
    main()
