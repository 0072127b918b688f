"""Point types as data (mmaniso.datasets.point_types)."""

import os.path as osp

import mmpose
import pytest
from mmpose.datasets.datasets.utils import parse_pose_metainfo

from mmaniso.datasets.point_types import (
    POINT_TYPES,
    PointTypes,
    get_point_types,
)

DATASETS = ['300w', 'wflw', 'aflw', 'cofw', 'coco_wholebody_face']


def mmpose_metainfo(name):
    path = osp.join(
        osp.dirname(mmpose.__file__),
        '.mim',
        'configs',
        '_base_',
        'datasets',
        f'{name}.py',
    )
    return parse_pose_metainfo(dict(from_file=path))


def neighbour_pairs(curve):
    """Unordered pairs of consecutive points (closing pair if closed)."""
    idx = list(curve.indices)
    pairs = {frozenset(p) for p in zip(idx, idx[1:])}
    if curve.closed:
        pairs.add(frozenset((idx[-1], idx[0])))
    return pairs


@pytest.mark.parametrize('name', DATASETS)
def test_builtin_point_types_validate_against_mmpose_metainfo(name):
    pt = get_point_types(name)
    meta = mmpose_metainfo(name)
    assert pt.name == meta['dataset_name'] == name
    assert pt.num_keypoints == meta['num_keypoints']
    assert list(pt.flip_indices) == list(meta['flip_indices'])
    # Independent check of flip consistency: mirrored neighbour pairs are
    # neighbour pairs of a curve with the same closedness; corners mirror
    # to corners.
    flip = meta['flip_indices']
    for curve in pt.curves:
        mirrored = {
            frozenset(flip[i] for i in p) for p in neighbour_pairs(curve)
        }
        assert any(
            other.closed == curve.closed and neighbour_pairs(other) == mirrored
            for other in pt.curves
        ), curve.name
    assert {flip[i] for i in pt.corners} == set(pt.corners)
    # A non-corner lies on at most one curve; curves are long enough.
    seen = set()
    for curve in pt.curves:
        assert len(curve.indices) >= (3 if curve.closed else 2)
        for i in set(curve.indices) - set(pt.corners):
            assert i not in seen
            seen.add(i)


def test_paper_corners_and_choices():
    w300 = get_point_types('300w')
    assert {36, 39, 42, 45, 48, 54}.issubset(w300.corners)  # eyes, mouth
    wflw = get_point_types('wflw')
    assert {60, 64, 68, 72, 76, 82}.issubset(wflw.corners)
    assert set(wflw.isolated) == {96, 97}  # pupils
    # Brow ends and the nose tip lie on curves, not at corners.
    assert not {17, 21, 22, 26, 30}.intersection(w300.corners)
    assert get_point_types('coco_wholebody_face').curves == w300.curves
    assert set(get_point_types('aflw').isolated) == {7, 10, 12, 13, 14, 18}


def test_neighbours_of_wflw():
    prev, nxt = get_point_types('wflw').neighbours()
    assert (prev[16].item(), nxt[16].item()) == (15, 17)  # chin
    assert (prev[33].item(), nxt[33].item()) == (-1, 34)  # brow end
    assert (prev[60].item(), nxt[60].item()) == (-1, -1)  # eye corner
    assert (prev[61].item(), nxt[67].item()) == (60, 60)  # next to corner
    assert (prev[96].item(), nxt[96].item()) == (-1, -1)  # pupil


def test_json_ready_description():
    d = get_point_types('cofw').to_dict()
    assert set(d) == {'dataset', 'num_keypoints', 'curves', 'corners'}
    assert d['curves'][0] == dict(
        name='left_brow', indices=[0, 4, 2, 5], closed=True
    )


def custom(**changes):
    cfg = dict(
        name='mine',
        num_keypoints=6,
        curves=[
            dict(name='left', indices=[0, 1, 2], closed=False),
            dict(name='right', indices=[5, 4, 3], closed=False),
        ],
        corners=[],
        flip_indices=[5, 4, 3, 2, 1, 0],
    )
    cfg.update(changes)
    return cfg


def test_custom_dict_is_loaded_and_checked():
    pt = get_point_types(custom())
    assert isinstance(pt, PointTypes) and pt.name == 'mine'
    assert get_point_types(custom(flip_indices=None)).flip_indices is None
    prev, nxt = pt.neighbours()
    assert prev.tolist() == [-1, 0, 1, 4, 5, -1]


def test_unknown_name():
    with pytest.raises(
        ValueError,
        match=r"unknown point types 'wflw98'.*"
        r'300w, aflw, coco_wholebody_face, cofw, wflw.*dict',
    ):
        get_point_types('wflw98')
    with pytest.raises(TypeError, match='dataset name or a dict'):
        get_point_types(98)


@pytest.mark.parametrize(
    'changes, match',
    [
        (
            dict(curves=[dict(name='jaw', indices=[0, 6])]),
            r"'mine': curve 'jaw' has index 6, out of range for 6 "
            r'keypoints \(valid indices are 0..5\); fix',
        ),
        (
            dict(curves=[dict(name='jaw', indices=[0, 1, 0])]),
            "curve 'jaw' repeats index 0; .*closed=True",
        ),
        (
            dict(curves=[dict(name='lid', indices=[0, 1], closed=True)]),
            "closed curve 'lid' has 2 point.*at least 3",
        ),
        (
            dict(curves=[dict(name='dot', indices=[2])]),
            "open curve 'dot' has 1 point.*at least 2",
        ),
        (
            dict(
                curves=[
                    dict(name='a', indices=[0, 1]),
                    dict(name='b', indices=[1, 2]),
                ],
                flip_indices=None,
            ),
            "keypoint 1 is on curves 'a' and 'b' but is not a corner.*"
            'add it to corners',
        ),
        (
            dict(corners=[7]),
            'corner index 7 is out of range for 6 keypoints',
        ),
        (
            dict(corners=[0]),
            'corner 0 is not flip-consistent: its flip partner 5',
        ),
        (
            dict(
                curves=[
                    dict(name='left', indices=[0, 1, 2]),
                    dict(name='right', indices=[5, 3, 4]),
                ]
            ),
            r"curve 'left' \[0, 1, 2\] is not flip-consistent: its mirror "
            r'image \[5, 4, 3\] is no open curve',
        ),
        (
            dict(
                curves=[
                    dict(name='left', indices=[0, 1, 2]),
                    dict(name='right', indices=[5, 4, 3], closed=True),
                ]
            ),
            'is no open curve',
        ),
        (dict(flip_indices=[0, 0, 1, 2, 3, 4]), 'must be a permutation'),
        (dict(num_keypoints=0), 'num_keypoints must be a positive integer'),
        (dict(corner=[1]), r"unknown keys \['corner'\]"),
        (
            dict(curves=[dict(name='jaw', indices='012')]),
            "curve 'jaw' needs indices as a list of integers",
        ),
    ],
)
def test_bad_point_types_raise_clear_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        get_point_types(custom(**changes))


def test_closed_curves_match_under_rotation_and_reversal():
    cfg = custom(
        num_keypoints=8,
        curves=[
            dict(name='l', indices=[0, 1, 2, 3], closed=True),
            dict(name='r', indices=[5, 4, 7, 6], closed=True),
        ],
        flip_indices=[4, 5, 6, 7, 0, 1, 2, 3],
    )
    # Mirror of l is [4, 5, 6, 7]: r read backwards from 4.
    assert len(get_point_types(cfg).curves) == 2
    for name in POINT_TYPES:
        assert get_point_types(name) is get_point_types(name)  # cached
