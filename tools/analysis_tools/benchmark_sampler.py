"""Time the set-up of PoseBalancedSampler and of the mean shape.

    python tools/analysis_tools/benchmark_sampler.py [--sizes 10000 100000]
        [--num-keypoints 98] [--num-bins 9] [--rounds 3] [--epoch-lengths]

For each size N, N synthetic faces (the template of
:mod:`mmaniso.synthface.face_template` given depth, turned by a random yaw
and pitch, projected, then moved by a random in-plane similarity, with
jitter) are served by :class:`mmaniso.testing.InMemoryPoseDataset`, so no
annotation file is parsed.
Timed, best of ``--rounds``: building the sampler (reading the annotations
through ``get_data_info``, box normalisation, generalised Procrustes, PCA,
bins), the pose-balanced mean shape that ``PoseBalancingHook`` computes, and
drawing one epoch. The cost should grow linearly with N.

``--epoch-lengths`` instead prints the bin counts and undersampled epoch
lengths for 300W-, WFLW- and AFLW-sized training sets under the yaw spreads
that ``docs/pose_balancing.md`` quotes (a model, not the real data).
"""

import argparse
import time
from functools import partial

import numpy as np

# (name, training faces, keypoints, yaw std in degrees): the spreads are
# a plausible model of each dataset's pose mix, not measured.
EPOCH_LENGTH_CASES = [
    ('300W', 3148, 68, 18.0),
    ('WFLW', 7500, 98, 24.0),
    ('AFLW', 20000, 19, 32.0),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--sizes', type=int, nargs='+', default=[10000, 100000]
    )
    parser.add_argument('--num-keypoints', type=int, default=98)
    parser.add_argument('--num-bins', type=int, default=9)
    parser.add_argument('--yaw-std', type=float, default=25.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--epoch-lengths',
        action='store_true',
        help='print epoch lengths for 300W/WFLW/AFLW-sized sets instead',
    )
    return parser.parse_args(argv)


def face_with_depth(num_keypoints: int) -> np.ndarray:
    """The 2-D template with a plausible depth, shape (K, 3).

    Depth follows a half-cylinder (the face's sides are further back than
    its middle), with the nose standing out and the eyes set in. The 68-
    and 19-point faces are the 300W and AFLW points of the 98.
    """
    from mmaniso.datasets.layouts import WFLW_TO_300W, WFLW_TO_AFLW
    from mmaniso.synthface.face_template import mean_face

    face = mean_face(98)
    z = 0.7 * np.sqrt(np.clip(1 - face[:, 0] ** 2, 0, None))
    z[51:55] += np.linspace(0.1, 0.45, 4)  # nose bridge, top to tip
    z[55:60] += 0.25  # nose base
    z[60:76] -= 0.08  # eyes
    z[96:98] -= 0.08  # pupils
    face = np.concatenate([face, z[:, None]], 1)
    # The layouts' index maps, as synthface's mean_face picks them (this
    # face has a depth too).
    if num_keypoints == 98:
        return face
    if num_keypoints == 19:
        return face[WFLW_TO_AFLW]
    if num_keypoints == 68:
        return face[WFLW_TO_300W]
    raise ValueError(f'no layout for {num_keypoints} keypoints (98, 68, 19)')


def synthetic_faces(
    num: int,
    num_keypoints: int,
    yaw_std: float,
    rng: np.random.Generator,
    image_size: float = 256.0,
):
    """Posed faces in image pixels and their boxes.

    Returns:
        tuple: keypoints (N, K, 2), boxes (N, 4) as x0, y0, x1, y1, and yaw
        in degrees (N,).
    """
    face = face_with_depth(num_keypoints)  # (K, 3)
    yaw = np.clip(rng.normal(0.0, yaw_std, num), -90.0, 90.0)
    pitch = rng.normal(0.0, 8.0, num)
    a, b = np.deg2rad(yaw), np.deg2rad(pitch)
    x, y, z = face[:, 0], face[:, 1], face[:, 2]
    # Yaw about the vertical axis, then pitch about the horizontal one;
    # orthographic projection.
    xr = np.cos(a)[:, None] * x + np.sin(a)[:, None] * z
    zr = -np.sin(a)[:, None] * x + np.cos(a)[:, None] * z
    yr = np.cos(b)[:, None] * y - np.sin(b)[:, None] * zr
    pts = np.stack([xr, yr], -1) + rng.normal(0, 0.02, xr.shape + (2,))
    roll = np.deg2rad(rng.normal(0.0, 10.0, num))
    scale = image_size * rng.uniform(0.25, 0.35, num)
    rot = np.stack(
        [
            np.stack([np.cos(roll), -np.sin(roll)], -1),
            np.stack([np.sin(roll), np.cos(roll)], -1),
        ],
        -2,
    )  # (N, 2, 2)
    pts = np.einsum('nij,nkj->nki', rot, pts) * scale[:, None, None]
    pts += image_size / 2 + rng.uniform(-10, 10, (num, 1, 2))
    boxes = np.concatenate([pts.min(1), pts.max(1)], 1)
    return pts.astype(np.float32), boxes.astype(np.float32), yaw


def _timed(fn, rounds: int):
    """Seconds of the first call, best seconds of all, and the result."""
    times, out = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times[0], min(times), out


def benchmark(args) -> None:
    from mmaniso.datasets.samplers import PoseBalancedSampler
    from mmaniso.datasets.training_shapes import head_mean_shape
    from mmaniso.testing import InMemoryPoseDataset

    rng = np.random.default_rng(args.seed)
    print(
        f'{args.num_keypoints} keypoints, {args.num_bins} bins; seconds, '
        f'first call / best of {args.rounds}'
    )
    print(
        f'{"N":>7} {"sampler":>13} {"mean shape":>13} {"epoch":>13} '
        f'{"total":>13} {"us/shape":>9}'
    )
    for num in args.sizes:
        kpts, boxes, _ = synthetic_faces(
            num, args.num_keypoints, args.yaw_std, rng
        )
        dataset = InMemoryPoseDataset.from_arrays(kpts, bboxes=boxes)
        sampler_t = _timed(
            partial(
                PoseBalancedSampler, dataset, num_bins=args.num_bins, seed=0
            ),
            args.rounds,
        )
        sampler = sampler_t[2]
        mean_t = _timed(
            partial(
                head_mean_shape,
                sampler.annotations,
                sampler.bin_ids,
                (256, 256),
                1.25,
            ),
            args.rounds,
        )
        epoch_t = _timed(partial(list, sampler), args.rounds)
        parts = [sampler_t, mean_t, epoch_t]
        first = sum(t[0] for t in parts)
        best = sum(t[1] for t in parts)
        cells = ' '.join(f'{t[0]:>6.3f}/{t[1]:<6.3f}' for t in parts)
        print(
            f'{num:>7} {cells} {first:>6.3f}/{best:<6.3f} '
            f'{1e6 * best / num:>9.1f}'
        )


def epoch_lengths(args) -> None:
    from mmaniso.datasets.samplers import PoseBalancedSampler
    from mmaniso.testing import InMemoryPoseDataset

    rng = np.random.default_rng(args.seed)
    print(
        f'{args.num_bins} equal-width bins along PC1; yaw ~ N(0, std) '
        'clipped to +-90 deg, pitch ~ N(0, 8 deg), roll ~ N(0, 10 deg)'
    )
    for name, num, num_kpts, yaw_std in EPOCH_LENGTH_CASES:
        kpts, boxes, yaw = synthetic_faces(num, num_kpts, yaw_std, rng)
        sampler = PoseBalancedSampler(
            InMemoryPoseDataset.from_arrays(kpts, bboxes=boxes),
            num_bins=args.num_bins,
            seed=0,
            draws_per_epoch=1,  # one draw: the epoch the table reports
        )
        counts = sampler.bin_counts.tolist()
        scores = sampler.pose_scores.double().numpy()
        corr = abs(np.corrcoef(scores, np.sin(np.deg2rad(yaw)))[0, 1])
        nonempty = [c for c in counts if c > 0]
        print(
            f'{name}: N={num} K={num_kpts} yaw std {yaw_std:g} deg: counts '
            f'{counts}; epoch = {len(nonempty)} x {min(nonempty)} = '
            f'{sampler.epoch_size} ({100 * sampler.epoch_size / num:.1f}% '
            f'of N); oversample epoch = {len(nonempty)} x {max(nonempty)} = '
            f'{len(nonempty) * max(nonempty)}; |corr(PC1, sin yaw)| = '
            f'{corr:.3f}'
        )


def main(argv=None):
    args = parse_args(argv)
    from mmengine.logging import MMLogger

    # Keep the sampler's own log lines out of the table.
    MMLogger.get_instance('benchmark_sampler', log_level='WARNING')
    if args.epoch_lengths:
        epoch_lengths(args)
    else:
        benchmark(args)


if __name__ == '__main__':
    main()
