"""Plot the CED curves of several per-image NME files on one figure.

    python tools/analysis_tools/plot_ced.py a.nme.json b.nme.json \
        --labels A B [--max-nme 0.1] [--thresholds 0.08 0.1] \
        [--subset largepose] [--title T] --out ced.png

Each file is what ``FaceLandmarkMetric`` writes (``<prefix>.nme.json``: a
list of ``{id, img_path, nme, subsets}``, ``nme`` a fraction); a plain JSON
list of numbers works too. The legend gives AUC@t and FR@t of each curve.
"""

import argparse
import json
import os.path as osp

import numpy as np


def load_nmes(path: str, subset=None) -> np.ndarray:
    """Per-image NMEs (fractions) of a result file, optionally one subset."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'NME file not found: {path}')
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list) or not data:
        raise ValueError(f'{path}: expected a non-empty JSON list')
    try:
        if isinstance(data[0], dict):
            if subset is not None:
                data = [d for d in data if subset in d.get('subsets', [])]
                if not data:
                    raise ValueError(f'{path}: no image in subset {subset!r}')
            values = [d['nme'] for d in data]
        else:
            values = data
        nme = np.asarray(values, dtype=np.float64)
    except (KeyError, TypeError) as e:
        raise ValueError(
            f'{path}: entries must be numbers or dicts with "nme" ({e})'
        ) from None
    return nme


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('files', nargs='+', help='per-image NME JSON files')
    # argparse calls look alike: each tool keeps its own flags, as MMPose's.
    parser.add_argument(
        '--labels', nargs='+', help='legend labels (default: file names)'
    )
    parser.add_argument(
        '--max-nme', type=float, default=0.1, help='x-axis limit (fraction)'
    )
    parser.add_argument(
        '--thresholds',
        type=float,
        nargs='+',
        help='thresholds of AUC/FR in the legend (default: --max-nme)',
    )
    parser.add_argument(
        '--step', type=float, default=1e-4, help='CED grid spacing'
    )
    parser.add_argument('--subset', help='plot only the images of this subset')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--out', default='ced.png', help='output image')
    args = parser.parse_args(argv)
    labels = args.labels or [
        osp.basename(f).split('.nme.json')[0] for f in args.files
    ]
    if len(labels) != len(args.files):
        parser.error(
            f'{len(args.files)} files but {len(labels)} labels; give one '
            'label per file'
        )
    from mmaniso.evaluation.ced_plot import plot_ced
    from mmaniso.utils.output_paths import refuse_writing_inputs

    refuse_writing_inputs(
        [('--out', args.out)],
        [('the NME file', path) for path in args.files],
        fix='name another --out file',
    )

    try:
        curves = {}
        for label, path in zip(labels, args.files):
            if label in curves:
                parser.error(f'label {label!r} given twice')
            curves[label] = load_nmes(path, args.subset)
        out = plot_ced(
            curves,
            args.out,
            max_nme=args.max_nme,
            thresholds=args.thresholds,
            step=args.step,
            title=args.title,
        )
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from None
    print(out)
    return out


if __name__ == '__main__':
    main()
