"""A seconds-long check of the anisotropic cost's mechanism.

Does weighting each label by its inverse noise covariance help when the
noise runs along the curves? The check takes the question away from
training: a trained model's features are frozen (the input of its head's
linear layer) and a linear read-out of the landmarks is fitted to them,
once by ordinary least squares per coordinate (OLS) and once by weighted
least squares with ``W_nk`` the inverse of the label noise covariance of
point ``k`` on face ``n`` (WLS, :func:`~mmaniso.evaluation.mechanism.
gls_fit`), under each SynthFace noise model, and both are tested on the
clean test landmarks::

    python tools/misc/mechanism_check.py CONFIG CHECKPOINT \\
        [--data-root data/synthface_evidence] \\
        [--noise arc tangent resampled 300w] [--out-json FILE]

The images go through the config's training pipeline without its random
transforms (flip, box jitter), so the targets are the landmarks in the
input crop, the head's regression targets times the input size (a
similarity of the image, so NME and the along/across split are those of
the image). Each model's training labels are ``train.json`` (``arc``) or
``train_<noise>.json``, the same images. The noise is estimated from them
and their ``keypoints_clean``: per point, the covariance of ``noisy −
clean`` in the frame of the clean curve's tangent and normal (x and y at
corners and isolated points), in units of the face's scale ``d`` (the
annotation's ``interocular``, SynthFace's noise unit, in the crop; the
clean outer-eye-corner distance when the annotations lack it). The test
NME is inter-ocular (outer eye corners of the clean test landmarks,
``test_clean.json``), with its along/across split over the curve points.
``label bias`` is the mean over curve points of ``|mean_n (noisy −
clean)|`` in % of ``d``: ``arc`` is biased to the inside of bends,
``tangent`` and ``300w`` are zero-mean.

``W`` weighs the label noise only, as the anisotropic cost does. Where
the read-out's own error (what the features cannot express) is as large
as the noise, that is not the residual's covariance; ``WLS-res`` (feasible
GLS) takes ``W`` from the OLS fit's training residuals instead, read-out
error and noise together, in the same frames. WLS can differ from OLS only
because ``W_nk`` changes from face to face (the curve's direction, the
scale): with one ``W_k`` for all faces the x and y equations share their
regressors and GLS is OLS.

Two reference rows: the checkpoint's own head on the same features, and
OLS on the clean training landmarks (what the features allow without
label noise). The ridge (``--ridge``, relative to the mean squared
centred feature, not on the intercept) only keeps dead or collinear
features from making the systems singular.
"""

import argparse
import json
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmaniso.evaluation.mechanism import (
    DEFAULT_MIN_STD,
    DEFAULT_RIDGE,
    gls_fit,
    linear_predict,
    local_frames,
    local_residuals,
    noise_covariances,
    ols_fit,
    precision_weights,
)

NOISES = ('arc', 'tangent', 'resampled', '300w')
ANN = 'annotations/face_landmarks_{layout}_{split}.json'
# Transforms that draw random numbers: dropped from the training pipeline.
RANDOM_TRANSFORMS = (
    'Albumentation',
    'PhotometricDistortion',
    'YOLOXHSVRandomAug',
)


def train_split(noise: str) -> str:
    """The training split that holds the labels of ``noise``."""
    return 'train' if noise == 'arc' else f'train_{noise}'


def deterministic_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """The pipeline without its random transforms.

    Args:
        pipeline: A training pipeline (transform configs).

    Returns:
        The transforms whose type neither starts with ``Random`` nor is in
        :data:`RANDOM_TRANSFORMS`; it must keep ``TopdownAffine`` and
        ``GenerateTarget``.
    """
    kept = []
    for t in pipeline:
        name = str(t['type']).rsplit('.', 1)[-1]
        if name.startswith('Random') or name in RANDOM_TRANSFORMS:
            continue
        kept.append(dict(t))
    names = [str(t['type']).rsplit('.', 1)[-1] for t in kept]
    for need in ('TopdownAffine', 'GenerateTarget', 'PackPoseInputs'):
        if need not in names:
            raise ValueError(
                f'the training pipeline has no {need} ({names}); the check '
                'needs a top-down regression pipeline'
            )
    return kept


def read_annotations(path: str) -> Dict[int, dict]:
    """Annotations of a SynthFace JSON file by annotation id.

    Returns:
        Per id: ``file_name``, ``keypoints`` (K, 2), ``visible`` (K,),
        ``clean`` (K, 2) or None, ``interocular`` or None.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found; generate the data with tools/misc/study.py '
            '--table evidence (or make_synthface.py --noise ...)'
        )
    with open(path) as f:
        data = json.load(f)
    names = {im['id']: im['file_name'] for im in data['images']}
    out = {}
    for ann in data['annotations']:
        kpts = np.asarray(ann['keypoints'], np.float64).reshape(-1, 3)
        clean = ann.get('keypoints_clean')
        if clean is not None:
            clean = np.asarray(clean, np.float64).reshape(-1, 3)[:, :2]
        out[ann['id']] = dict(
            file_name=names[ann['image_id']],
            keypoints=kpts[:, :2],
            visible=kpts[:, 2],
            clean=clean,
            interocular=ann.get('interocular'),
        )
    return out


def align(
    anns: Dict[int, dict], ids: Sequence[int], names: Sequence[str], path
) -> Dict[str, Optional[np.ndarray]]:
    """Stacks the annotations of ``ids`` in that order, checking that each
    names the same image as the extracted features.

    Returns:
        ``keypoints`` (N, K, 2), ``visible`` (N, K), ``clean`` (N, K, 2) or
        None, ``interocular`` (N,) or None.
    """
    missing = [i for i in ids if i not in anns]
    if missing or len(anns) != len(ids):
        raise ValueError(
            f'{path} has {len(anns)} annotations, the features {len(ids)} '
            f'faces ({len(missing)} ids missing, e.g. {missing[:3]}): the '
            'noise models must label the same images'
        )
    rows = [anns[i] for i in ids]
    for i, row, name in zip(ids, rows, names):
        if row['file_name'] != name:
            raise ValueError(
                f'{path}: annotation id={i} is on {row["file_name"]}, the '
                f'features on {name}: the files do not label the same images'
            )
    clean = None
    if all(r['clean'] is not None for r in rows):
        clean = np.stack([r['clean'] for r in rows])
    iod = None
    if all(r['interocular'] is not None for r in rows):
        iod = np.array([float(r['interocular']) for r in rows])
    return dict(
        keypoints=np.stack([r['keypoints'] for r in rows]),
        visible=np.stack([r['visible'] for r in rows]),
        clean=clean,
        interocular=iod,
    )


def to_crop(points: np.ndarray, warps: np.ndarray) -> np.ndarray:
    """Image points (N, K, 2) into the input crop by the affine warps
    (N, 2, 3)."""
    return (
        np.einsum('nab,nkb->nka', warps[..., :2], points)
        + warps[:, None, :, 2]
    )


def build_dataset(cfg, data_root: str, ann_file: str, pipeline: list):
    """The config's training dataset on another annotation file."""
    from mmpose.registry import DATASETS

    ds_cfg = dict(cfg.train_dataloader.dataset)
    ds_cfg.update(
        data_root=data_root,
        ann_file=ann_file,
        pipeline=pipeline,
        test_mode=True,
    )
    return DATASETS.build(ds_cfg)


def extract(model, dataset, batch_size: int, desc: str) -> dict:
    """Frozen features and crop geometry of every face of ``dataset``.

    Returns:
        ``features`` (N, F): ``extract_feat(...)[-1]`` flattened, the input
        of the head's linear layer; ``head`` (N, K, 2): the head's own
        prediction in crop pixels; ``labels`` (N, K, 2): the pipeline's
        targets in crop pixels; ``warps`` (N, 2, 3); ``ids``; ``names``.
    """
    import torch
    from mmengine.dataset import pseudo_collate
    from mmpose.structures.bbox import get_warp_matrix
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    loader = DataLoader(
        dataset, batch_size=batch_size, collate_fn=pseudo_collate
    )
    out = dict(features=[], head=[], labels=[], warps=[], ids=[], names=[])
    with torch.no_grad():
        for batch in tqdm(loader, desc=desc, unit='batch'):
            data = model.data_preprocessor(batch, False)
            feats = model.extract_feat(data['inputs'])
            x = torch.flatten(feats[-1], 1)
            fc = getattr(model.head, 'fc', None)
            if not isinstance(fc, torch.nn.Linear) or (
                fc.in_features != x.shape[1]
            ):
                raise ValueError(
                    f'{type(model.head).__name__} has no linear layer fc '
                    f'on the {x.shape[1]} flattened features; the check '
                    'needs a regression head (RegressionHead or '
                    'MeanShapeRegressionHead)'
                )
            size = np.asarray(data['data_samples'][0].metainfo['input_size'])
            out['features'].append(x.double().cpu().numpy())
            out['head'].append(model.head.forward(feats).cpu().numpy() * size)
            for sample in data['data_samples']:
                meta, inst = sample.metainfo, sample.gt_instances
                # MMPose 1.3 packs the crop as input_center/input_scale in
                # the metainfo; 1.1 as the instances' bbox_centers/scales.
                if 'input_center' in meta:
                    center, scale = meta['input_center'], meta['input_scale']
                else:
                    center, scale = inst.bbox_centers[0], inst.bbox_scales[0]
                warp = get_warp_matrix(
                    np.asarray(center, np.float32).reshape(2),
                    np.asarray(scale, np.float32).reshape(2),
                    0.0,
                    output_size=tuple(int(v) for v in meta['input_size']),
                )
                labels = sample.gt_instance_labels.keypoint_labels[0]
                out['labels'].append(labels.cpu().numpy() * size)
                out['warps'].append(warp)
                out['ids'].append(int(meta['id']))
                out['names'].append(osp.basename(meta['img_path']))
    for key in ('features', 'head'):
        out[key] = np.concatenate(out[key])
    for key in ('labels', 'warps'):
        out[key] = np.stack(out[key])
    return out


def nme_report(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    neighbours,
    norm_indices,
) -> Dict[str, float]:
    """Inter-ocular NME and its along/across split over the curve points,
    in percent (:mod:`mmaniso.evaluation.functional`)."""
    from mmaniso.evaluation.functional import (
        curve_error_components,
        keypoint_distances,
        masked_per_image_nme,
        per_image_nme,
    )

    dist = keypoint_distances(gt, norm_indices)
    along, across, valid = curve_error_components(
        pred, gt, neighbours, visible
    )
    return dict(
        NME=float(per_image_nme(pred, gt, dist).mean() * 100),
        NME_along=float(
            np.nanmean(masked_per_image_nme(along, valid, dist)) * 100
        ),
        NME_across=float(
            np.nanmean(masked_per_image_nme(across, valid, dist)) * 100
        ),
    )


def label_bias(residuals: np.ndarray, curve: np.ndarray) -> Dict[str, float]:
    """Mean label offset over the faces, in % of the scale, averaged over
    the curve points: its length, and its along and across parts."""
    mean = residuals.mean(0)[curve]  # (C, 2), local frame
    return dict(
        bias=float(np.linalg.norm(mean, axis=-1).mean() * 100),
        bias_along=float(np.abs(mean[:, 0]).mean() * 100),
        bias_across=float(np.abs(mean[:, 1]).mean() * 100),
    )


def format_table(results: Dict[str, dict]) -> str:
    """The printed table: one row per noise model, then the references."""

    def cell(m: Optional[dict]) -> str:
        if m is None:
            return '-'
        return f'{m["NME"]:.2f} ({m["NME_along"]:.2f}/{m["NME_across"]:.2f})'

    head = (
        '| noise model | label bias | label std (along/across) | '
        'OLS NME (along/across) | WLS NME (along/across) | WLS − OLS | '
        'WLS-res NME (along/across) | WLS-res − OLS |'
    )
    lines = [head, '|' + '---|' * 8]
    for name, r in results['noise'].items():
        std = f'{r["noise_std_along"]:.2f}/{r["noise_std_across"]:.2f}'
        ols = r['ols']['NME']
        lines.append(
            f'| {name} | {r["bias"]["bias"]:.2f} | {std} | '
            f'{cell(r["ols"])} | {cell(r["wls"])} | '
            f'{r["wls"]["NME"] - ols:+.3f} | {cell(r["wls_residual"])} | '
            f'{r["wls_residual"]["NME"] - ols:+.3f} |'
        )
    for name, m in results['reference'].items():
        lines.append(f'| {name} | - | - | {cell(m)} |' + ' - |' * 4)
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='OLS vs inverse-noise-covariance WLS read-outs of a '
        "trained model's frozen features, under each noise model"
    )
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--data-root', default='data/synthface_evidence')
    parser.add_argument(
        '--noise', nargs='+', default=list(NOISES), choices=NOISES
    )
    parser.add_argument(
        '--layout', default='wflw', help='annotation file layout name'
    )
    parser.add_argument('--out-json', help='also write the results here')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--ridge',
        type=float,
        default=DEFAULT_RIDGE,
        help='ridge relative to the mean squared feature (not on the '
        'intercept)',
    )
    parser.add_argument(
        '--min-std',
        type=float,
        default=DEFAULT_MIN_STD,
        help='floor on each principal noise std, as a fraction of d',
    )
    return parser.parse_args(argv)


def _load(args):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmaniso  # noqa: F401  (registers modules and the safe loader)
    from mmaniso.deploy.inference import load_model

    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    model = load_model(args.config, args.checkpoint, device=args.device)
    pipeline = deterministic_pipeline(cfg.train_dataloader.dataset.pipeline)
    return cfg, model, pipeline


def _scale(aligned: dict, warps: np.ndarray, clean_crop, norm_indices):
    """``d`` of each face in crop pixels, and what it is."""
    from mmaniso.evaluation.functional import keypoint_distances

    if aligned['interocular'] is not None:
        zoom = np.sqrt(np.abs(np.linalg.det(warps[:, :, :2])))  # (N,)
        return aligned['interocular'] * zoom, 'annotation interocular'
    return keypoint_distances(clean_crop, norm_indices), 'clean iod'


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmaniso.utils.output_paths import refuse_writing_inputs

    refuse_writing_inputs(
        [('--out-json', args.out_json)],
        [('the config', args.config), ('the checkpoint', args.checkpoint)],
        fix='name another --out-json file',
    )
    start = time.time()
    from mmaniso.datasets.point_types import get_point_types
    from mmaniso.evaluation.functional import norm_indices_for

    cfg, model, pipeline = _load(args)
    root = args.data_root

    def ann(split):
        return ANN.format(layout=args.layout, split=split)

    test_file = ann('test_clean')
    test_clean_given = osp.isfile(osp.join(root, test_file))
    if not test_clean_given:
        test_file = ann('test')  # its keypoints_clean are the truth
    train_ds = build_dataset(cfg, root, ann('train'), pipeline)
    test_ds = build_dataset(cfg, root, test_file, pipeline)
    name = train_ds.metainfo['dataset_name']
    point_types = get_point_types(name)
    neighbours = point_types.neighbours().numpy()
    norm_indices = norm_indices_for('inter_ocular', name)

    train = extract(model, train_ds, args.batch_size, 'train features')
    test = extract(model, test_ds, args.batch_size, 'test features')
    feature_seconds = time.time() - start
    mu = train['features'].mean(0)
    x_train, x_test = train['features'] - mu, test['features'] - mu

    # Truth: the clean test landmarks, in the crop.
    test_anns = align(
        read_annotations(osp.join(root, test_file)),
        test['ids'],
        test['names'],
        test_file,
    )
    gt_img = test_anns['keypoints'] if test_clean_given else test_anns['clean']
    if gt_img is None:
        raise ValueError(f'{test_file} has no keypoints_clean')
    gt = to_crop(gt_img, test['warps'])
    vis = test_anns['visible']
    if test_clean_given and not np.allclose(gt, test['labels'], atol=1e-2):
        raise AssertionError('the warps do not reproduce the test targets')

    def score(coef):
        pred = linear_predict(coef, x_test)
        return nme_report(pred, gt, vis, neighbours, norm_indices)

    results = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        data_root=root,
        num_train=len(x_train),
        num_test=len(x_test),
        num_features=x_train.shape[1],
        ridge=args.ridge,
        min_std=args.min_std,
        noise={},
        reference={},
    )
    if np.isfinite(test['head']).all():  # a head without its mean: NaN
        results['reference']['trained head (no flip test)'] = nme_report(
            test['head'], gt, vis, neighbours, norm_indices
        )
    clean_crop = None
    for noise in args.noise:
        path = ann(train_split(noise))
        rows = align(
            read_annotations(osp.join(root, path)),
            train['ids'],
            train['names'],
            path,
        )
        if rows['clean'] is None:
            raise ValueError(
                f'{path} has no keypoints_clean: the noise cannot be estimated'
            )
        y = to_crop(rows['keypoints'], train['warps'])
        clean = to_crop(rows['clean'], train['warps'])
        if noise == 'arc' and not np.allclose(y, train['labels'], atol=1e-2):
            raise AssertionError('the warps do not reproduce the targets')
        if clean_crop is None:
            clean_crop = clean
        elif not np.allclose(clean, clean_crop, atol=1e-2):
            raise ValueError(
                f'{path}: keypoints_clean differ from those of the first '
                'noise model: the files do not label the same faces'
            )
        scale, scale_name = _scale(rows, train['warps'], clean, norm_indices)
        frames, curve = local_frames(clean, neighbours, rows['visible'])
        residuals = local_residuals(y, clean, frames, scale)
        cov = noise_covariances(residuals, args.min_std)
        weights = precision_weights(cov, frames, scale)
        coef = ols_fit(x_train, y, args.ridge)
        ols = score(coef)
        wls = score(gls_fit(x_train, y, weights, args.ridge))
        # Feasible GLS: W from the OLS fit's training residuals, read-out
        # error and label noise together.
        fitted = linear_predict(coef, x_train)
        res_cov = noise_covariances(
            local_residuals(y, fitted, frames, scale), args.min_std
        )
        res_weights = precision_weights(res_cov, frames, scale)
        wls_res = score(gls_fit(x_train, y, res_weights, args.ridge))
        std = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))[curve]  # (C, 2)
        results['noise'][noise] = dict(
            ann_file=path,
            scale=scale_name,
            bias=label_bias(residuals, curve),
            noise_std_along=float(std[:, 0].mean() * 100),
            noise_std_across=float(std[:, 1].mean() * 100),
            ols=ols,
            wls=wls,
            wls_residual=wls_res,
        )
    if clean_crop is not None:
        results['reference']['clean labels, OLS'] = score(
            ols_fit(x_train, clean_crop, args.ridge)
        )
    results['seconds'] = round(time.time() - start, 1)
    results['feature_seconds'] = round(feature_seconds, 1)

    print(
        f'{len(x_train)} training and {len(x_test)} test faces, '
        f'{x_train.shape[1]} features; NME in % of the inter-ocular '
        'distance, label bias and std (curve points) in % of d'
    )
    print(format_table(results))
    print(
        f'{results["seconds"]:.1f} s ({feature_seconds:.1f} s loading the '
        'model and extracting features, the rest fitting)'
    )
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'results: {args.out_json}')
    return results


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
