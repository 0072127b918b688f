"""Checks of a config's data that run before any model is built.

A missing data folder otherwise surfaces minutes later, deep inside a
dataloader worker; a keypoint count that differs from the metainfo surfaces
as a shape error in a loss, or not at all. Both are caught here and reported
with the file, the record and the fix.
"""

import json
import math
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

DOC = 'docs/data_preparation.md'

# How each dataset is prepared, quoted in the missing-data message.
_MMPOSE_LAYOUT = (
    "unpack the images to <data_root>/images/ and put MMPose's JSON "
    'annotations in <data_root>/annotations/.'
)
PREPARATION = {
    'WFLWDataset': (
        'WFLW: download WFLW_images.tar.gz and WFLW_annotations.tar.gz from '
        'https://wywu.github.io/projects/LAB/WFLW.html, then '
        'python tools/dataset_converters/convert_wflw.py <data_root>'
    ),
    'Face300WDataset': (
        '300W: download the iBUG 300W images and .pts files (afw, helen, '
        'lfpw, ibug, 300W private), then '
        'python tools/dataset_converters/convert_300w.py <data_root>'
    ),
    'AFLWDataset': (
        'AFLW: get the images and AFLWinfo_release.mat, then '
        'python tools/dataset_converters/convert_aflw.py <data_root>'
    ),
    'COFWDataset': 'COFW: download the COFW images, ' + _MMPOSE_LAYOUT,
}
FIXTURE_HINT = (
    'Without any download, generate SynthFace (rendered faces in the WFLW '
    'layout): python tools/dataset_converters/make_synthface.py '
    'data/synthface'
)


class DataCheckError(Exception):
    """Raised when a config's data is missing or inconsistent."""


def _dataset_cfgs(cfg) -> Iterator[Tuple[str, dict]]:
    """Yields ``(split, dataset_cfg)`` for every leaf dataset of a config."""

    def leaves(ds):
        if ds is None:
            return
        if 'datasets' in ds:
            for sub in ds['datasets']:
                yield from leaves(sub)
        elif 'dataset' in ds:
            yield from leaves(ds['dataset'])
        else:
            yield ds

    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            for ds in leaves(loader.get('dataset')):
                yield split, ds


def _missing_or_empty(folder: str) -> bool:
    if not osp.isdir(folder):
        return True
    with os.scandir(folder) as entries:
        return next(entries, None) is None


def _join(root: Optional[str], path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def expected_files(ds: dict) -> Tuple[Optional[str], Optional[str]]:
    """The annotation file and image folder a dataset config points to."""
    root = ds.get('data_root') or ''
    ann = ds.get('ann_file')
    img = (ds.get('data_prefix') or {}).get('img')
    return (
        _join(root, ann) if ann else None,
        _join(root, img) if img is not None else None,
    )


def _dataset_class(ds: dict):
    """The registered class of a dataset config, or None."""
    from mmpose.registry import DATASETS

    ds_type = ds.get('type')
    return DATASETS.get(ds_type) if isinstance(ds_type, str) else ds_type


def _metainfo_keypoints(ds: dict) -> Tuple[Optional[int], str]:
    """Number of keypoints the dataset's metainfo declares, and its source."""
    cls = _dataset_class(ds)
    if cls is None or not hasattr(cls, '_load_metainfo'):
        return None, ''
    raw = ds.get('metainfo')
    meta = cls._load_metainfo(dict(raw) if raw else None)
    source = (raw or getattr(cls, 'METAINFO', {})).get('from_file', '')
    name = getattr(cls, '__name__', str(ds.get('type')))
    return meta.get('num_keypoints'), f'{name} metainfo {source}'.strip()


# MMPose's face datasets whose parse_data_info builds the box from
# ann['center'] and ann['scale'] (a KeyError mid-load when one is missing);
# COFW, LaPa and the COCO-style base read ann['bbox'] instead.
CENTRE_SCALE_DATASETS = ('WFLWDataset', 'Face300WDataset', 'AFLWDataset')
# CocoWholeBodyFaceDataset reads the face's own fields of a whole-body
# annotation, and skips faces marked invalid.
WHOLEBODY_FACE_DATASET = 'CocoWholeBodyFaceDataset'


def _type_name(type_) -> str:
    """The class name of a config's ``type`` (string, scoped or class)."""
    if isinstance(type_, str):
        return type_.rsplit('.', 1)[-1]
    return getattr(type_, '__name__', '')


def _reader_names(ds: dict) -> List[str]:
    """Names of the dataset's class and its bases (to spot subclasses)."""
    cls = _dataset_class(ds)
    if isinstance(cls, type):
        return [c.__name__ for c in cls.__mro__]
    return [_type_name(ds.get('type'))]


def pose_balancing_users(cfg) -> Optional[str]:
    """What in ``cfg`` bins the training faces by pose, or None.

    Both :class:`~mmaniso.datasets.PoseBalancedSampler` and
    :class:`~mmaniso.engine.PoseBalancingHook` (which also fills the mean
    shape) align every training face by its visible points.
    """
    users = []
    sampler = (cfg.get('train_dataloader') or {}).get('sampler') or {}
    if _type_name(sampler.get('type')) == 'PoseBalancedSampler':
        users.append("train_dataloader's PoseBalancedSampler")
    for hook in cfg.get('custom_hooks') or []:
        if isinstance(hook, dict):
            if _type_name(hook.get('type')) == 'PoseBalancingHook':
                users.append('PoseBalancingHook in custom_hooks')
    return ' and '.join(users) or None


_RECREATE = f're-create the file with the converter for its dataset ({DOC})'


def _load_json(ann_file: str):
    try:
        with open(ann_file) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataCheckError(
            f'{ann_file}: not valid JSON ({e}); {_RECREATE}'
        ) from e


def _hashable(value) -> bool:
    return isinstance(value, (int, float, str)) or value is None


def _first_bad_number(values) -> Optional[Tuple[int, object]]:
    """(position, value) of the first non-numeric or non-finite entry of a
    flat list, or None when all are finite numbers."""
    try:
        # Fast path: a sum is finite only if every term is (json.load turns
        # NaN/Infinity into floats); a string or None raises TypeError.
        if math.isfinite(sum(values)):
            return None
    except TypeError:
        pass
    for pos, value in enumerate(values):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return pos, value
    return None  # a finite sum that overflowed


def _check_numbers(where: str, field: str, values, length: int) -> None:
    """Raises unless ``values`` is ``length`` finite numbers (a scalar when
    ``length`` is 0)."""
    flat = [values] if length == 0 else values
    shape = 'a number' if length == 0 else f'a list of {length} numbers'
    if not isinstance(flat, list) or (length and len(flat) != length):
        raise DataCheckError(
            f'{where}: field "{field}" must be {shape}, got {values!r}; '
            f'fix the annotation or {_RECREATE}'
        )
    bad = _first_bad_number(flat)
    if bad is not None:
        pos, value = bad
        at = f' at position {pos}' if length else ''
        raise DataCheckError(
            f'{where}: field "{field}" holds {value!r}{at}, not a finite '
            f'number; MMPose would train on it and the loss turns NaN. Fix '
            f'or drop the annotation, or {_RECREATE}'
        )


def _check_keypoints(
    where: str, field: str, kpts, num_keypoints, source
) -> None:
    if not isinstance(kpts, list) or len(kpts) % 3:
        raise DataCheckError(
            f'{where}: field "{field}" must be a flat list '
            f'[x1, y1, v1, x2, y2, v2, ...] with 3 numbers per point'
        )
    if num_keypoints and len(kpts) // 3 != num_keypoints:
        raise DataCheckError(
            f'{where} has {len(kpts) // 3} keypoints, but the '
            f'{source} declares {num_keypoints}. Fix the annotation, or '
            f'give the dataset a metainfo=dict(from_file=...) for a '
            f'{len(kpts) // 3}-point layout.'
        )
    bad = _first_bad_number(kpts)
    if bad is not None:
        pos, value = bad
        raise DataCheckError(
            f'{where}: field "{field}" holds {value!r} at position {pos} '
            f'(point {pos // 3}, {"xyv"[pos % 3]}), not a finite number; '
            f'MMPose would train on it and the loss turns NaN. Fix or drop '
            f'the annotation, or {_RECREATE}'
        )


def _image_index(ann_file: str, data: dict) -> Dict[object, dict]:
    """The file's images by id; refuses a missing list and repeated ids."""
    images = data.get('images')
    if not isinstance(images, list):
        raise DataCheckError(
            f'{ann_file}: no "images" list; MMPose pairs each annotation '
            f'with its image through "images" ([{{"id", "file_name", '
            f'"height", "width"}}, ...]); {_RECREATE}'
        )
    by_id: Dict[object, dict] = {}
    first_index: Dict[object, int] = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict) or not _hashable(img.get('id')):
            raise DataCheckError(
                f'{ann_file}: image #{i} ({img!r:.80}) has no usable "id"; '
                f'every entry of "images" needs an id, a file_name, a '
                f'height and a width; {_RECREATE}'
            )
        img_id = img['id']
        if img_id in by_id:
            raise DataCheckError(
                f'{ann_file}: image #{i} ({img.get("file_name")!r}) has '
                f'the id {img_id!r} of image #{first_index[img_id]} '
                f'({by_id[img_id].get("file_name")!r}); MMPose would pair '
                f"one image's annotations with the other. Give every image "
                f"its own id (and point each annotation's image_id at it), "
                f'or {_RECREATE}'
            )
        by_id[img_id] = img
        first_index[img_id] = i
    return by_id


def check_annotation_file(
    ann_file: str,
    num_keypoints: Optional[int] = None,
    source: str = '',
    reader: Sequence[str] = (),
    require_visible: Optional[str] = None,
) -> None:
    """Raises if a COCO-style face annotation file would load wrongly.

    Reads the file once and refuses, naming the file, the record (index,
    id, image file name) and the field: invalid JSON, a missing ``images``
    or empty ``annotations`` list, repeated image or annotation ids, an
    annotation without ``image_id`` or whose image is not listed, a
    keypoint list of the wrong shape or count, a NaN, infinite or
    non-numeric keypoint, ``bbox``, ``center`` or ``scale``, a missing
    ``center``/``scale`` where the dataset reads them, and (with
    ``require_visible``) a face without any visible point.

    Args:
        ann_file: Path of the JSON annotation file.
        num_keypoints: The count the dataset's metainfo declares; None
            skips the count.
        source: Where that count comes from, for the message.
        reader: Names of the dataset class and its bases; decides which
            fields the dataset reads (see ``CENTRE_SCALE_DATASETS``).
        require_visible: What needs a visible point on every face (e.g.
            pose balancing of the train split), for the message; None
            allows faces without one.
    """
    data = _load_json(ann_file)
    anns = data.get('annotations') if isinstance(data, dict) else None
    if not isinstance(anns, list):
        raise DataCheckError(
            f'{ann_file}: no "annotations" list; MMPose expects a '
            f'COCO-style file with "images", "annotations" and '
            f'"categories" ({DOC})'
        )
    images = _image_index(ann_file, data)
    if not anns:
        raise DataCheckError(
            f'{ann_file}: the "annotations" list is empty, so the dataset '
            f'has no face to train or evaluate on; {_RECREATE}'
        )
    wholebody = WHOLEBODY_FACE_DATASET in reader
    kpt_field = 'face_kpts' if wholebody else 'keypoints'
    box_fields = ('face_box',) if wholebody else ('bbox',)
    centre_scale = any(name in CENTRE_SCALE_DATASETS for name in reader)
    reader_name = reader[0] if reader else 'the dataset'
    ann_index: Dict[object, int] = {}
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise DataCheckError(
                f'{ann_file}: annotation #{i} is {ann!r:.80}, not an object '
                f'of "id", "image_id", "keypoints", ...; {_RECREATE}'
            )
        ann_id, img_id = ann.get('id'), ann.get('image_id')
        image = images.get(img_id) if _hashable(img_id) else None
        where = (
            f'{ann_file}: annotation #{i} (id={ann_id}, image '
            f'{(image or {}).get("file_name")!r})'
        )
        if 'image_id' not in ann:
            raise DataCheckError(
                f'{where}: no field "image_id"; MMPose finds the image of '
                f'an annotation through it. Add the id of its entry in '
                f'"images", or {_RECREATE}'
            )
        if image is None:
            raise DataCheckError(
                f'{where}: field "image_id" is {img_id!r}, which no entry '
                f'of "images" has, so MMPose would silently drop the face. '
                f'Add its image to "images" or fix the image_id, or '
                f'{_RECREATE}'
            )
        if not _hashable(ann_id):
            raise DataCheckError(
                f'{where}: no usable field "id"; every annotation needs its '
                f'own id; {_RECREATE}'
            )
        if ann_id in ann_index:
            raise DataCheckError(
                f'{where}: field "id" repeats the id of annotation '
                f'#{ann_index[ann_id]}; MMPose keys annotations by id, so '
                f'one would silently replace the other. Give every '
                f'annotation its own id, or {_RECREATE}'
            )
        ann_index[ann_id] = i
        if wholebody and not ann.get('face_valid', True):
            continue  # MMPose skips invalid faces without reading them
        kpts = ann.get(kpt_field)
        _check_keypoints(where, kpt_field, kpts, num_keypoints, source)
        if wholebody and max(kpts, default=0) <= 0:
            continue  # an unlabelled face, skipped by MMPose too
        for field in box_fields:
            if field in ann:
                _check_numbers(where, field, ann[field], 4)
        if centre_scale:
            for field in ('center', 'scale'):
                if field not in ann:
                    raise DataCheckError(
                        f'{where}: no field "{field}"; {reader_name} builds '
                        f'the face box from "center" ([cx, cy]) and '
                        f'"scale" (box side / 200). Add both, or '
                        f'{_RECREATE}'
                    )
        if 'center' in ann:
            _check_numbers(where, 'center', ann['center'], 2)
        if 'scale' in ann:
            _check_numbers(where, 'scale', ann['scale'], 0)
            if centre_scale and ann['scale'] <= 0:
                raise DataCheckError(
                    f'{where}: field "scale" is {ann["scale"]!r}; the face '
                    f'box side / 200 must be positive. Fix the annotation, '
                    f'or {_RECREATE}'
                )
        if require_visible and max(kpts[2::3], default=0) <= 0:
            raise DataCheckError(
                f'{where}: no visible point (every visibility flag v of '
                f'field "{kpt_field}" is 0), but the {require_visible} '
                f'aligns each training face by its visible points. Set v to '
                f'1 or 2 for its labelled points, or drop the annotation '
                f'from the train file.'
            )


def check_keypoint_counts(
    ann_file: str, num_keypoints: int, source: str
) -> None:
    """Raises if any annotation of a COCO-style file has another count.

    Runs :func:`check_annotation_file` with the dataset-independent checks.

    Args:
        ann_file: Path of the JSON annotation file.
        num_keypoints: The count the dataset's metainfo declares.
        source: Where that count comes from, for the message.
    """
    check_annotation_file(ann_file, num_keypoints, source)


def check_data_files(cfg, splits=('train', 'val', 'test')) -> None:
    """Checks that every dataset of ``cfg`` in ``splits`` has its data.

    Args:
        cfg (mmengine.Config): A full run config.
        splits: Which dataloaders to check.

    Raises:
        DataCheckError: naming the expected files and how to prepare them,
            or the file, annotation and field that would load wrongly
            (:func:`check_annotation_file`). Train files must give every
            face a visible point when the config balances poses.
    """
    problems: List[str] = []
    hints = set()
    to_check: Dict[str, dict] = {}
    balancing = pose_balancing_users(cfg)
    needs_visible = set()
    for split, ds in _dataset_cfgs(cfg):
        if split not in splits:
            continue
        ann, img = expected_files(ds)
        missing = []
        if ann and not osp.isfile(ann):
            missing.append(f'  {ann}  (annotation file)')
        if img is not None and _missing_or_empty(img):
            missing.append(f'  {img}  (image folder, missing or empty)')
        if missing:
            problems.append(
                f'{split} data of {ds.get("type")}:\n' + '\n'.join(missing)
            )
            hints.add(PREPARATION.get(ds.get('type'), ''))
        elif ann:
            to_check.setdefault(ann, ds)
            if split == 'train' and balancing:
                needs_visible.add(ann)
    if problems:
        steps = '\n'.join(f'  - {h}' for h in sorted(hints) if h)
        raise DataCheckError(
            'Expected data files are missing:\n'
            + '\n'.join(problems)
            + f'\nPrepare the data as described in {DOC}'
            + (f':\n{steps}' if steps else '.')
            + f'\n{FIXTURE_HINT}'
        )
    # val and test often share a file: read each file once.
    for ann, ds in to_check.items():
        count, source = _metainfo_keypoints(ds)
        check_annotation_file(
            ann,
            count,
            source,
            reader=_reader_names(ds),
            require_visible=balancing if ann in needs_visible else None,
        )
