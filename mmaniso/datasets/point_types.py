"""Point types of the face datasets: which landmarks lie on which curve.

The anisotropic cost of Rayhan, Galata and Cootes (BMVC 2020) lets a
landmark on a curve slide along it more cheaply than it may leave it. That
needs, per dataset, the curves (ordered keypoint indices, open or closed)
and the corners (points that get the isotropic weight ``W = I``). They are
data, keyed by MMPose's ``dataset_name``; a custom dataset passes a dict of
the same form. Indices are 0-based; *left* and *right* in curve names are
the image's (the subject's right eye is the image's left eye).

A point gets a tangent only from the curve it lies on; a non-corner point
lies on at most one curve. Corners may be shared ends of curves (they are
neighbours of the points next to them) but never get a tangent themselves.
Points on no curve are *isolated* and also get ``W = I``.

Choices, and why:

* Eye and mouth corners (the outer and, where annotated, the inner mouth
  corners) are corners, as in the paper: two edges meet there at an angle,
  so there is no tangent, and a corner is located equally well in every
  direction. Eyes and lips are closed curves through their corners (the
  peers' ADNet/STAR layout); with the corners given ``W = I`` this is the
  same as upper and lower lids (lips) as open curves meeting at them.
* Brow ends (300W, WFLW, AFLW) are ends of the upper brow edge, not
  corners: a brow fades out, so its end is uncertain mostly *along* the
  brow, which the one-sided tangent of the open curve expresses. WFLW's
  lower brow edge (38-41, 47-50) is its own open curve; closing the brow
  into a loop would turn the tangent at the ends across the brow, the
  wrong way round. COFW outlines a brow by only four points (ends, top and
  bottom centre): the loop through them is the only curve that gives the
  centre points a tangent, so there the brow ends are the loop's cusps and
  are corners.
* The nose tip (300W 30, WFLW 54) is the lower end of the nose bridge: in
  a near-frontal face its height along the ridge is the uncertain
  direction, its sideways position is fixed by symmetry. The nose base
  (alar points and subnasale) is an open curve. COFW and AFLW annotate no
  bridge, so their nose tips are isolated; AFLW's alar points are
  isolated too (the three AFLW nose points do not sample one image edge).
* The chin (300W 8, WFLW 16) is an inner point of the jaw contour, whose
  position along the jaw is its least certain direction; the jaw ends at
  the temples are open ends with one-sided tangents. COFW and AFLW have a
  single chin point, isolated.
* Pupils (WFLW 96-97, COFW 16-17) and AFLW's eye centres (7, 10) mark the
  centre of a round blob, located equally well in every direction:
  isolated.
* The upper-lip dip (300W 51, WFLW 79) stays on the outer lip with the
  central-difference tangent: the cupid's bow is shallow and its dip is
  defined by the lip line it sits on.
* AFLW's mouth centre (16) lies on the line where the lips meet, between
  the mouth corners: an open curve 15-16-17 with corner ends.
* COCO-WholeBody-Face uses the 300W layout.

Every set is checked when loaded (:func:`get_point_types`): indices in
range, no repeats in a curve, at least 2 points on an open and 3 on a
closed curve, a non-corner on at most one curve, and consistency with the
dataset's flip pairs from MMPose's metainfo (a curve's mirror image is a
curve of the same closedness, corners mirror to corners).
"""

import os.path as osp
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from torch import Tensor

from mmaniso.ops.tangents import curve_neighbours

from .layouts import LAYOUTS


def _curve(name: str, indices: Sequence[int], closed: bool = False) -> dict:
    return dict(name=name, indices=list(indices), closed=closed)


_300W = dict(
    num_keypoints=LAYOUTS['300w'].num_keypoints,
    curves=[
        _curve('jaw', range(0, 17)),
        _curve('left_brow', range(17, 22)),
        _curve('right_brow', range(22, 27)),
        _curve('nose_bridge', range(27, 31)),
        _curve('nose_base', range(31, 36)),
        _curve('left_eye', range(36, 42), closed=True),
        _curve('right_eye', range(42, 48), closed=True),
        _curve('outer_lip', range(48, 60), closed=True),
        _curve('inner_lip', range(60, 68), closed=True),
    ],
    # eye corners 36, 39, 42, 45; mouth corners 48, 54 (outer), 60, 64
    corners=[36, 39, 42, 45, 48, 54, 60, 64],
)

# Same shape as _300W: each layout's curves are data, written out.
_WFLW = dict(
    num_keypoints=LAYOUTS['wflw'].num_keypoints,
    curves=[
        _curve('jaw', range(0, 33)),
        _curve('left_brow_upper', range(33, 38)),
        _curve('left_brow_lower', range(38, 42)),
        _curve('right_brow_upper', range(42, 47)),
        _curve('right_brow_lower', range(47, 51)),
        _curve('nose_bridge', range(51, 55)),
        _curve('nose_base', range(55, 60)),
        _curve('left_eye', range(60, 68), closed=True),
        _curve('right_eye', range(68, 76), closed=True),
        _curve('outer_lip', range(76, 88), closed=True),
        _curve('inner_lip', range(88, 96), closed=True),
    ],
    # eye corners 60, 64, 68, 72; mouth corners 76, 82 (outer), 88, 92;
    # pupils 96, 97 lie on no curve
    corners=[60, 64, 68, 72, 76, 82, 88, 92],
)

_AFLW = dict(
    num_keypoints=LAYOUTS['aflw'].num_keypoints,
    curves=[
        _curve('left_brow', [0, 1, 2]),
        _curve('right_brow', [3, 4, 5]),
        _curve('mouth', [15, 16, 17]),
    ],
    # eye corners 6, 8, 9, 11; mouth corners 15, 17; eye centres 7, 10,
    # nose 12-14 and chin 18 lie on no curve
    corners=[6, 8, 9, 11, 15, 17],
)

_COFW = dict(
    num_keypoints=LAYOUTS['cofw'].num_keypoints,
    curves=[
        _curve('left_brow', [0, 4, 2, 5], closed=True),
        _curve('right_brow', [1, 6, 3, 7], closed=True),
        _curve('left_eye', [8, 12, 10, 13], closed=True),
        _curve('right_eye', [9, 14, 11, 15], closed=True),
        _curve('nose_base', [18, 21, 19]),
        _curve('outer_lip', [22, 24, 23, 27], closed=True),
        _curve('inner_lip', [22, 25, 23, 26], closed=True),
    ],
    # brow ends 0, 1, 2, 3; eye corners 8, 9, 10, 11; mouth corners 22,
    # 23; pupils 16, 17, nose tip 20 and chin 28 lie on no curve
    corners=[0, 1, 2, 3, 8, 9, 10, 11, 22, 23],
)

#: Point types of each dataset, keyed by MMPose's ``dataset_name``.
POINT_TYPES: Dict[str, dict] = {
    '300w': _300W,
    'wflw': _WFLW,
    'aflw': _AFLW,
    'cofw': _COFW,
    'coco_wholebody_face': _300W,
}

#: MMPose metainfo file of each dataset, for its flip pairs.
METAINFO_FILES: Dict[str, str] = {
    name: LAYOUTS[name].metainfo for name in POINT_TYPES
}

_KEYS = {'name', 'num_keypoints', 'curves', 'corners', 'flip_indices'}
_CURVE_KEYS = {'name', 'indices', 'closed'}
_EXAMPLE = (
    "point_types=dict(num_keypoints=K, curves=[dict(name='jaw', "
    'indices=[0, 1, 2], closed=False)], corners=[...], '
    'flip_indices=[...])'
)


@dataclass(frozen=True)
class Curve:
    """A curve through keypoints, in order.

    Args:
        name: Name used in messages and legends.
        indices: Keypoint indices along the curve.
        closed: Whether the last point joins the first.
    """

    name: str
    indices: Tuple[int, ...]
    closed: bool = False


@dataclass(frozen=True)
class PointTypes:
    """The validated curves and corners of one keypoint layout.

    Build it with :func:`get_point_types`, which checks it.

    Args:
        name: The dataset name (MMPose's ``dataset_name``) or ``custom``.
        num_keypoints: Number of keypoints K.
        curves: The curves.
        corners: Keypoints with ``W = I`` even when on a curve.
        flip_indices: The horizontal-flip partner of each keypoint, when
            known.
    """

    name: str
    num_keypoints: int
    curves: Tuple[Curve, ...]
    corners: Tuple[int, ...]
    flip_indices: Optional[Tuple[int, ...]] = None

    @property
    def isolated(self) -> Tuple[int, ...]:
        """Keypoints that are neither on a curve nor corners."""
        on_curve = {i for c in self.curves for i in c.indices}
        on_curve.update(self.corners)
        return tuple(i for i in range(self.num_keypoints) if i not in on_curve)

    def neighbours(self) -> Tensor:
        """Previous and next neighbour of each point, shape (2, K), -1 for
        none.

        See :func:`mmaniso.ops.tangents.curve_neighbours`.
        """
        return curve_neighbours(
            self.num_keypoints,
            [(c.indices, c.closed) for c in self.curves],
            self.corners,
        )

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready description (dataset, keypoints, curves, corners)."""
        return dict(
            dataset=self.name,
            num_keypoints=self.num_keypoints,
            curves=[
                dict(name=c.name, indices=list(c.indices), closed=c.closed)
                for c in self.curves
            ],
            corners=list(self.corners),
        )


def _is_int(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        or (
            hasattr(value, 'dtype')
            and getattr(value.dtype, 'kind', '') in 'iu'
        )
    )


def _build(name: str, cfg: dict) -> PointTypes:
    """Turns a point-types dict into a PointTypes, checking its form."""
    where = f'point types {name!r}'
    unknown = set(cfg) - _KEYS
    if unknown:
        raise ValueError(
            f'{where}: unknown keys {sorted(unknown)}; the keys are '
            f'{sorted(_KEYS)}, e.g. {_EXAMPLE}'
        )
    num = cfg.get('num_keypoints')
    if not _is_int(num) or num < 1:
        raise ValueError(
            f'{where}: num_keypoints must be a positive integer, got '
            f'{num!r}; give the length of the keypoint list, e.g. {_EXAMPLE}'
        )
    curves_cfg = cfg.get('curves')
    if not isinstance(curves_cfg, (list, tuple)):
        raise ValueError(
            f'{where}: curves must be a list of dicts, got '
            f'{type(curves_cfg).__name__}, e.g. {_EXAMPLE}'
        )
    curves = []
    for c, curve in enumerate(curves_cfg):
        if not isinstance(curve, dict) or set(curve) - _CURVE_KEYS:
            raise ValueError(
                f'{where}: curve #{c} must be a dict with keys '
                f'{sorted(_CURVE_KEYS)}, got {curve!r}'
            )
        cname = curve.get('name', f'curve{c}')
        indices = curve.get('indices')
        if not isinstance(indices, (list, tuple, range)) or not all(
            _is_int(i) for i in indices
        ):
            raise ValueError(
                f'{where}: curve {cname!r} needs indices as a list of '
                f'integers, got {indices!r}'
            )
        curves.append(
            Curve(
                str(cname),
                tuple(int(i) for i in indices),
                bool(curve.get('closed', False)),
            )
        )
    corners = cfg.get('corners', ())
    if not isinstance(corners, (list, tuple, range)) or not all(
        _is_int(i) for i in corners
    ):
        raise ValueError(
            f'{where}: corners must be a list of keypoint indices, got '
            f'{corners!r}'
        )
    flip = cfg.get('flip_indices')
    if flip is not None:
        if not isinstance(flip, (list, tuple)) or not all(
            _is_int(i) for i in flip
        ):
            raise ValueError(
                f'{where}: flip_indices must be a list of keypoint indices '
                f'(the flip partner of each keypoint), got {flip!r}'
            )
        flip = tuple(int(i) for i in flip)
    return PointTypes(
        name=str(cfg.get('name', name)),
        num_keypoints=int(num),
        curves=tuple(curves),
        corners=tuple(int(i) for i in corners),
        flip_indices=flip,
    )


def _same_curve(seq: Sequence[int], other: Curve) -> bool:
    """Whether ``seq`` runs along ``other`` (either way; any start if
    closed)."""
    seq, ref = list(seq), list(other.indices)
    if len(seq) != len(ref):
        return False
    if not other.closed:
        return seq == ref or seq == ref[::-1]
    for cand in (ref, ref[::-1]):
        k = cand.index(seq[0]) if seq[0] in cand else -1
        if k >= 0 and cand[k:] + cand[:k] == seq:
            return True
    return False


def validate_point_types(pt: PointTypes) -> None:
    """Checks a point-types set; see the module doc for the rules.

    Raises:
        ValueError: Naming the dataset, the curve, the offending index and
            the fix.
    """
    where = f'point types {pt.name!r}'
    num = pt.num_keypoints
    valid_range = f'valid indices are 0..{num - 1}'
    names = [c.name for c in pt.curves]
    for c in pt.curves:
        if names.count(c.name) > 1:
            raise ValueError(
                f'{where}: curve name {c.name!r} is used twice; give each '
                'curve its own name'
            )
        for i in c.indices:
            if not 0 <= i < num:
                raise ValueError(
                    f'{where}: curve {c.name!r} has index {i}, out of range '
                    f'for {num} keypoints ({valid_range}); fix the index or '
                    'num_keypoints'
                )
        seen = set()
        for i in c.indices:
            if i in seen:
                raise ValueError(
                    f'{where}: curve {c.name!r} repeats index {i}; list each '
                    'point once (for a loop, set closed=True instead of '
                    'repeating the first point)'
                )
            seen.add(i)
        need = 3 if c.closed else 2
        if len(c.indices) < need:
            kind = 'closed' if c.closed else 'open'
            raise ValueError(
                f'{where}: {kind} curve {c.name!r} has '
                f'{len(c.indices)} point(s) {list(c.indices)}, needs at '
                f'least {need}; add points or leave the points off curves '
                '(isolated points get W = I)'
            )
    corners = set()
    for i in pt.corners:
        if not 0 <= i < num:
            raise ValueError(
                f'{where}: corner index {i} is out of range for {num} '
                f'keypoints ({valid_range}); fix the corner list'
            )
        if i in corners:
            raise ValueError(
                f'{where}: corner {i} is listed twice; list it once'
            )
        corners.add(i)
    owner: Dict[int, str] = {}
    for c in pt.curves:
        for i in c.indices:
            if i in corners:
                continue
            if i in owner:
                raise ValueError(
                    f'{where}: keypoint {i} is on curves {owner[i]!r} and '
                    f'{c.name!r} but is not a corner; a non-corner point '
                    'may lie on one curve only: remove it from one curve '
                    'or add it to corners'
                )
            owner[i] = c.name
    if pt.flip_indices is not None:
        _validate_flip(pt, where)


def _validate_flip(pt: PointTypes, where: str) -> None:
    flip = pt.flip_indices
    num = pt.num_keypoints
    if len(flip) != num or sorted(flip) != list(range(num)):
        raise ValueError(
            f'{where}: flip_indices must be a permutation of 0..{num - 1} '
            f'(the flip partner of each keypoint), got {list(flip)}'
        )
    for c in pt.curves:
        image = [flip[i] for i in c.indices]
        if not any(
            other.closed == c.closed and _same_curve(image, other)
            for other in pt.curves
        ):
            kind = 'closed' if c.closed else 'open'
            raise ValueError(
                f'{where}: curve {c.name!r} {list(c.indices)} is not '
                f'flip-consistent: its mirror image {image} is no {kind} '
                'curve; add the mirrored curve, or fix the order of the '
                'indices so that mirrored points keep their order'
            )
    corners = set(pt.corners)
    for i in pt.corners:
        if flip[i] not in corners:
            raise ValueError(
                f'{where}: corner {i} is not flip-consistent: its flip '
                f'partner {flip[i]} is not a corner; add {flip[i]} to '
                'corners or remove the corner'
            )


def _metainfo_path(rel_path: str) -> str:
    """The metainfo file inside the installed MMPose, else ``rel_path``."""
    import mmpose

    full = osp.join(osp.dirname(mmpose.__file__), '.mim', rel_path)
    return full if osp.isfile(full) else rel_path


@lru_cache(maxsize=None)
def _builtin(name: str) -> PointTypes:
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    meta = parse_pose_metainfo(
        dict(from_file=_metainfo_path(METAINFO_FILES[name]))
    )
    cfg = dict(POINT_TYPES[name])
    if meta['num_keypoints'] != cfg['num_keypoints']:
        raise ValueError(
            f'point types {name!r}: {cfg["num_keypoints"]} keypoints, but '
            f"MMPose's metainfo {METAINFO_FILES[name]} declares "
            f'{meta["num_keypoints"]}'
        )
    cfg['flip_indices'] = list(meta['flip_indices'])
    pt = _build(meta['dataset_name'], cfg)
    validate_point_types(pt)
    return pt


def available_point_types() -> List[str]:
    """Names of the built-in point types."""
    return sorted(POINT_TYPES)


def get_point_types(point_types: Union[str, dict, PointTypes]) -> PointTypes:
    """Loads and checks point types by dataset name, or from a dict.

    Args:
        point_types: MMPose's ``dataset_name`` of a built-in set (see
            :data:`POINT_TYPES`), or a dict ``dict(num_keypoints=K,
            curves=[dict(name=.., indices=[..], closed=False), ..],
            corners=[..], flip_indices=[..], name='my_faces')`` where
            ``corners``, ``flip_indices`` (checked when given) and ``name``
            are optional.

    Returns:
        PointTypes: The validated point types.

    Raises:
        ValueError: For an unknown name or a set that fails a check.
    """
    if isinstance(point_types, PointTypes):
        validate_point_types(point_types)
        return point_types
    if isinstance(point_types, str):
        if point_types not in POINT_TYPES:
            raise ValueError(
                f'unknown point types {point_types!r}; known dataset '
                f'names: {", ".join(available_point_types())}. For another '
                f'dataset pass a dict: {_EXAMPLE}'
            )
        return _builtin(point_types)
    if isinstance(point_types, dict):
        pt = _build(str(point_types.get('name', 'custom')), point_types)
        validate_point_types(pt)
        return pt
    raise TypeError(
        f'point_types must be a dataset name or a dict, got '
        f'{type(point_types).__name__}; e.g. {_EXAMPLE}'
    )
