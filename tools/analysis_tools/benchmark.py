"""All of mmaniso's speed figures in one run, each a ratio to a baseline.

    python tools/analysis_tools/benchmark.py
        [--only loss sampler train pipeline crop-cache feed]
        [--device cpu|cuda] [--amp] [--channels-last] [--iters 20]

- loss: AnisotropicLoss vs MMPose's SoftWingLoss, forward + backward
  (tools/analysis_tools/benchmark_loss.py);
- sampler: PoseBalancedSampler and mean-shape set-up at 10k and 100k shapes
  (tools/analysis_tools/benchmark_sampler.py);
- train: training iterations per second of an aniso config vs its SoftWing
  twin with the same backbone, interleaved on the same batch (target >= 0.97);
- pipeline: MMPose's training pipeline, images per second in one worker;
- crop-cache: that pipeline on WFLW-sized JPEGs vs on their face-crop cache
  (tools/analysis_tools/benchmark_crop_cache.py);
- feed: images/s per CPU worker of that pipeline on photographs and on the
  cache beside the device feed's CPU side (decoding crops, or rows of a
  memory-mapped array), and the device augmentation's time per batch of 64
  (tools/analysis_tools/benchmark_feed.py; target >= 10x the photographs).
"""

import argparse
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

# The configs are named relative to the repository.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))

PAIRS = {
    'fixture': (
        'configs/fixture/res18_wflw_fixture_aniso.py',
        'configs/fixture/res18_wflw_fixture.py',
    ),
    'paper': (
        'configs/aniso_res50_wflw.py',
        'configs/baselines/res50_softwing_wflw.py',
    ),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--only',
        nargs='+',
        choices=['loss', 'sampler', 'train', 'pipeline', 'crop-cache', 'feed'],
        default=['loss', 'sampler', 'train', 'pipeline', 'crop-cache', 'feed'],
    )
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--pair',
        choices=sorted(PAIRS),
        default='fixture',
        help='configs timed by the train benchmark',
    )
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument(
        '--iters',
        type=int,
        default=20,
        help='timed iterations per config and round',
    )
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='train benchmark under autocast (CUDA)',
    )
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument(
        '--images',
        type=int,
        default=64,
        help='images timed by the pipeline benchmark',
    )
    return parser.parse_args(argv)


def _run_script(name, argv):
    """Runs a sibling benchmark tool; its report goes to this stdout."""
    sys.stdout.flush()  # the heading printed before comes first
    cmd = [sys.executable, osp.join(HERE, f'{name}.py'), *argv]
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise SystemExit(
            f'{name}.py failed with exit code {code} (its output is above): '
            + ' '.join(cmd)
        )


def _fixture_cfg(config, root, batch_size):
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.model.backbone.init_cfg = None
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = root
        loader.batch_size = batch_size
        loader.num_workers = 0
        loader.persistent_workers = False
    if 'ann_file' in cfg.val_evaluator:
        cfg.val_evaluator.ann_file = None
    return cfg


def _data(root, num):
    from mmaniso.testing import write_face_fixture

    write_face_fixture(
        root, dict(train=num, test=4), num_keypoints=98, image_size=128
    )


def bench_train(args, root):
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmpose.registry import MODELS

    import mmaniso  # noqa: F401

    init_default_scope('mmpose')
    aniso_cfg, base_cfg = [
        _fixture_cfg(c, root, args.batch_size) for c in PAIRS[args.pair]
    ]
    loader = Runner.build_dataloader(base_cfg.train_dataloader)
    batch = next(iter(loader))
    models = {}
    for name, cfg in (('aniso', aniso_cfg), ('softwing', base_cfg)):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).to(args.device).train()
        head = model.head
        if hasattr(head, 'mean_shape'):
            # Normally PoseBalancingHook fills it from the annotations.
            head.mean_shape.copy_(torch.full_like(head.mean_shape, 0.5))
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optim = torch.optim.Adam(model.parameters(), lr=1e-4)
        models[name] = (model, optim, cfg.model.head.loss.type)

    def step(model, optim):
        data = model.data_preprocessor(batch, training=True)
        inputs = data['inputs']
        if args.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(args.device.split(':')[0], enabled=args.amp):
            losses = model(inputs, data['data_samples'], mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        loss.backward()
        optim.step()

    def sync():
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()

    times = {name: [] for name in models}
    for model, optim, _ in models.values():
        for _ in range(3):  # warm-up
            step(model, optim)
    order = list(models)
    for r in range(args.rounds):
        # Alternate who goes first: a drifting machine favours neither.
        for name in order if r % 2 == 0 else order[::-1]:
            model, optim, _ = models[name]
            sync()
            start = time.perf_counter()
            for _ in range(args.iters):
                step(model, optim)
            sync()
            times[name].append((time.perf_counter() - start) / args.iters)
    rate = {k: 1.0 / statistics.median(v) for k, v in times.items()}
    spread = {
        k: (max(v) - min(v)) / statistics.median(v) for k, v in times.items()
    }
    print(
        f'\n== train: iterations/s, batch {args.batch_size}, '
        f'{args.device}, amp={args.amp}, channels_last='
        f'{args.channels_last}, median of {args.rounds} rounds x '
        f'{args.iters} iterations, interleaved'
    )
    for name, (_, _, loss) in models.items():
        print(
            f'{PAIRS[args.pair][name == "softwing"]:<48} ({loss}): '
            f'{rate[name]:.2f} it/s (round spread '
            f'{100 * spread[name]:.0f}%)'
        )
    print(
        f'throughput ratio aniso/softwing: '
        f'{rate["aniso"] / rate["softwing"]:.3f} (target >= 0.97)'
    )
    return rate['aniso'] / rate['softwing']


def bench_pipeline(args, root):
    from mmengine.dataset import pseudo_collate  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS

    import mmaniso  # noqa: F401

    init_default_scope('mmpose')
    cfg = _fixture_cfg(PAIRS['fixture'][1], root, 1)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    for i in range(4):
        dataset[i]
    start = time.perf_counter()
    for i in range(args.images):
        dataset[i % len(dataset)]
    rate = args.images / (time.perf_counter() - start)
    print(
        f'\n== pipeline: {rate:.0f} images/s in one worker (MMPose '
        'LoadImage, GetBBoxCenterScale, RandomFlip, RandomBBoxTransform, '
        'TopdownAffine 64x64, GenerateTarget, PackPoseInputs; 128 px '
        'PNG fixture images)'
    )
    return rate


def main(argv=None):
    args = parse_args(argv)
    if 'loss' in args.only:
        print('== loss')
        _run_script('benchmark_loss', ['--device', args.device])
    if 'sampler' in args.only:
        print('\n== sampler')
        _run_script('benchmark_sampler', [])
    if 'crop-cache' in args.only:
        print('\n== crop-cache')
        _run_script('benchmark_crop_cache', ['--rounds', str(args.rounds)])
    if 'feed' in args.only:
        print('\n== feed')
        _run_script(
            'benchmark_feed',
            ['--rounds', str(args.rounds), '--device', args.device],
        )
    if {'train', 'pipeline'} & set(args.only):
        with tempfile.TemporaryDirectory() as root:
            _data(root, max(args.batch_size, 16))
            if 'train' in args.only:
                bench_train(args, root + '/')
            if 'pipeline' in args.only:
                bench_pipeline(args, root + '/')


if __name__ == '__main__':
    main()
