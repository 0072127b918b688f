"""Keypoint layouts of the face datasets: the facts every part reads.

One :class:`Layout` per MMPose ``dataset_name``: the keypoint count, the
outer eye corners (inter-ocular distance), the pupils (inter-pupil
distance), the standard normalisation, the 0/1 subset flags the annotations
carry, the annotation file names and, for layouts that pick their points
from WFLW's 98, the index map. The metric, the converters, SynthFace, the
test fixture, the point types and the benchmarks all read them here, so a
fact is written once. Indices are 0-based; *left* and *right* are the
image's (the subject's right eye is the image's left eye).

Pure data and numpy: nothing here imports mmengine or mmpose, so
:mod:`mmaniso.evaluation.functional` and ``mmaniso.ops`` may read it.

Example:
    >>> get_layout('wflw').outer_eye_corners
    (60, 72)
    >>> int(get_layout('300w').from_wflw[36])  # 300W's 36 is WFLW's 60
    60
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

# One end of a normalising segment: a keypoint index, or several whose mean
# is the end (an eye centre from the points around the eye).
Anchor = Union[int, Tuple[int, ...]]


@dataclass(frozen=True, eq=False)
class Layout:
    """The keypoint layout of one dataset.

    Attributes:
        name: MMPose's ``dataset_name``.
        num_keypoints: Number of keypoints K.
        metainfo: MMPose's metainfo file (keypoint names, flip pairs),
            relative to MMPose's package data.
        outer_eye_corners: The image-left eye's outer corner and the
            image-right eye's outer corner; their distance is the
            inter-ocular distance.
        pupils: The two pupil anchors, image-left first: a pupil's index,
            or the points around an eye whose mean stands in for a pupil
            the dataset does not annotate (300W).
        norm: The normalisation the dataset's NME is reported with:
            ``'inter_ocular'`` or ``'bbox'`` (the face box).
        subset_flags: The 0/1 attribute flags that mmaniso's converters and
            SynthFace keep in each annotation; each flag defines a subset.
        ann_file: The annotation file name, with ``{split}`` for the split,
            as MMPose's configs (and mmaniso's converters, fixture and
            SynthFace) name it.
        from_wflw: For each keypoint, the WFLW keypoint it is, shape (K,),
            int64, read-only: the identity for WFLW, None where the layout
            is no subset of WFLW's.
    """

    name: str
    num_keypoints: int
    metainfo: str
    outer_eye_corners: Tuple[int, int]
    pupils: Tuple[Anchor, Anchor]
    norm: str
    subset_flags: Tuple[str, ...]
    ann_file: str
    from_wflw: Optional[np.ndarray]


def _index_map(indices: Sequence[int]) -> np.ndarray:
    """A read-only int64 index array: the one copy may not be edited."""
    out = np.array(list(indices), dtype=np.int64)
    out.setflags(write=False)
    return out


# WFLW -> 300W: the 68-point layout is a subset of the 98-point one (the
# contour at every other point, the upper brow edges, the eyes without the
# mid-lid points, the whole mouth). Facts from the datasets' definitions.
WFLW_TO_300W = _index_map(
    list(range(0, 33, 2))
    + list(range(33, 38))
    + list(range(42, 47))
    + list(range(51, 60))
    + [60, 61, 63, 64, 65, 67]
    + [68, 69, 71, 72, 73, 75]
    + list(range(76, 96))
)

# WFLW -> AFLW-19: brows as outer end, middle, inner end; eyes as outer
# corner, pupil, inner corner; nose wings and tip; mouth corners with the
# upper inner-lip centre (90) standing in for the mouth centre; the chin.
WFLW_TO_AFLW = _index_map(
    [33, 35, 37, 42, 44, 46]  # brows
    + [60, 96, 64, 68, 97, 72]  # eyes
    + [55, 54, 59]  # nose
    + [76, 90, 82]  # mouth
    + [16]  # chin
)

# WFLW's six attribute flags, in the order of the official lists' columns;
# MMPose's subset files are named after them (face_landmarks_wflw_test_
# largepose.json, ...).
WFLW_ATTRIBUTES = (
    'largepose',
    'expression',
    'illumination',
    'makeup',
    'occlusion',
    'blur',
)

# 300W has no pupils: the eye centres are the means of the six points
# around each eye (STAR, AWing).
_300W_EYE_CENTRES = (tuple(range(36, 42)), tuple(range(42, 48)))

#: The layout of each dataset, keyed by MMPose's ``dataset_name``.
# One record per dataset, written out: a table of facts, not logic.
LAYOUTS: Dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            name='wflw',
            num_keypoints=98,
            metainfo='configs/_base_/datasets/wflw.py',
            outer_eye_corners=(60, 72),
            pupils=(96, 97),
            norm='inter_ocular',
            subset_flags=WFLW_ATTRIBUTES,
            ann_file='face_landmarks_wflw_{split}.json',
            from_wflw=_index_map(range(98)),
        ),
        Layout(
            name='300w',
            num_keypoints=68,
            metainfo='configs/_base_/datasets/300w.py',
            outer_eye_corners=(36, 45),
            pupils=_300W_EYE_CENTRES,
            norm='inter_ocular',
            # valid: LFPW + HELEN test (common), iBUG (challenging); test:
            # the private set's two halves.
            subset_flags=('common', 'challenging', 'indoor', 'outdoor'),
            ann_file='face_landmarks_300w_{split}.json',
            from_wflw=WFLW_TO_300W,
        ),
        Layout(
            name='aflw',
            num_keypoints=19,
            metainfo='configs/_base_/datasets/aflw.py',
            outer_eye_corners=(6, 11),
            pupils=(7, 10),  # the eye centres
            norm='bbox',
            subset_flags=('frontal',),  # all 19 points visible
            ann_file='face_landmarks_aflw_{split}.json',
            from_wflw=WFLW_TO_AFLW,
        ),
        Layout(
            name='cofw',
            num_keypoints=29,
            metainfo='configs/_base_/datasets/cofw.py',
            outer_eye_corners=(8, 9),
            pupils=(16, 17),
            norm='inter_ocular',
            subset_flags=(),
            ann_file='cofw_{split}.json',
            from_wflw=None,
        ),
        Layout(
            name='coco_wholebody_face',
            # The 300W layout (MMPose's COCO-WholeBody-Face metainfo).
            num_keypoints=68,
            metainfo='configs/_base_/datasets/coco_wholebody_face.py',
            outer_eye_corners=(36, 45),
            pupils=_300W_EYE_CENTRES,
            norm='inter_ocular',
            subset_flags=(),
            ann_file='coco_wholebody_{split}_v1.0.json',
            from_wflw=WFLW_TO_300W,
        ),
    )
}


def get_layout(dataset_name: str) -> Layout:
    """The layout of a dataset.

    Args:
        dataset_name: MMPose's ``dataset_meta['dataset_name']``.

    Returns:
        Layout: Its facts.

    Raises:
        ValueError: For a dataset without a layout here.
    """
    if dataset_name not in LAYOUTS:
        raise ValueError(
            f'no keypoint layout known for dataset {dataset_name!r}; known '
            f'dataset names: {", ".join(sorted(LAYOUTS))}'
        )
    return LAYOUTS[dataset_name]
