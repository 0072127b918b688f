"""How pose balancing treats a set of shapes: bins, draw sizes, repeats.

Bins the shapes as ``PoseBalancedSampler`` does (GPA, first principal
component, equal-width bins), with the full score range and with
outlier-robust edges, and prints for each: the bin counts, the size of one
undersampled draw, how often each face of the smallest bin is drawn in a
dataset-long epoch of undersampled draws, and the bin shares of tempered
draws (share ∝ n_b^α)::

    python tools/analysis_tools/pose_balance_report.py SHAPES [SHAPES ...] \\
        [--num-bins 9] [--clip 0.01 0.99] [--alphas 0 0.5 1] [--json]

SHAPES is an MMPose-style JSON annotation file (``annotations[*].
keypoints``) or an ``.npz`` with a ``kpts`` array of shape (N, K, 2);
several files are pooled.
"""

import argparse
import json
import sys
from typing import Dict, List

import numpy as np
import torch

from mmaniso.ops.pose import pose_bins


def load_shapes(paths: List[str]) -> np.ndarray:
    """Keypoints (N, K, 2) and nothing else, from JSON or npz files."""
    parts = []
    for path in paths:
        if path.endswith('.npz'):
            with np.load(path) as data:
                if 'kpts' not in data:
                    raise SystemExit(f'{path}: no "kpts" array (N, K, 2)')
                parts.append(np.asarray(data['kpts'], np.float64))
            continue
        with open(path) as f:
            anns = json.load(f).get('annotations') or []
        if not anns:
            raise SystemExit(f'{path}: no annotations')
        kpts = [np.asarray(a['keypoints'], float).reshape(-1, 3) for a in anns]
        parts.append(np.stack(kpts)[..., :2])
    sizes = {p.shape[1] for p in parts}
    if len(sizes) != 1:
        raise SystemExit(f'the files have different keypoint counts {sizes}')
    return np.concatenate(parts)


def summarise(counts: List[int], num_samples: int, alphas) -> Dict:
    """Draw sizes and shares for one binning."""
    nonempty = [n for n in counts if n > 0]
    draw = len(nonempty) * min(nonempty)
    draws_per_epoch = max(1, round(num_samples / draw))
    shares = {}
    for alpha in alphas:
        weight = np.array([n**alpha if n > 0 else 0.0 for n in counts])
        shares[f'{alpha:g}'] = (weight / weight.sum()).round(4).tolist()
    return dict(
        counts=counts,
        undersampled_draw=draw,
        draws_per_dataset_epoch=draws_per_epoch,
        # Each undersampled draw takes every face of the smallest bin once.
        smallest_bin_face_repeats_per_epoch=draws_per_epoch,
        tempered_shares=shares,
    )


def report(shapes: np.ndarray, num_bins: int, clip, alphas) -> Dict:
    x = torch.as_tensor(shapes, dtype=torch.float32)
    out = dict(num_samples=len(x), num_keypoints=x.shape[1])
    full = pose_bins(x, num_bins=num_bins)
    out['full_range'] = summarise(full.counts.tolist(), len(x), alphas)
    robust = pose_bins(x, num_bins=num_bins, clip_quantiles=tuple(clip))
    out[f'clipped_{clip[0]:g}_{clip[1]:g}'] = summarise(
        robust.counts.tolist(), len(x), alphas
    )
    return out


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('shapes', nargs='+')
    parser.add_argument('--num-bins', type=int, default=9)
    parser.add_argument(
        '--clip', type=float, nargs=2, default=(0.01, 0.99), metavar='Q'
    )
    parser.add_argument(
        '--alphas', type=float, nargs='+', default=(0.0, 0.5, 1.0)
    )
    parser.add_argument('--json', action='store_true', help='print JSON')
    args = parser.parse_args(argv)
    result = report(
        load_shapes(args.shapes), args.num_bins, args.clip, args.alphas
    )
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return result
    print(
        f'{result["num_samples"]} shapes of {result["num_keypoints"]} '
        f'points, {args.num_bins} bins'
    )
    for name, part in result.items():
        if not isinstance(part, dict):
            continue
        print(f'\n{name}: counts {part["counts"]}')
        print(
            f'  one undersampled draw: {part["undersampled_draw"]} faces; '
            f'{part["draws_per_dataset_epoch"]} draws per dataset-long '
            f'epoch, so each face of the smallest bin is drawn '
            f'{part["smallest_bin_face_repeats_per_epoch"]}x per epoch'
        )
        for alpha, shares in part['tempered_shares'].items():
            print(f'  tempered α={alpha}: bin shares {shares}')
    return result


if __name__ == '__main__':
    main()
