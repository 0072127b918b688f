"""What one CPU worker feeds: MMPose's top-down pipeline vs the device feed.

    python tools/analysis_tools/benchmark_feed.py [--images 64] [--rounds 3]
        [--batch-size 64] [--long-side 1000] [--face-px 200 400]
        [--max-size 512] [--config configs/aniso_res50_wflw.py]
        [--device cpu] [--aug-rounds 5] [--out-json FILE]

Generates WFLW-like JPEGs (mmaniso/testing/wflw_like.py), writes their
face-crop cache with the config's augmentation margin and packs it into a
memory-mapped array (``make_crop_cache.py --array``). Then, in this one
process with a data-loader worker's thread settings (OpenCV 0 threads,
torch 1), the four ways to make a training batch, interleaved round by
round: MMPose's pipeline of the config on the photographs and on the crop
cache (``pseudo_collate``, MMEngine's default), and the device feed's CPU
side, ``CropFeedDataset`` decoding the cached crops or reading rows of the
array (``default_collate``). Images/s per worker is images over the CPU
time of this process (user + system: what one worker makes on a core of
its own; the ratios use it) and, beside it, over the wall-clock time,
which a busy machine inflates by whatever it gives to others. Then the
device side: the config's ``TopdownBatchAugment`` in
``BatchAugmentDataPreprocessor`` (uint8 -> float, warp to the input size,
normalise) on one batch, ms per batch on ``--device`` (all torch threads;
wall-clock, and on the CPU also CPU time).

The array is read from the page cache (it was just written), as in a
training run whose array fits in memory.
"""

import argparse
import copy
import os.path as osp
import statistics
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PATHS = (
    ('mmpose_photos', 'MMPose pipeline, photographs'),
    ('mmpose_cache', 'MMPose pipeline, crop cache'),
    ('feed_decode', 'device feed CPU side, decode crops'),
    ('feed_array', 'device feed CPU side, memory-mapped array'),
)


def parse_args(argv=None):
    from mmaniso.testing.wflw_like import add_photo_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_photo_arguments(parser, osp.join(REPO, 'configs/aniso_res50_wflw.py'))
    parser.add_argument(
        '--batch-size',
        type=int,
        default=64,
        help='batch collated by the worker and augmented on the device',
    )
    parser.add_argument(
        '--device', default='cpu', help='where the augmentation is timed'
    )
    parser.add_argument('--aug-rounds', type=int, default=5)
    return parser.parse_args(argv)


def _batches(num, size):
    return [list(range(i, min(num, i + size))) for i in range(0, num, size)]


def _clock():
    """(wall-clock, CPU time of this process) in seconds."""
    return time.perf_counter(), time.process_time()


def _time_worker(dataset, collate, batch_size):
    """(wall, CPU) seconds to make and collate every batch."""
    wall, cpu = _clock()
    for idx in _batches(len(dataset), batch_size):
        collate([dataset[i] for i in idx])
    wall_end, cpu_end = _clock()
    return wall_end - wall, cpu_end - cpu


def _time_augment(args, cfg_model, batch, threads):
    """Median ms per batch of the device augmentation."""
    import torch
    from mmpose.registry import MODELS

    torch.set_num_threads(threads)
    device = torch.device(args.device)
    pre = MODELS.build(cfg_model.data_preprocessor).to(device)
    inputs = batch['inputs']
    reps = -(-args.batch_size // inputs.shape[0])
    inputs = inputs.repeat(reps, 1, 1, 1)[: args.batch_size]
    samples = (batch['data_samples'] * reps)[: args.batch_size]
    if args.device.startswith('cuda'):
        inputs = inputs.pin_memory()
    data = dict(inputs=inputs, data_samples=samples)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    walls, cpus = [], []
    for r in range(args.aug_rounds + 1):
        sync()
        wall, cpu = _clock()
        out = pre(data, training=True)
        sync()
        wall_end, cpu_end = _clock()
        if r:  # the first is a warm-up
            walls.append(wall_end - wall)
            cpus.append(cpu_end - cpu)
    return (
        1000 * statistics.median(walls),
        1000 * statistics.median(cpus),
        tuple(out['inputs'].shape),
    )


def main(argv=None):
    args = parse_args(argv)
    import cv2
    import torch
    from mmengine.config import Config
    from mmengine.dataset import default_collate, pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS

    import mmaniso  # noqa: F401
    from mmaniso.datasets import CropFeedDataset
    from mmaniso.datasets.crop_cache import (
        augmentation_margin,
        write_crop_array,
    )
    from mmaniso.testing.wflw_like import (
        TRAIN_ANN,
        dataset_at,
        write_photos_and_crops,
    )
    from mmaniso.utils.device_feed import device_augment_config

    threads = torch.get_num_threads()
    init_default_scope('mmpose')
    full_cfg = Config.fromfile(args.config)
    cfg = full_cfg.train_dataloader.dataset
    margin = augmentation_margin(cfg.pipeline)
    with tempfile.TemporaryDirectory() as tmp:
        full, cache, made_s, cut_s = write_photos_and_crops(tmp, args, margin)
        start = time.perf_counter()
        array = write_crop_array(
            osp.join(cache, TRAIN_ANN),
            osp.join(cache, 'images'),
            progress=False,
        )
        packed = time.perf_counter() - start
        array_mb = osp.getsize(array) / 2**20

        def dataset_cfg(root):
            return dataset_at(cfg, root)

        # As in a training data-loader worker: MMEngine's env_cfg sets
        # OpenCV's threads to 0 (none), PyTorch's worker loop torch's to 1.
        cv2.setNumThreads(0)
        torch.set_num_threads(1)
        datasets = dict(
            mmpose_photos=(DATASETS.build(dataset_cfg(full)), pseudo_collate),
            mmpose_cache=(DATASETS.build(dataset_cfg(cache)), pseudo_collate),
            feed_decode=(
                CropFeedDataset(dataset_cfg(cache), source='decode'),
                default_collate,
            ),
            feed_array=(
                CropFeedDataset(dataset_cfg(cache), source='array'),
                default_collate,
            ),
        )
        for ds, collate in datasets.values():  # warm-up: lazy imports
            collate([ds[i] for i in range(min(4, len(ds)))])
        seconds = {name: [] for name in datasets}
        order = list(datasets)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                ds, collate = datasets[name]
                seconds[name].append(
                    _time_worker(ds, collate, args.batch_size)
                )
        num = args.images
        # images per CPU second (the ratios) and per wall-clock second
        rates = {k: [num / c for _, c in v] for k, v in seconds.items()}
        wall = {k: [num / w for w, _ in v] for k, v in seconds.items()}
        median = {k: statistics.median(v) for k, v in rates.items()}
        wall_median = {k: statistics.median(v) for k, v in wall.items()}
        feed = datasets['feed_array'][0]
        batch = default_collate([feed[i] for i in range(min(num, 64))])
        crop = feed.crop_size
        model_cfg = copy.deepcopy(full_cfg)
        device_augment_config(model_cfg)
        aug_ms, aug_cpu_ms, out_shape = _time_augment(
            args, model_cfg.model, batch, threads
        )
    base = median['mmpose_photos']
    print(
        f'== feed: {num} WFLW-like JPEGs (long side {args.long_side} px, '
        f'faces {args.face_px[0]}-{args.face_px[1]} px, made in {made_s:.1f} '
        f's); crop cache margin {margin:.2f} x box, crops <= '
        f'{args.max_size} px (cut in {cut_s:.1f} s), array {array_mb:.0f} MB '
        f'(packed in {packed:.1f} s, read from the page cache); pipeline of '
        f"{osp.relpath(args.config, REPO)}; one process with a worker's "
        f'thread settings, batches of {args.batch_size} made and collated, '
        f'median of {args.rounds} interleaved rounds'
    )
    print(
        f'{"CPU side, per worker (CPU time)":<42} {"images/s":>9} '
        f'{"ms/img":>7} {"x photos":>9} {"spread":>7} {"wall img/s":>11}'
    )
    for key, label in PATHS:
        spread = (max(rates[key]) - min(rates[key])) / median[key]
        print(
            f'{label:<42} {median[key]:9.1f} {1000 / median[key]:7.2f} '
            f'{median[key] / base:9.2f} {100 * spread:6.0f}% '
            f'{wall_median[key]:11.1f}'
        )
    best = max(('feed_decode', 'feed_array'), key=lambda k: median[k])
    speedup = median[best] / base
    print(
        f'device augmentation (BatchAugmentDataPreprocessor + '
        f'TopdownBatchAugment: uint8 -> float, flip/shift/scale/rotate '
        f'warp, normalise), batch {args.batch_size} of {crop} px crops -> '
        f'{out_shape[-1]}x{out_shape[-2]}, {args.device}, {threads} torch '
        f'threads: {aug_ms:.1f} ms/batch '
        f'({1000 * args.batch_size / aug_ms:.0f} images/s)'
        + (
            ''
            if args.device.startswith('cuda')
            else f', {aug_cpu_ms:.1f} ms of CPU time'
        )
    )
    print(
        f'new CPU side ({dict(PATHS)[best].split(", ")[-1]}): '
        f"{speedup:.1f}x MMPose's pipeline on photographs per worker "
        '(target >= 10x)'
    )
    if args.out_json:
        from mmaniso.utils.atomic_files import atomic_write_json

        # Whole or not at all, as every file mmaniso writes.
        atomic_write_json(
            args.out_json,
            dict(
                # The figures by name, as benchmark_crop_cache.py writes
                # its own: each benchmark keeps its record; data, not logic.
                rates=rates,
                median=median,
                wall_rates=wall,
                wall_median=wall_median,
                speedup=speedup,
                best=best,
                augment_ms_per_batch=aug_ms,
                augment_cpu_ms_per_batch=aug_cpu_ms,
                batch_size=args.batch_size,
            ),
        )
    return speedup


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
