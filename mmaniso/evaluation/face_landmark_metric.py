"""The face-alignment metric of the papers: NME, FR@t, AUC@t and the CED.

A thin MMEngine wrapper over :mod:`mmaniso.evaluation.functional`: it
collects predictions and ground truth, looks up the normalisation by
``dataset_meta['dataset_name']``, adds the per-subset figures and writes the
per-image errors and the CED plot.
"""

import json
import logging
import os
import os.path as osp
from typing import (
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmpose.registry import METRICS

from .ced_plot import plot_ced
from .functional import (
    NORMS,
    POINT_GROUP_KEYS,
    NormIndices,
    box_distances,
    curve_error_components,
    keypoint_distances,
    masked_per_image_nme,
    norm_indices_for,
    per_image_nme,
    summarise,
)
from .uncertainty import (
    ellipse_coverage,
    failure_detection,
    mean_scale,
    normalised_radius,
)

SubsetSpec = Union[Sequence[str], Mapping[str, str]]


def _as_array(value) -> np.ndarray:
    if hasattr(value, 'detach'):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _json_default(value):
    if isinstance(value, np.generic):  # numpy ids or flags
        return value.item()
    raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def _mean_point_groups(
    groups: Mapping[str, np.ndarray], mask: Optional[np.ndarray] = None
) -> Dict[str, float]:
    """The mean (%) of each point group's per-image NME over the images of
    ``mask`` (all by default) that have a point in the group."""
    out = {}
    for key, per_image in groups.items():
        values = per_image if mask is None else per_image[mask]
        values = values[~np.isnan(values)]
        if values.size:
            out[key] = float(values.mean() * 100)
    return out


def _load_json(path: str, what: str):
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    with open(path) as f:
        return json.load(f)


@METRICS.register_module()
class FaceLandmarkMetric(BaseMetric):
    """NME, failure rate and CED AUC of face landmarks, overall and per
    subset.

    Per image, NME is the mean point-to-point error over all keypoints
    divided by a normalising distance ``d`` of the ground truth:

    - ``'inter_ocular'``: outer eye corners (WFLW 60/72, 300W and
      COCO-WholeBody-Face 36/45, COFW 8/9);
    - ``'inter_pupil'``: pupils (WFLW 96/97, COFW 16/17; 300W the means of
      points 36-41 and 42-47);
    - ``'bbox'``: √(w·h) of the ground-truth face box of the data sample
      (``gt_instances.bboxes``). MMPose's face datasets build that box as
      the square of side ``200 * scale``, so ``d = 200 * scale``: for the
      AFLW files of ``tools/dataset_converters/convert_aflw.py`` this is
      √(w·h) of the released AFLW box (their ``box_size``).

    FR@t is the percentage of images with NME > t; AUC@t is the area under
    the CED up to t divided by t (Simpson's rule on a ``step`` grid).
    Reported keys: ``NME`` and ``FR@t`` in percent, ``AUC@t`` in [0, 1],
    e.g. ``NME``, ``FR@0.1``, ``AUC@0.1``; each subset adds the same keys
    as ``<subset>/NME`` etc.

    Point groups, when the point types of the layout are known (by
    ``point_types``, or looked up by ``dataset_name``), in percent of the
    same ``d`` and averaged over the faces like the NME:

    - ``NME_curve``: the mean error over the points on a curve that are
      not corners; ``NME_corners``: over the corners (the points with
      ``W = I`` in the anisotropic cost). Isolated points are in neither.
    - ``NME_along`` and ``NME_across``: the mean absolute component of the
      error ``p - g`` along the unit tangent of the ground-truth curve and
      along its normal, over the visible curve points that have a tangent
      (``gt_instances.keypoints_visible`` > 0). The tangents are the
      loss's, :func:`~mmaniso.ops.tangents.curve_tangents` of the ground
      truth (a neighbour of visibility 0 never steers one), so per point
      ``along² + across²`` is the squared error of the NME. A face with no
      such point is left out of their mean. With every point visible these
      are the points of ``NME_curve``.

    Each subset adds them as ``<subset>/NME_curve`` etc.

    Subsets are attribute flags of the annotations (an ``attributes`` dict
    on each annotation, as the converters of this project write them:
    WFLW's ``largepose`` ... ``blur``, 300W's ``common``/``challenging``,
    AFLW's ``frontal``) or annotation files whose annotation ids make the
    subset. MMPose's face datasets do not pass the raw annotation to the
    metric, so the flags are read from ``ann_file`` and joined on the
    annotation id (a data sample that does carry ``raw_ann_info`` is read
    directly).

    Outputs: ``<prefix>.nme.json`` (a list of ``{id, img_path, nme,
    subsets}``, ``nme`` as a fraction), ``<prefix>.ced.png`` and
    ``<prefix>.pred.npz`` (every face's prediction, small enough to keep
    with a run's records so that new measures can be read without
    retraining: ``ids`` (N,), ``residual`` = prediction - ground truth in
    image pixels as float16, shape (N, K, 2), exact to about 1e-3 of the
    error, ``norm`` the normalising distance, (N,), and, from a head with
    ``predict_scales``, ``ellipses``, (N, K, 3)). The prefix
    is ``outfile_prefix`` when given; otherwise the files go to the run's
    log folder (``<work_dir>/<timestamp>/``, found through the current
    MMLogger's log file) as ``<dataset_name>.nme.json`` and
    ``<dataset_name>.ced.png``. An output file of ``outfile_prefix`` that
    exists before this metric first writes it (left by another run) is
    refused, when the metric is built and again before writing, unless
    ``overwrite=True``; the metric replaces its own files at every
    evaluation. The run's log folder is new for every run, so nothing
    there is checked.

    Args:
        norm: ``'inter_ocular'``, ``'inter_pupil'`` or ``'bbox'``.
        norm_indices: The two normalising anchors, each a keypoint index or
            a group of indices whose mean is used, overriding the lookup by
            dataset name (e.g. ``(60, 72)``).
        thresholds: The t of FR@t and AUC@t.
        step: Grid spacing of the CED for the AUC integral.
        ann_file: The evaluated annotation file, read for the subset flags.
        subsets: Which subsets to report: names of attribute flags, or a
            dict from subset name to a flag name or to an annotation file
            (``*.json``). By default every flag found in ``ann_file``.
        point_types: The curves and corners of the point groups: a dataset
            name or a dict, as ``AnisotropicLoss`` takes them. By default
            looked up by ``dataset_meta['dataset_name']``, and no point
            group is reported for a layout without point types.
        outfile_prefix: Path prefix of the output files (see above).
        save_outputs: Whether to write the output files at all.
        overwrite: Replace output files of ``outfile_prefix`` that already
            exist (``tools/test.py --overwrite`` sets it).
        collect_device: ``'cpu'`` or ``'gpu'``, for distributed collection.
        prefix: Prefix of the metric keys, to tell evaluators apart.

    Example:
        >>> val_evaluator = dict(
        ...     type='FaceLandmarkMetric', norm='inter_ocular',
        ...     ann_file='data/wflw/annotations/face_landmarks_wflw_test.json')
    """

    # No prefix: the metrics keep their names (NME, FR@0.1, ...), and
    # MMEngine does not warn that none was set.
    default_prefix: Optional[str] = ''

    def __init__(
        self,
        norm: str = 'inter_ocular',
        norm_indices: Optional[NormIndices] = None,
        thresholds: Sequence[float] = (0.08, 0.10),
        step: float = 1e-4,
        ann_file: Optional[str] = None,
        subsets: Optional[SubsetSpec] = None,
        point_types: Optional[Union[str, dict]] = None,
        outfile_prefix: Optional[str] = None,
        save_outputs: bool = True,
        overwrite: bool = False,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if norm not in NORMS:
            raise ValueError(f'norm must be one of {NORMS}, got {norm!r}')
        if norm_indices is not None:
            if norm == 'bbox':
                raise ValueError(
                    "norm='bbox' normalises by the face box and takes no "
                    f'norm_indices, got {norm_indices!r}'
                )
            if isinstance(norm_indices, (str, bytes)) or (
                len(norm_indices) != 2
            ):
                raise ValueError(
                    'norm_indices must be a pair of anchors such as (60, 72) '
                    f'or ((36, 37), (42, 43)), got {norm_indices!r}'
                )
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds or min(thresholds) <= 0:
            raise ValueError(
                f'thresholds must be positive numbers, got {thresholds!r}'
            )
        if not 0 < step <= min(thresholds):
            raise ValueError(
                f'step must be in (0, {min(thresholds)}], got {step!r}'
            )
        if subsets is not None and isinstance(subsets, str):
            raise ValueError(
                f'subsets must be a list of flag names or a dict, got the '
                f'string {subsets!r}; write [{subsets!r}]'
            )
        if point_types is not None:
            from mmaniso.datasets.point_types import get_point_types

            # Checked now, so that a typo fails before the evaluation.
            get_point_types(point_types)
        # Plain stores of the arguments, as every registered class keeps them.
        self.norm = norm
        self.norm_indices = norm_indices
        self.point_types = point_types
        self.thresholds = thresholds
        self.step = step
        self.ann_file = ann_file
        self.subsets = subsets
        self.outfile_prefix = outfile_prefix
        self.save_outputs = save_outputs
        self.overwrite = overwrite
        self._ann_attributes: Optional[Dict] = None
        # Files this metric wrote itself, which later evaluations (every
        # validation of a training run) may replace.
        self._written: Set[str] = set()
        self._refuse_existing_outputs()

    # ------------------------------------------------------------ collect
    def process(
        self, data_batch: Sequence[dict], data_samples: Sequence[dict]
    ) -> None:
        """Keeps the keypoints, box and identity of each data sample.

        Args:
            data_batch: A batch from the dataloader (unused).
            data_samples: The model's outputs as dicts, each with
                ``pred_instances.keypoints`` and ``gt_instances.keypoints``
                of shape (1, K, 2) and, optionally,
                ``gt_instances.keypoints_visible`` of shape (1, K).
        """
        for sample in data_samples:
            pred = _as_array(sample['pred_instances']['keypoints'])
            gt_instances = sample['gt_instances']
            gt = _as_array(gt_instances['keypoints'])
            if pred.ndim == 3:
                if len(pred) != 1 or len(gt) != 1:
                    raise ValueError(
                        'FaceLandmarkMetric expects one face per data '
                        f'sample (top-down mode), got {len(pred)} '
                        f'predictions and {len(gt)} ground truths for '
                        f'{sample.get("img_path")!r}'
                    )
                pred, gt = pred[0], gt[0]
            ann_id = sample.get('id')
            if isinstance(ann_id, np.generic):
                ann_id = ann_id.item()
            result = dict(
                id=ann_id,
                img_path=sample.get('img_path'),
                pred=pred,
                gt=gt,
            )
            ellipses = sample['pred_instances'].get('keypoint_ellipses')
            if ellipses is not None:  # a head with predict_scales
                result['ellipses'] = _as_array(ellipses).reshape(-1, 3)
            if 'keypoints_visible' in gt_instances:
                visible = _as_array(gt_instances['keypoints_visible'])
                if visible.ndim == gt.ndim + 1:  # (1, K, 2): per coordinate
                    visible = visible[..., 0]
                result['visible'] = visible.reshape(-1)[: len(gt)]
            if self.norm == 'bbox':
                if 'bboxes' not in gt_instances:
                    raise ValueError(
                        "norm='bbox' needs the ground-truth box "
                        '(gt_instances.bboxes) in each data sample; keep '
                        "'bbox' in the dataset's output and PackPoseInputs"
                    )
                result['bbox'] = _as_array(gt_instances['bboxes']).reshape(-1)[
                    :4
                ]
            raw = sample.get('raw_ann_info')
            if isinstance(raw, dict) and 'attributes' in raw:
                result['attributes'] = dict(raw['attributes'])
            self.results.append(result)

    # ------------------------------------------------------------ compute
    def _norm_distances(self, results: List[dict], gt: np.ndarray):
        if self.norm == 'bbox':
            return box_distances(np.stack([r['bbox'] for r in results]))
        indices = self.norm_indices
        if indices is None:
            name = (self.dataset_meta or {}).get('dataset_name')
            if name is None:
                raise ValueError(
                    f'norm={self.norm!r} looks its keypoints up by '
                    "dataset_meta['dataset_name'], which is not set; give "
                    'norm_indices=(i, j)'
                )
            indices = norm_indices_for(self.norm, name)
        return keypoint_distances(gt, indices)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Computes the overall and per-subset figures and writes the
        outputs.

        Args:
            results: What :meth:`process` kept, gathered over all ranks.

        Returns:
            The metrics, keyed ``NME``, ``FR@t``, ``AUC@t``, the point
            groups ``NME_curve``, ``NME_along``, ``NME_across``,
            ``NME_corners`` and ``<subset>/...``; with predicted ellipses
            also ``Cover@1``, ``Cover@2``, ``Cover@3``, ``AUROC@8``,
            ``AUROC@10`` and ``Spearman_scale``.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        if not results:
            raise ValueError('FaceLandmarkMetric got no data samples')
        pred = np.stack([r['pred'] for r in results])  # (N, K, 2)
        gt = np.stack([r['gt'] for r in results])  # (N, K, 2)
        names = [f'id={r["id"]} ({r["img_path"]})' for r in results]
        nme = per_image_nme(pred, gt, self._norm_distances(results, gt), names)

        metrics = summarise(nme, self.thresholds, self.step)
        groups = self._point_group_nme(pred, gt, results, names)
        metrics.update(_mean_point_groups(groups))
        masks = self._subset_masks(results)
        for name, mask in masks.items():
            if not mask.any():
                print_log(
                    f'FaceLandmarkMetric: subset {name!r} has no image in '
                    'this evaluation; skipped',
                    logger=logger,
                    level=logging.WARNING,
                )
                continue
            subset = summarise(nme[mask], self.thresholds, self.step)
            subset.update(_mean_point_groups(groups, mask))
            for key, value in subset.items():
                metrics[f'{name}/{key}'] = value
        if all('ellipses' in r for r in results):
            metrics.update(self._uncertainty(results, pred, gt, nme))
        if self.save_outputs:
            self._write_outputs(results, nme, masks, logger)
        return metrics

    def _uncertainty(self, results, pred, gt, nme) -> Dict[str, float]:
        """Calibration and failure detection of predicted ellipses
        (:mod:`mmaniso.evaluation.uncertainty`): ``Cover@k``, the share of
        visible landmarks inside their k-scale ellipse (compare with
        ``expected_coverage``), ``AUROC@8``/``AUROC@10`` and
        ``Spearman_scale`` of the per-image mean scale against NME."""
        ellipses = np.stack([r['ellipses'] for r in results])
        visible = None
        if all('visible' in r for r in results):
            visible = np.stack([r['visible'] for r in results])
        rho = normalised_radius(pred - gt, ellipses)
        out = {
            f'Cover@{k:g}': v
            for k, v in ellipse_coverage(rho, visible=visible).items()
        }
        scale = mean_scale(ellipses, self._norm_distances(results, gt))
        detection = failure_detection(scale, nme)
        detection['Spearman_scale'] = detection.pop('Spearman')
        out.update(detection)
        return out

    def _get_point_types(self, num_keypoints: int):
        """The configured point types, else the dataset's; None when the
        dataset has none or they do not fit its keypoints."""
        from mmaniso.datasets.point_types import get_point_types

        if self.point_types is not None:
            types = get_point_types(self.point_types)
            if types.num_keypoints != num_keypoints:
                raise ValueError(
                    f'FaceLandmarkMetric: point_types {types.name!r} have '
                    f'{types.num_keypoints} keypoints but the evaluated '
                    f'data has {num_keypoints}; set point_types to its '
                    'layout'
                )
            return types
        name = (self.dataset_meta or {}).get('dataset_name')
        try:
            types = get_point_types(name)
        except (KeyError, ValueError, TypeError):
            return None
        return types if types.num_keypoints == num_keypoints else None

    def _point_group_nme(
        self, pred, gt, results, names
    ) -> Dict[str, np.ndarray]:
        """The per-image NME (fractions, shape (N,)) of each point group
        (see the class doc), NaN for an image without a point in the group;
        empty when the point types are unknown."""
        types = self._get_point_types(gt.shape[1])
        if types is None:
            return {}
        corners = sorted(types.corners)
        on_curve = sorted(
            {i for c in types.curves for i in c.indices} - set(corners)
        )
        dist = self._norm_distances(results, gt)
        out = {}
        for key, idx in (('NME_curve', on_curve), ('NME_corners', corners)):
            if idx:
                out[key] = per_image_nme(pred[:, idx], gt[:, idx], dist, names)
        visible = None
        if any('visible' in r for r in results):
            visible = np.stack(
                [r.get('visible', np.ones(gt.shape[1])) for r in results]
            )  # (N, K)
        along, across, valid = curve_error_components(
            pred, gt, types.neighbours(), visible
        )
        if valid.any():
            out['NME_along'] = masked_per_image_nme(along, valid, dist)
            out['NME_across'] = masked_per_image_nme(across, valid, dist)
        return {key: out[key] for key in POINT_GROUP_KEYS if key in out}

    # ------------------------------------------------------------ subsets
    def _attributes(self, results: List[dict]) -> Optional[List[dict]]:
        """The attribute flags of each result, or None if none are known."""
        if all('attributes' in r for r in results):
            return [r['attributes'] for r in results]
        if self.ann_file is None:
            return None
        if self._ann_attributes is None:
            data = _load_json(self.ann_file, 'ann_file of FaceLandmarkMetric')
            self._ann_attributes = {
                ann['id']: dict(ann.get('attributes') or {})
                for ann in data.get('annotations', [])
            }
        table = self._ann_attributes
        missing = [r['id'] for r in results if r['id'] not in table]
        if missing:
            raise ValueError(
                f'annotation id {missing[0]!r} of the evaluated data is not '
                f'in ann_file {self.ann_file}; ann_file must be the '
                'annotation file of the evaluated dataset'
            )
        return [table[r['id']] for r in results]

    def _subset_masks(self, results: List[dict]) -> Dict[str, np.ndarray]:
        ids = [r['id'] for r in results]
        spec = self.subsets
        attrs = None
        if spec is None or not isinstance(spec, Mapping):
            attrs = self._attributes(results)
        if spec is None:
            if attrs is None:
                return {}
            flags = {}  # ordered set: first appearance
            for a in attrs:
                flags.update(dict.fromkeys(a))
            spec = {name: name for name in flags}
        elif not isinstance(spec, Mapping):
            spec = {name: name for name in spec}

        masks = {}
        for name, source in spec.items():
            if str(source).endswith('.json'):
                data = _load_json(source, f'annotation file of subset {name}')
                members = {a['id'] for a in data.get('annotations', [])}
                masks[name] = np.array([i in members for i in ids])
                continue
            if attrs is None:
                attrs = self._attributes(results)
            if attrs is None:
                raise ValueError(
                    f'subset {name!r} reads the attribute flag {source!r}, '
                    'but the data samples carry no raw_ann_info and no '
                    'ann_file was given: set ann_file to the evaluated '
                    'annotation file'
                )
            for i, a in zip(ids, attrs):
                if source not in a:
                    raise ValueError(
                        f'annotation id {i!r} has no attribute {source!r} '
                        f'(it has {sorted(a)}); convert the data with '
                        'tools/dataset_converters/ or drop the subset'
                    )
            masks[name] = np.array([bool(a[source]) for a in attrs])
        return masks

    # ------------------------------------------------------------ outputs
    @staticmethod
    def output_files(prefix: str) -> Tuple[str, str]:
        """The per-image NME file and the CED plot written for ``prefix``."""
        return f'{prefix}.nme.json', f'{prefix}.ced.png'

    @staticmethod
    def predictions_file(prefix: str) -> str:
        """The per-face predictions written for ``prefix``."""
        return f'{prefix}.pred.npz'

    def _refuse_existing_outputs(self) -> None:
        """Raises if an ``outfile_prefix`` output file exists that this
        metric did not write, unless ``overwrite``."""
        if not (self.save_outputs and self.outfile_prefix) or self.overwrite:
            return
        for path in (
            *self.output_files(self.outfile_prefix),
            self.predictions_file(self.outfile_prefix),
        ):
            if osp.abspath(path) not in self._written and osp.exists(path):
                raise FileExistsError(
                    f'FaceLandmarkMetric: output file {path} already exists '
                    f'(outfile_prefix={self.outfile_prefix!r}) and would be '
                    'overwritten; set overwrite=True to replace it '
                    '(tools/test.py --overwrite does), or choose another '
                    'outfile_prefix'
                )

    def _output_prefix(self) -> Optional[str]:
        if self.outfile_prefix:
            return self.outfile_prefix
        log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
        if not log_file:
            return None
        name = (
            self.prefix
            or (self.dataset_meta or {}).get('dataset_name')
            or 'face'
        )
        return osp.join(osp.dirname(osp.abspath(log_file)), name)

    def _write_outputs(
        self,
        results: List[dict],
        nme: np.ndarray,
        masks: Dict[str, np.ndarray],
        logger: MMLogger,
    ) -> None:
        prefix = self._output_prefix()
        if prefix is None:
            print_log(
                'FaceLandmarkMetric: no run folder to write the per-image '
                'NMEs and CED to; set outfile_prefix',
                logger=logger,
            )
            return
        # A file may have appeared since the metric was built.
        self._refuse_existing_outputs()
        folder = osp.dirname(osp.abspath(prefix))
        os.makedirs(folder, exist_ok=True)
        json_file, png_file = self.output_files(prefix)
        per_image = [
            dict(
                id=r['id'],
                img_path=r['img_path'],
                nme=float(e),
                subsets=[n for n, m in masks.items() if m[i]],
            )
            for i, (r, e) in enumerate(zip(results, nme))
        ]
        with open(json_file, 'w') as f:
            json.dump(per_image, f, indent=0, default=_json_default)
        self._written.add(osp.abspath(json_file))
        pred_file = self.predictions_file(prefix)
        gt = np.stack([r['gt'] for r in results])
        residual = np.stack([r['pred'] for r in results]) - gt
        np.savez_compressed(
            pred_file,
            ids=np.array([r['id'] for r in results]),
            residual=residual.astype(np.float16),
            norm=np.asarray(
                self._norm_distances(results, gt), dtype=np.float32
            ),
            **(
                dict(
                    ellipses=np.stack([r['ellipses'] for r in results])
                    .astype(np.float32)
                )
                if all('ellipses' in r for r in results)
                else {}
            ),
        )
        self._written.add(osp.abspath(pred_file))
        curves = {'all': nme}
        curves.update({n: nme[m] for n, m in masks.items() if m.any()})
        dataset = (self.dataset_meta or {}).get('dataset_name', '')
        png_file = plot_ced(
            curves,
            png_file,
            max_nme=max(self.thresholds),
            thresholds=self.thresholds,
            step=self.step,
            title=f'CED {dataset} ({self.norm})'.replace('  ', ' '),
        )
        self._written.add(osp.abspath(png_file))
        print_log(
            f'FaceLandmarkMetric: per-image NMEs in {json_file}, CED in '
            f'{png_file}',
            logger=logger,
        )
