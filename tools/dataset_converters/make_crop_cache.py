"""Cut each face of a config's dataset out once: a face-crop cache.

    python tools/dataset_converters/make_crop_cache.py CONFIG --out DIR
        [--ann-files REL ...] [--margin M] [--max-size 512]
        [--format jpg|png] [--quality 95] [--workers N] [--array]

Reads the config's ``data_root``, image prefix and training annotation file
(or ``--ann-files``, relative to ``data_root``), and writes under ``DIR`` the
same layout: ``<img prefix>`` with one square crop per face and the
annotation files with every coordinate in its crop's frame
(mmaniso/datasets/crop_cache.py says which fields move). The crop's side is
the margin times the face box: by default the reach of the config's training
augmentation (box padding, shift, scale, rotation), so that every training
crop from the cache equals the one from the full image up to interpolation.
Then train from it by pointing the datasets at ``DIR``: the tool prints the
``--cfg-options`` that do it.

``--array`` also packs each annotation file's crops into one memory-mapped
uint8 array beside it (``<ann>.crops.npy``, (N, 3, S, S) with S the largest
crop side, at most ``--max-size``, and its index ``<ann>.crops.json``): what
``CropFeedDataset(source='array')`` reads when training with the
augmentation on the device (``tools/train.py --device-augment``;
docs/benchmarks.md, "Device feed"). It takes N x S x S x 3 bytes.

The cache records what it was cut from (the source annotation file's
SHA-256, each source image's size and mtime, each crop's size) and this
command; training from a cache that no longer matches, or whose margin is
smaller than the training pipeline's reach, is refused with the command
that rebuilds it. Running it again re-cuts every crop whose source image
changed.
"""

import argparse
import os
import os.path as osp
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the training config')
    parser.add_argument('--out', required=True, help='root of the cache')
    parser.add_argument(
        '--ann-files',
        nargs='+',
        help='annotation files relative to data_root (default: the training '
        "dataloader's ann_file)",
    )
    parser.add_argument(
        '--margin',
        type=float,
        help='crop side / face box side (default: what the training '
        'pipeline can reach)',
    )
    parser.add_argument(
        '--max-size',
        type=int,
        default=512,
        help='largest crop side in pixels; larger crops are downscaled',
    )
    parser.add_argument('--format', choices=['jpg', 'png'], default='jpg')
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality')
    parser.add_argument(
        '--workers', type=int, default=min(4, os.cpu_count() or 1)
    )
    parser.add_argument(
        '--array',
        action='store_true',
        help="also write each annotation file's crops as one memory-mapped "
        '(N, 3, S, S) uint8 array, S the largest crop side (for '
        '--device-augment)',
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from mmaniso.datasets.crop_cache import (
        augmentation_margin,
        make_cache_command,
        write_crop_array,
        write_crop_cache,
    )

    if not osp.isfile(args.config):
        raise SystemExit(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    dataset = cfg.train_dataloader.dataset
    data_root = dataset.get('data_root', '')
    img_prefix = dataset.get('data_prefix', {}).get('img', '')
    ann_files = args.ann_files or [dataset.ann_file]
    for rel in ann_files:
        if not osp.isfile(osp.join(data_root, rel)):
            raise SystemExit(
                f'annotation file not found: {osp.join(data_root, rel)} '
                f'(data_root {data_root!r} from {args.config})'
            )
    margin = args.margin
    if margin is None:
        margin = augmentation_margin(dataset.pipeline)
        print(
            f'[crop cache] margin {margin:.3f} x the face box: the reach of '
            f"{args.config}'s training augmentation"
        )
    # Quoted by every refusal of a stale cache: this run, as it was given
    # (--margin only if given, so that a rebuild takes the new reach).
    command = make_cache_command(
        args.out,
        args.ann_files or [],
        args.margin,
        args.max_size,
        args.format,
        args.quality,
        args.array,
        config=args.config,
    )
    start = time.time()
    written = write_crop_cache(
        data_root,
        ann_files,
        args.out,
        margin=margin,
        max_size=args.max_size,
        img_prefix=img_prefix,
        image_format=args.format,
        quality=args.quality,
        workers=args.workers,
        command=command,
    )
    seconds = time.time() - start
    print(
        f'[crop cache] {len(written)} annotation file(s) in {seconds:.1f} s:'
    )
    for path in written.values():
        print(f'  {path}')
    if args.array:
        start = time.time()
        for path in written.values():
            array = write_crop_array(
                path, osp.join(args.out, img_prefix), command=command
            )
            print(f'  {array}')
        print(f'[crop cache] arrays written in {time.time() - start:.1f} s')
    root = args.out.rstrip('/') + '/'
    print(
        '[crop cache] train from it with\n'
        f'  --cfg-options train_dataloader.dataset.data_root={root}'
    )
    return written


if __name__ == '__main__':
    main()
