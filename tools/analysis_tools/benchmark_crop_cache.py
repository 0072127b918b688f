"""MMPose's training pipeline on full photographs vs on the face-crop cache.

    python tools/analysis_tools/benchmark_crop_cache.py [--images 64]
        [--rounds 3] [--long-side 1000] [--face-px 200 400] [--max-size 512]
        [--config configs/aniso_res50_wflw.py] [--out-json FILE]

Generates WFLW-like JPEGs (mmaniso/testing/wflw_like.py: about 1000 px, one
face of 200-400 px), writes their crop cache with the margin of the
config's training augmentation, and runs the config's training pipeline
(LoadImage ... TopdownAffine 256 x 256, GenerateTarget, PackPoseInputs) on
both in this one process with a worker's thread settings (what one
data-loader worker does), the two interleaved round by round. Prints
images/s of each, the JPEG decode time per image, and the speed-up.
"""

import argparse
import json
import os.path as osp
import statistics
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmaniso.testing.wflw_like import add_photo_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_photo_arguments(parser, osp.join(REPO, 'configs/aniso_res50_wflw.py'))
    return parser.parse_args(argv)


def _decode_ms(paths, repeat=3):
    import cv2
    import numpy as np

    blobs = [np.fromfile(p, np.uint8) for p in paths]
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        for blob in blobs:
            cv2.imdecode(blob, cv2.IMREAD_COLOR)
        best = min(best, (time.perf_counter() - start) / len(blobs))
    return 1000 * best


def _files(root, ann):
    with open(osp.join(root, ann)) as f:
        images = json.load(f)['images']
    return [osp.join(root, 'images', img['file_name']) for img in images]


def main(argv=None):
    args = parse_args(argv)
    import cv2
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS

    import mmaniso  # noqa: F401
    from mmaniso.datasets.crop_cache import augmentation_margin
    from mmaniso.testing.wflw_like import (
        TRAIN_ANN,
        dataset_at,
        write_photos_and_crops,
    )

    # As in a training data-loader worker: MMEngine's env_cfg sets OpenCV's
    # threads to 0 (none), PyTorch's worker loop sets torch's to 1.
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    init_default_scope('mmpose')
    cfg = Config.fromfile(args.config).train_dataloader.dataset
    margin = augmentation_margin(cfg.pipeline)
    with tempfile.TemporaryDirectory() as tmp:
        full, cache, made_s, cut_s = write_photos_and_crops(tmp, args, margin)
        datasets = {
            name: DATASETS.build(dataset_at(cfg, root))
            for name, root in (('full images', full), ('crop cache', cache))
        }
        decode = {
            'full images': _decode_ms(_files(full, TRAIN_ANN)),
            'crop cache': _decode_ms(_files(cache, TRAIN_ANN)),
        }
        sizes = {}
        for name, root in (('full images', full), ('crop cache', cache)):
            with open(osp.join(root, TRAIN_ANN)) as f:
                imgs = json.load(f)['images']
            sizes[name] = float(
                np.mean([max(i['height'], i['width']) for i in imgs])
            )
        for ds in datasets.values():  # warm-up: caches, lazy imports
            for i in range(min(4, len(ds))):
                ds[i]
        rates = {name: [] for name in datasets}
        order = list(datasets)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                ds = datasets[name]
                np.random.seed(r)
                start = time.perf_counter()
                for i in range(len(ds)):
                    ds[i]
                rates[name].append(len(ds) / (time.perf_counter() - start))
    median = {k: statistics.median(v) for k, v in rates.items()}
    speedup = median['crop cache'] / median['full images']
    print(
        f'== crop cache: {args.images} WFLW-like JPEGs (long side '
        f'{args.long_side} px, faces {args.face_px[0]}-{args.face_px[1]} px, '
        f'made in {made_s:.1f} s), cache margin {margin:.2f} x box, crops '
        f'<= {args.max_size} px (cut in {cut_s:.1f} s); pipeline of '
        f'{osp.relpath(args.config, REPO)}, one process, median of '
        f'{args.rounds} interleaved rounds'
    )
    for name in datasets:
        spread = (max(rates[name]) - min(rates[name])) / median[name]
        print(
            f'{name:<12} mean side {sizes[name]:6.0f} px, decode '
            f'{decode[name]:5.2f} ms/img, pipeline {median[name]:6.1f} '
            f'images/s (round spread {100 * spread:.0f}%)'
        )
    # What is not decoding costs both the same (the same 256-px output):
    # it bounds the speed-up however small the crops are.
    rest = {k: 1000.0 / median[k] - decode[k] for k in median}
    print(
        f'pipeline minus decoding: {rest["full images"]:.2f} ms/img on full '
        f'images, {rest["crop cache"]:.2f} ms/img on crops; decoding alone '
        f'{decode["full images"] / decode["crop cache"]:.2f}x faster'
    )
    print(f'crop-cache speed-up: {speedup:.2f}x (target >= 4x)')
    if args.out_json:
        from mmaniso.utils.atomic_files import atomic_write_json

        # Whole or not at all, as every file mmaniso writes.
        atomic_write_json(
            args.out_json,
            dict(
                rates=rates,
                median=median,
                decode_ms=decode,
                speedup=speedup,
            ),
        )
    return speedup


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
