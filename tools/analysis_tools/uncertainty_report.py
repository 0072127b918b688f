"""Calibration and failure detection of predicted landmark ellipses.

    python tools/analysis_tools/uncertainty_report.py PRED.npz \
        [--distance mahalanobis|squared] [--plot reliability.png] \
        [--json report.json] [--overwrite]

``PRED.npz`` is what ``FaceLandmarkMetric`` writes for a model whose head
predicts scales (``MeanShapeRegressionHead(predict_scales=...)``):
``residual`` (N, K, 2) and ``ellipses`` (N, K, 3) in image pixels, and
``norm`` (N,). The report gives the share of errors inside the 1-, 2- and
3-scale ellipses beside what the training density (``--distance``, the
loss's) puts there, AUROC of the per-image mean predicted scale (divided
by the normalising distance) for faces with NME above 8 % and 10 %, and
Spearman between that scale and the NME; ``--plot`` draws the reliability
curve. Output files are written under a temporary name and renamed; an
existing one is refused unless ``--overwrite``.
"""

import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np


def load_predictions(path: str) -> Dict[str, np.ndarray]:
    """``residual``, ``ellipses`` and ``norm`` of a ``.pred.npz`` file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'predictions file not found: {path}')
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ('residual', 'norm') if k not in data]
        if missing:
            raise ValueError(
                f'{path}: no {missing} array; expected a FaceLandmarkMetric '
                '<prefix>.pred.npz'
            )
        if 'ellipses' not in data:
            raise ValueError(
                f'{path}: no ellipses array; test a model whose head has '
                "predict_scales='anisotropic' or 'isotropic'"
            )
        out = {k: np.asarray(data[k], np.float64) for k in data.files}
    residual, ellipses = out['residual'], out['ellipses']
    if ellipses.shape != residual.shape[:2] + (3,):
        raise ValueError(
            f'{path}: ellipses {ellipses.shape} do not match residual '
            f'{residual.shape} (expected (N, K, 3))'
        )
    bad = ~np.isfinite(ellipses).all(axis=(1, 2))
    if bad.any():
        raise ValueError(
            f'{path}: face #{int(np.argmax(bad))} has a non-finite ellipse'
        )
    return out


def report(data: Dict[str, np.ndarray], distance: str) -> Dict[str, float]:
    """The calibration and failure-detection figures of one file."""
    from mmaniso.evaluation.uncertainty import (
        ellipse_coverage,
        expected_coverage,
        failure_detection,
        mean_scale,
        normalised_radius,
    )

    residual, ellipses, norm = data['residual'], data['ellipses'], data['norm']
    rho = normalised_radius(residual, ellipses)
    nme = np.linalg.norm(residual, axis=-1).mean(-1) / norm
    out = {'faces': int(len(nme)), 'NME': float(nme.mean())}
    expected = expected_coverage(distance)
    for k, share in ellipse_coverage(rho).items():
        out[f'Cover@{k:g}'] = share
        out[f'Expected@{k:g}'] = expected[k]
    out.update(failure_detection(mean_scale(ellipses, norm), nme))
    return out


def _write_atomic(path: str, write) -> None:
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, ext = osp.splitext(osp.basename(path))
    tmp = osp.join(folder, f'.{base}.{os.getpid()}.tmp{ext}')
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def plot_reliability(rho: np.ndarray, distance: str, path: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmaniso.evaluation.uncertainty import reliability_curve

    levels, observed = reliability_curve(rho, distance)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color='0.6', lw=1, label='calibrated')
    ax.plot(levels, observed, 'o-', label='model')
    ax.set_xlabel(f'expected share inside ({distance} density)')
    ax.set_ylabel('observed share inside')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc='upper left')
    fig.tight_layout()
    _write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('predictions', help='<prefix>.pred.npz')
    parser.add_argument(
        '--distance',
        default='mahalanobis',
        choices=['mahalanobis', 'squared'],
        help="the loss's distance: Laplace-like or Gaussian density",
    )
    parser.add_argument('--plot', help='reliability plot (PNG)')
    parser.add_argument('--json', help='write the figures here')
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    from mmaniso.evaluation.uncertainty import normalised_radius
    from mmaniso.utils.launch import refuse_existing_files

    refuse_existing_files(
        [('--plot', args.plot), ('--json', args.json)], args.overwrite
    )
    try:
        data = load_predictions(args.predictions)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from None
    figures = report(data, args.distance)
    for key, value in figures.items():
        print(
            f'{key:>14}: {value:.4f}'
            if isinstance(value, float)
            else f'{key:>14}: {value}'
        )
    if args.plot:
        rho = normalised_radius(data['residual'], data['ellipses'])
        plot_reliability(rho, args.distance, args.plot)
    if args.json:

        def dump(tmp):
            with open(tmp, 'w') as f:
                json.dump(figures, f, indent=1)

        _write_atomic(args.json, dump)
    return figures


if __name__ == '__main__':
    main()
