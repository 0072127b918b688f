"""Statistics of SynthFace's annotation models on the clean mean face.

Prints the table of ``docs/synthface.md`` ("The four noise models"): for
each model, ``--draws`` draws of the WFLW mean face (``wflw_mean_face``,
default sigmas), in % of the inter-ocular distance d:

* mean offset, max / mean: the distance from the mean label to the clean
  point, over the curve points with a tangent;
* across the curve, max: that offset's component across the curve (the
  bend bias);
* residual along / across: the robust spread of the second difference
  (:func:`~mmaniso.synthface.noise.second_difference_residuals`) the
  noise adds to the clean face's;
* mean error: mean distance of a label from its clean point;
* ms: time per face on this machine (compare rows, not machines).

::

    python tools/misc/noise_table.py [--draws 2000] [--seed 0]
"""

import argparse
import time

import numpy as np
from tqdm import tqdm

from mmaniso.datasets.point_types import get_point_types
from mmaniso.synthface.face_template import wflw_mean_face
from mmaniso.synthface.noise import (
    NOISE_MODELS,
    annotation_noise,
    clean_tangents,
    interocular_distance,
    robust_spread,
    second_difference_residuals,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--draws', type=int, default=2000)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def model_row(model: str, draws: int, seed: int) -> str:
    pt = get_point_types('wflw')
    clean = wflw_mean_face() * 50.0 + 64.0
    d = interocular_distance(clean, pt)
    tangent, valid = clean_tangents(clean, pt)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    along0, across0, _ = second_difference_residuals(clean[None], pt)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    noisy = np.stack(
        [
            annotation_noise(clean, pt, rng, noise=model)
            for _ in tqdm(range(draws), desc=model, leave=False)
        ]
    )
    ms = (time.perf_counter() - start) / draws * 1e3
    offset = (noisy.mean(0) - clean) / d  # (K, 2)
    length = np.linalg.norm(offset[valid], axis=1)
    across = np.abs((offset * normal).sum(-1))[valid]
    along_r, across_r, _ = second_difference_residuals(noisy, pt)
    error = np.linalg.norm(noisy - clean, axis=-1).mean() / d
    return (
        f'| `{model}` | {100 * length.max():.2f} / {100 * length.mean():.2f} '
        f'| {100 * across.max():.2f} | '
        f'{100 * robust_spread(along_r - along0):.2f} / '
        f'{100 * robust_spread(across_r - across0):.2f} | '
        f'{100 * error:.2f} | {ms:.2f} |'
    )


def main(argv=None):
    args = parse_args(argv)
    print(
        '| model | mean offset, max / mean | across the curve, max | '
        'residual along / across | mean error | ms |'
    )
    print('|---|---|---|---|---|---|')
    for model in NOISE_MODELS:
        print(model_row(model, args.draws, args.seed))


if __name__ == '__main__':
    main()
