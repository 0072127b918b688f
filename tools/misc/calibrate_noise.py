"""Calibrates SynthFace's ``'300w'`` noise model on real 300W shapes.

The statistic is the second-difference residual of each interior curve
point, ``r = p_i - (p_{i-1} + p_{i+1}) / 2`` on the unit tangent (the
neighbours' central difference) and on the normal, divided by the image's
outer-eye-corner distance
(:func:`~mmaniso.synthface.noise.second_difference_residuals`), summarised
per curve group by its robust std about each point's median
(:func:`~mmaniso.synthface.noise.robust_spread`; the median takes out each
point's curvature and spacing). It is measured on the real shapes, then on
synthetic shapes with ``'tangent'`` noise; per curve group (and for all
curves with one pair), ``sigma_t`` and ``sigma_n`` are found by bisection
(alternating, with common random numbers) so that the synthetic residuals
equal the real ones. Two sets of synthetic shapes:

* the frontal mean face (``face_template.mean_face(68)``), drawn
  ``--draws`` times: its residual spread is the noise's alone, so this
  attributes the whole real spread to annotation. These sigmas are
  ``SIGMAS_300W``;
* SynthFace's rendered clean shapes (pose, shape modes, expressions and a
  per-point 3-D jitter), ``--faces`` of them: their own spread, with no
  noise, is printed first.

::

    python tools/misc/calibrate_noise.py REAL_SHAPES \\
        [--draws 4000] [--faces 1000] [--seed 0]

REAL_SHAPES is a folder of ``.npz`` files with a ``kpts`` array of 300W
shapes, shape (N, 68, 2), or such files; they are pooled. The output is
Markdown tables and the constants for ``mmaniso/synthface/noise.py``.
"""

import argparse
import glob
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np

from mmaniso.datasets.layouts import LAYOUTS, WFLW_TO_300W
from mmaniso.synthface.face_template import mean_face
from mmaniso.synthface.noise import (
    SIGMA_C,
    curve_groups,
    robust_spread,
    second_difference_residuals,
    tangent_noise,
)
from mmaniso.synthface.renderer import render_face
from mmaniso.synthface.writer import sample_rngs

LAYOUT = '300w'
K = LAYOUTS[LAYOUT].num_keypoints


def load_real(paths: List[str]) -> np.ndarray:
    """300W shapes (N, 68, 2) from ``.npz`` files or folders of them."""
    files = []
    for path in paths:
        if osp.isdir(path):
            files += sorted(glob.glob(osp.join(path, '*.npz')))
        else:
            files.append(path)
    if not files:
        raise SystemExit(f'no .npz files in {paths}')
    parts = []
    for name in files:
        with np.load(name) as data:
            kpts = np.asarray(data['kpts'], np.float64)
        if kpts.ndim != 3 or kpts.shape[1:] != (K, 2):
            raise SystemExit(
                f'{name}: kpts must be (N, {K}, 2), got {kpts.shape}'
            )
        parts.append(kpts)
    return np.concatenate(parts)


def mean_face_draws(draws: int) -> Tuple[np.ndarray, np.ndarray]:
    """The frontal 300W mean face ``draws`` times, (N, 68, 2), and d."""
    face = mean_face(K) * 50.0
    a, b = LAYOUTS[LAYOUT].outer_eye_corners
    d = float(np.linalg.norm(face[a] - face[b]))
    return np.repeat(face[None], draws, 0), np.full(draws, d)


def synth_clean(faces: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """SynthFace's clean 300W shapes (N, 68, 2) and their ``d`` (N,)."""
    clean, d = [], []
    for i in range(faces):
        scene, _ = sample_rngs(seed, 'calibration', i)
        sample = render_face(scene, 32)
        clean.append(sample.landmarks[WFLW_TO_300W])
        d.append(sample.interocular)
    return np.stack(clean), np.array(d)


def group_columns() -> Dict[str, np.ndarray]:
    """Residual columns of each curve group, and of ``'all'``."""
    _, _, idx = second_difference_residuals(np.zeros((K, 2)), LAYOUT, 1.0)
    cols = {
        g: np.flatnonzero(np.isin(idx, members))
        for g, members in curve_groups(LAYOUT).items()
    }
    cols['all'] = np.arange(len(idx))
    return cols


def spreads(points: np.ndarray, cols: Dict[str, np.ndarray]) -> np.ndarray:
    """Robust along and across spreads per group, shape (G, 2)."""
    along, across, _ = second_difference_residuals(points, LAYOUT)
    return np.array(
        [
            [robust_spread(along[:, c]), robust_spread(across[:, c])]
            for c in cols.values()
        ]
    )


class Noised:
    """Residual spreads of shapes under tangent noise of given sigmas.

    Args:
        clean: Shapes, shape (N, 68, 2).
        d: Their scale, shape (N,).
        cols: Residual columns per group, ``'all'`` last.
        seed: The noise seed; every evaluation draws the same numbers.
    """

    def __init__(self, clean, d, cols, seed):
        self.clean, self.d, self.cols, self.seed = clean, d, cols, seed
        self.members = curve_groups(LAYOUT)

    def _noisy(self, per_point: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return tangent_noise(
            self.clean,
            LAYOUT,
            rng,
            self.d,
            per_point[:, 0],
            per_point[:, 1],
            SIGMA_C,
        )

    def __call__(self, sigma: np.ndarray) -> np.ndarray:
        """Spreads (G, 2) with each group's ``sigma`` (G, 2) on its own
        points; the ``'all'`` row with its pair on every curve point."""
        groups = list(self.cols)[:-1]
        per_group = np.zeros((K, 2))
        one_pair = np.zeros((K, 2))
        for g, name in enumerate(groups):
            per_group[self.members[name]] = sigma[g]
            one_pair[self.members[name]] = sigma[-1]
        out = spreads(self._noisy(per_group), self.cols)
        out[-1] = spreads(self._noisy(one_pair), self.cols)[-1]
        return out


def calibrate(
    noised: Noised, target: np.ndarray, rounds: int = 2, steps: int = 16
) -> np.ndarray:
    """Sigmas (G, 2) whose noise gives the spreads ``target`` (G, 2); 0
    where the shapes' own spread is already above it."""
    sigma = np.zeros_like(target)
    for _ in range(rounds):
        for axis in (0, 1):
            lo = np.zeros(len(target))
            hi = np.full(len(target), 0.1)
            for _ in range(steps):
                mid = (lo + hi) / 2
                trial = sigma.copy()
                trial[:, axis] = mid
                above = noised(trial)[:, axis] > target[:, axis]
                hi = np.where(above, mid, hi)
                lo = np.where(above, lo, mid)
            sigma[:, axis] = (lo + hi) / 2
    return sigma.round(4)


def _pair(values: np.ndarray) -> str:
    return f'{100 * values[0]:.2f} / {100 * values[1]:.2f}'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('real', nargs='+', help='folder or .npz files')
    parser.add_argument(
        '--draws', type=int, default=4000, help='noisy mean faces'
    )
    parser.add_argument(
        '--faces', type=int, default=1000, help='rendered SynthFace faces'
    )
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    real = load_real(args.real)
    cols = group_columns()
    target = spreads(real, cols)
    on_mean = Noised(*mean_face_draws(args.draws), cols, args.seed)
    sigma = calibrate(on_mean, target)
    fit_mean = on_mean(sigma)
    on_synth = Noised(*synth_clean(args.faces, args.seed), cols, args.seed)
    base = on_synth(np.zeros_like(sigma))
    synth_sigma = calibrate(on_synth, target)
    with_mean_sigma = on_synth(sigma)

    print(
        f'real: {len(real)} 300W shapes; mean face: {args.draws} draws; '
        f'SynthFace: {args.faces} rendered clean shapes; seed {args.seed}; '
        f'corners sigma_c {SIGMA_C}\n'
        'residual: robust std of the second difference along / across the '
        'curve, % of the outer-eye-corner distance; sigma: % of d\n'
    )
    print(
        '| group | points | real residual | sigma_t, sigma_n (mean face) '
        '| mean face + noise | SynthFace, no noise | SynthFace + noise '
        '| sigma_t, sigma_n (SynthFace) |'
    )
    print('|---|---|---|---|---|---|---|---|')
    for g, name in enumerate(cols):
        print(
            f'| {name} | {len(cols[name])} | {_pair(target[g])} '
            f'| {100 * sigma[g, 0]:.2f}, {100 * sigma[g, 1]:.2f} '
            f'| {_pair(fit_mean[g])} | {_pair(base[g])} '
            f'| {_pair(with_mean_sigma[g])} '
            f'| {100 * synth_sigma[g, 0]:.2f}, '
            f'{100 * synth_sigma[g, 1]:.2f} |'
        )
    print('\nSIGMAS_300W = {')
    for g, name in enumerate(cols):
        print(f"    '{name}': ({sigma[g, 0]:.4f}, {sigma[g, 1]:.4f}),")
    print('}\nRESIDUALS_300W = {')
    for g, name in enumerate(cols):
        print(f"    '{name}': ({target[g, 0]:.4f}, {target[g, 1]:.4f}),")
    print('}')
    return dict(
        sigmas=dict(zip(cols, sigma.tolist())),
        residuals=dict(zip(cols, target.tolist())),
    )


if __name__ == '__main__':
    main()
