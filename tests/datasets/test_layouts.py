"""Layouts: each dataset's facts agree with MMPose's metainfo and with
each other, and every former copy now reads the one source."""

import numpy as np
import pytest
from mmpose.datasets.datasets.utils import parse_pose_metainfo

from mmaniso.datasets.layouts import (
    LAYOUTS,
    WFLW_TO_300W,
    WFLW_TO_AFLW,
    get_layout,
)
from mmaniso.datasets.point_types import get_point_types


def _metainfo(layout):
    return parse_pose_metainfo(dict(from_file=layout.metainfo))


def _anchor(anchor):
    return (anchor,) if isinstance(anchor, int) else tuple(anchor)


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_layout_matches_mmpose_metainfo_and_its_flip_pairs(name):
    layout = LAYOUTS[name]
    meta = _metainfo(layout)
    assert layout.name == name == meta['dataset_name']
    assert layout.num_keypoints == meta['num_keypoints']
    flip = meta['flip_indices']
    # The two ends of each normalising segment are each other's mirror.
    left, right = layout.outer_eye_corners
    assert left != right and flip[left] == right and flip[right] == left
    left, right = (_anchor(a) for a in layout.pupils)
    assert sorted(flip[i] for i in left) == sorted(right)
    for i in left + right + layout.outer_eye_corners:
        assert 0 <= i < layout.num_keypoints
    assert layout.norm in ('inter_ocular', 'bbox')
    assert len(set(layout.subset_flags)) == len(layout.subset_flags)
    assert '{split}' in layout.ann_file


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_layout_agrees_with_the_point_types(name):
    layout = LAYOUTS[name]
    pt = get_point_types(name)
    assert pt.num_keypoints == layout.num_keypoints
    assert set(layout.outer_eye_corners) <= set(pt.corners)
    for anchor in layout.pupils:
        if isinstance(anchor, int):  # an annotated pupil lies on no curve
            assert anchor in pt.isolated


@pytest.mark.parametrize(
    'name', [n for n in sorted(LAYOUTS) if LAYOUTS[n].from_wflw is not None]
)
def test_maps_from_wflw_are_injective_and_keep_what_they_map(name):
    layout, wflw = LAYOUTS[name], LAYOUTS['wflw']
    index = layout.from_wflw
    assert index.dtype == np.int64 and index.shape == (layout.num_keypoints,)
    assert not index.flags.writeable
    assert len(set(index.tolist())) == len(index)  # injective
    assert index.min() >= 0 and index.max() < wflw.num_keypoints
    # The eye corners and (annotated) pupils are WFLW's.
    assert tuple(index[list(layout.outer_eye_corners)]) == (
        wflw.outer_eye_corners
    )
    for anchor, wflw_pupil in zip(layout.pupils, wflw.pupils):
        if isinstance(anchor, int):
            assert index[anchor] == wflw_pupil
    # Mirroring commutes with the map: a point's partner maps to its
    # image's partner.
    flip = _metainfo(layout)['flip_indices']
    wflw_flip = np.array(_metainfo(wflw)['flip_indices'])
    np.testing.assert_array_equal(wflw_flip[index], index[flip])


def test_aflw_mouth_centre_is_the_upper_inner_lip_centre():
    # WFLW 90 is the middle of the upper inner lip (88-92), where the lips
    # meet; a benchmark once used 85, the lower outer lip.
    assert WFLW_TO_AFLW[16] == 90
    assert get_layout('wflw').from_wflw.tolist() == list(range(98))


def test_unknown_dataset_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="'ibug'.*300w, aflw, .*wflw"):
        get_layout('ibug')


def test_former_copies_read_the_layouts():
    from mmaniso.datasets import point_types
    from mmaniso.datasets.converters import aflw, face300w, wflw
    from mmaniso.evaluation import functional
    from mmaniso.synthface import face_template, writer
    from mmaniso.synthface import face_template_3d as t3d
    from mmaniso.testing import fixture

    assert face_template.WFLW_TO_300W is WFLW_TO_300W
    assert face_template.WFLW_TO_AFLW is WFLW_TO_AFLW
    assert LAYOUTS['300w'].from_wflw is WFLW_TO_300W
    assert LAYOUTS['coco_wholebody_face'].from_wflw is WFLW_TO_300W
    assert LAYOUTS['aflw'].from_wflw is WFLW_TO_AFLW

    assert wflw.ATTRIBUTES is LAYOUTS['wflw'].subset_flags
    assert writer.ATTRIBUTES is LAYOUTS['wflw'].subset_flags
    names = 'largepose expression illumination makeup occlusion blur'
    assert wflw.ATTRIBUTES == tuple(names.split())
    for module, name in ((wflw, 'wflw'), (face300w, '300w'), (aflw, 'aflw')):
        assert module.NUM_KEYPOINTS == LAYOUTS[name].num_keypoints

    assert t3d.NUM_POINTS == 98
    assert t3d.OUTER_EYE_CORNERS is LAYOUTS['wflw'].outer_eye_corners
    assert t3d.PUPILS.tolist() == [96, 97]

    # The metric's normalising indices, with the values they always had.
    assert functional.NORM_INDICES == {
        'inter_ocular': {
            'wflw': (60, 72),
            '300w': (36, 45),
            'coco_wholebody_face': (36, 45),
            'cofw': (8, 9),
        },
        'inter_pupil': {
            'wflw': (96, 97),
            '300w': (tuple(range(36, 42)), tuple(range(42, 48))),
            'coco_wholebody_face': (
                tuple(range(36, 42)),
                tuple(range(42, 48)),
            ),
            'cofw': (16, 17),
        },
    }
    assert functional.BOX_ONLY == ('aflw',)

    for name, cfg in point_types.POINT_TYPES.items():
        assert cfg['num_keypoints'] == LAYOUTS[name].num_keypoints
        assert point_types.METAINFO_FILES[name] == (
            f'configs/_base_/datasets/{name}.py'
        )
    assert fixture.ANN_NAMES == {
        98: 'face_landmarks_wflw_{split}.json',
        68: 'face_landmarks_300w_{split}.json',
        19: 'face_landmarks_aflw_{split}.json',
    }

