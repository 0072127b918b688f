"""Render SynthFace, the embedded default data, in MMPose's JSON layout.

    python tools/dataset_converters/make_synthface.py data/synthface \
        [--num-train 2000] [--num-val 0] [--num-test 500] [--size 128] \
        [--layout wflw|300w] [--seed 0] [--workers N] \
        [--noise arc|tangent|resampled|300w] \
        [--sigma-t 0.06] [--sigma-n 0.01] [--sigma-c 0.01] \
        [--preview PNG]

Writes ``images/{train,val,test}_NNNNN.jpg`` and
``annotations/face_landmarks_<layout>_{train,val,test}.json`` under the
output folder (no val split unless ``--num-val`` is given; each split has its
own random streams, so adding one leaves the others unchanged); see
docs/synthface.md for the noise models (``--noise``; the default ``arc``
writes what SynthFace always wrote). ``--preview`` also saves a grid of the
first 16 training images with the clean (green) and annotated (red)
landmarks.
"""

import argparse
import os

from mmaniso.synthface import (
    NOISE_MODELS,
    SIGMA_C,
    SIGMA_N,
    SIGMA_T,
    SYNTHFACE_LAYOUTS,
    preview_grid,
    summarise,
    write_synthface,
)


def _splits(num_train: int, num_val: int, num_test: int) -> dict:
    splits = dict(train=num_train, test=num_test)
    if num_val:
        splits['val'] = num_val
    return splits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='data root to write')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument(
        '--num-val',
        type=int,
        default=0,
        help='faces of a validation split, for choices made without the '
        'test faces',
    )
    parser.add_argument('--num-test', type=int, default=500)
    parser.add_argument('--size', type=int, default=128, help='image side')
    parser.add_argument(
        '--layout', default='wflw', choices=sorted(SYNTHFACE_LAYOUTS)
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--workers',
        type=int,
        default=min(2, os.cpu_count() or 1),
        help='rendering processes (the output does not depend on it)',
    )
    parser.add_argument(
        '--noise',
        default='arc',
        choices=NOISE_MODELS,
        help='annotation noise model (docs/synthface.md)',
    )
    parser.add_argument(
        '--sigma-t',
        type=float,
        help=f'along-curve noise std / inter-ocular distance (default '
        f'{SIGMA_T}; 300w has its own, calibrated)',
    )
    parser.add_argument(
        '--sigma-n',
        type=float,
        help=f'across-curve noise std / inter-ocular distance (default '
        f'{SIGMA_N}; 300w has its own, calibrated)',
    )
    parser.add_argument(
        '--sigma-c',
        type=float,
        default=SIGMA_C,
        help='corner and isolated-point noise std / inter-ocular distance',
    )
    parser.add_argument(
        '--preview', metavar='PNG', help='also save a grid of 16 faces here'
    )
    args = parser.parse_args(argv)
    try:
        paths = write_synthface(
            args.out_dir,
            _splits(args.num_train, args.num_val, args.num_test),
            size=args.size,
            layout=args.layout,
            seed=args.seed,
            workers=args.workers,
            sigma_t=args.sigma_t,
            sigma_n=args.sigma_n,
            sigma_c=args.sigma_c,
            noise=args.noise,
        )
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    for line in summarise(paths):
        print(line)
    if args.preview:
        split = 'train' if args.num_train else 'test'
        preview_grid(args.out_dir, paths[split], args.preview)
        print(f'preview: {args.preview}')
    return paths


if __name__ == '__main__':
    main()
