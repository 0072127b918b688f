"""Checks of a config's data that run before any model is built.

A missing data folder otherwise surfaces minutes later, deep inside a
dataloader worker; a keypoint count that differs from the metainfo surfaces
as a shape error in a loss, or not at all. Both are caught here and reported
with the file, the record and the fix.
"""

import json
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple

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


def _metainfo_keypoints(ds: dict) -> Tuple[Optional[int], str]:
    """Number of keypoints the dataset's metainfo declares, and its source."""
    from mmpose.registry import DATASETS

    ds_type = ds.get('type')
    cls = DATASETS.get(ds_type) if isinstance(ds_type, str) else ds_type
    if cls is None or not hasattr(cls, '_load_metainfo'):
        return None, ''
    raw = ds.get('metainfo')
    meta = cls._load_metainfo(dict(raw) if raw else None)
    source = (raw or getattr(cls, 'METAINFO', {})).get('from_file', '')
    name = getattr(cls, '__name__', str(ds_type))
    return meta.get('num_keypoints'), f'{name} metainfo {source}'.strip()


def check_keypoint_counts(
    ann_file: str, num_keypoints: int, source: str
) -> None:
    """Raises if any annotation of a COCO-style file has another count.

    Args:
        ann_file: Path of the JSON annotation file.
        num_keypoints: The count the dataset's metainfo declares.
        source: Where that count comes from, for the message.
    """
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataCheckError(
            f'{ann_file}: not valid JSON ({e}); re-create it with the '
            f'converter for its dataset ({DOC})'
        ) from e
    anns = data.get('annotations') if isinstance(data, dict) else None
    if not isinstance(anns, list):
        raise DataCheckError(
            f'{ann_file}: no "annotations" list; MMPose expects a '
            f'COCO-style file with "images", "annotations" and '
            f'"categories" ({DOC})'
        )
    images = {img.get('id'): img for img in data.get('images', [])}
    for i, ann in enumerate(anns):
        kpts = ann.get('keypoints')
        where = (
            f'{ann_file}: annotation #{i} (id={ann.get("id")}, image '
            f'{images.get(ann.get("image_id"), {}).get("file_name")!r})'
        )
        if not isinstance(kpts, list) or len(kpts) % 3:
            raise DataCheckError(
                f'{where}: field "keypoints" must be a flat list '
                f'[x1, y1, v1, x2, y2, v2, ...] with 3 numbers per point'
            )
        if len(kpts) // 3 != num_keypoints:
            raise DataCheckError(
                f'{where} has {len(kpts) // 3} keypoints, but the '
                f'{source} declares {num_keypoints}. Fix the annotation, or '
                f'give the dataset a metainfo=dict(from_file=...) for a '
                f'{len(kpts) // 3}-point layout.'
            )


def check_data_files(cfg, splits=('train', 'val', 'test')) -> None:
    """Checks that every dataset of ``cfg`` in ``splits`` has its data.

    Args:
        cfg (mmengine.Config): A full run config.
        splits: Which dataloaders to check.

    Raises:
        DataCheckError: naming the expected files and how to prepare them,
            or the annotation whose keypoint count is wrong.
    """
    problems: List[str] = []
    hints = set()
    to_count = []
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
            to_count.append((ann, ds))
    if problems:
        steps = '\n'.join(f'  - {h}' for h in sorted(hints) if h)
        raise DataCheckError(
            'Expected data files are missing:\n'
            + '\n'.join(problems)
            + f'\nPrepare the data as described in {DOC}'
            + (f':\n{steps}' if steps else '.')
            + f'\n{FIXTURE_HINT}'
        )
    # val and test often share a file: count each file once.
    for ann, ds in dict(to_count).items():
        count, source = _metainfo_keypoints(ds)
        if count:
            check_keypoint_counts(ann, count, source)
