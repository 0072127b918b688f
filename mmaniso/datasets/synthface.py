"""SynthFace: rendered faces whose annotation noise runs along the curves.

The embedded default data of mmaniso: it needs no download and no GPU, and
its labels carry the kind of error the anisotropic loss is built for.
Rayhan, Galata and Cootes (BMVC 2020) argue that annotators agree on where
a curve (a jaw line, a lid, a lip) is, but not on where along it a point
lies. SynthFace makes that literal. Each face has exact *clean* landmarks
(``keypoints_clean``) and *annotated* ones (``keypoints``, what training
reads), made from the clean ones by :func:`annotation_noise`:

* a point on a curve slides along it by :math:`N(0, \\sigma_t)` in arc
  length, moving along the polyline of the curve's clean points (so it
  stays on the curve; a closed curve wraps round, an open one continues
  straight past its ends), then moves off it by :math:`N(0, \\sigma_n)`
  along the normal of the polyline there;
* a corner (eye and mouth corners) or an isolated point (pupils) moves by
  :math:`N(0, \\sigma_c)` in x and y.

The curves and corners are those of :func:`get_point_types` for the layout.
The sigmas are fractions of the face's inter-ocular distance ``d`` (the
outer-eye-corner distance of the mean face, seen frontally at the face's
scale in the image, stored as ``interocular``); the defaults are
:math:`\\sigma_t = 0.06 d`, :math:`\\sigma_n = 0.01 d` and
:math:`\\sigma_c = 0.01 d`, recorded in the JSON ``info``.

The faces come from the 3-D template of :mod:`face_template_3d`, with
random shape modes, expressions, skin tone, hair, directional lighting,
background clutter, occluders and blur. Poses are skewed towards frontal
as in real datasets: yaw is N(0, 12 degrees) with probability 0.8 and
U(-70, 70) degrees otherwise; pitch and roll are N(0, 8) and N(0, 9)
degrees. Each annotation stores ``yaw``, ``pitch`` and ``roll`` and WFLW's
six ``attributes`` flags (``largepose`` is ``|yaw| > 40``).

Everything is a function of ``(seed, split, index)``, so any number of
worker processes writes the same files.
"""

import json
import os
import os.path as osp
import zlib
from multiprocessing import get_all_start_methods, get_context
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from . import face_template_3d as t3d
from .converters.wflw import ATTRIBUTES  # WFLW's subset flags
from .face_template import WFLW_TO_300W
from .point_types import PointTypes, get_point_types

#: Default noise scales, as fractions of the inter-ocular distance.
SIGMA_T = 0.06
SIGMA_N = 0.01
SIGMA_C = 0.01

#: Keypoint count and annotation file name of each layout.
LAYOUTS = {
    'wflw': (98, 'face_landmarks_wflw_{split}.json'),
    '300w': (68, 'face_landmarks_300w_{split}.json'),
}
#: Outer eye corners of each layout (the inter-ocular distance).
OUTER_EYE_CORNERS = {'wflw': (60, 72), '300w': (36, 45)}
LARGE_POSE_DEG = 40.0

_SS = 2  # supersampling factor of the renderer
_SHIFT = 4  # sub-pixel bits of OpenCV's drawing functions
_ONE = 1 << _SHIFT


# --------------------------------------------------------------- noise
def point_at_arc_length(
    curve: np.ndarray, closed: bool, arc: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Points at given arc lengths along a polyline, and its normals there.

    Args:
        curve: The polyline's vertices, shape (N, 2).
        closed: Whether the last vertex joins the first. A closed curve
            wraps arc lengths round; an open one extends its end segments
            straight for arc lengths below 0 or beyond its length.
        arc: Arc lengths from the first vertex, shape (M,).

    Returns:
        Points, shape (M, 2), and unit normals of the segments they lie
        on, shape (M, 2).

    Example:
        >>> square = np.array([[0.0, 0.0], [1, 0], [1, 1], [0, 1]])
        >>> point_at_arc_length(square, True, np.array([1.5, 4.25]))[0]
        array([[1.  , 0.5 ],
               [0.25, 0.  ]])
    """
    verts = np.concatenate([curve, curve[:1]]) if closed else curve
    seg = np.diff(verts, axis=0)  # (S, 2)
    length = np.linalg.norm(seg, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(length)])
    arc = np.asarray(arc, dtype=np.float64)
    if closed and cum[-1] > 0:
        arc = np.mod(arc, cum[-1])
    k = np.clip(np.searchsorted(cum, arc, side='right') - 1, 0, len(seg) - 1)
    safe = np.maximum(length[k], 1e-12)
    t = (arc - cum[k]) / safe
    points = verts[k] + t[:, None] * seg[k]
    tangent = seg[k] / safe[:, None]
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    return points, normal


def arc_lengths(curve: np.ndarray, closed: bool) -> np.ndarray:
    """Arc length of each vertex of a polyline from the first, (N,)."""
    del closed  # the vertices' positions do not depend on the closing edge
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def interocular_distance(points: np.ndarray, point_types: PointTypes) -> float:
    """Distance of the outer eye corners of a WFLW or 300W face."""
    if point_types.name not in OUTER_EYE_CORNERS:
        raise ValueError(
            f'no outer eye corners known for point types '
            f'{point_types.name!r}; pass interocular= explicitly'
        )
    a, b = OUTER_EYE_CORNERS[point_types.name]
    return float(np.linalg.norm(points[a] - points[b]))


def annotation_noise(
    points: np.ndarray,
    point_types: Union[str, dict, PointTypes],
    rng: np.random.Generator,
    interocular: Optional[float] = None,
    sigma_t: float = SIGMA_T,
    sigma_n: float = SIGMA_N,
    sigma_c: float = SIGMA_C,
) -> np.ndarray:
    """Simulated annotation of clean landmarks: along-curve noise.

    .. math:: p' = c(s + \\epsilon_t) + \\epsilon_n n(s + \\epsilon_t),
        \\quad \\epsilon_t \\sim N(0, \\sigma_t d),
        \\epsilon_n \\sim N(0, \\sigma_n d)

    for a point at arc length ``s`` of curve ``c`` with normal ``n``;
    corners and isolated points get :math:`N(0, \\sigma_c d)` in x and y.

    Args:
        points: Clean landmarks, shape (K, 2).
        point_types: The layout's curves and corners (a name such as
            ``'wflw'``, a dict, or :class:`PointTypes`).
        rng: The random generator; the same state gives the same noise.
        interocular: The scale ``d``. Defaults to the distance of the outer
            eye corners of ``points`` (WFLW and 300W only).
        sigma_t: Along-curve std as a fraction of ``d``.
        sigma_n: Across-curve std as a fraction of ``d``.
        sigma_c: Std of corners and isolated points in x and in y, as a
            fraction of ``d``.

    Returns:
        The annotated landmarks, shape (K, 2).

    Example:
        >>> clean = t3d.wflw_mean_face_3d()[:, :2] * 50 + 64
        >>> noisy = annotation_noise(clean, 'wflw', np.random.default_rng(0))
        >>> noisy.shape
        (98, 2)
    """
    pt = (
        point_types
        if isinstance(point_types, PointTypes)
        else get_point_types(point_types)
    )
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (pt.num_keypoints, 2):
        raise ValueError(
            f'points must have shape ({pt.num_keypoints}, 2) for point '
            f'types {pt.name!r}, got {points.shape}'
        )
    for name, value in (
        ('sigma_t', sigma_t),
        ('sigma_n', sigma_n),
        ('sigma_c', sigma_c),
    ):
        if not value >= 0:
            raise ValueError(f'{name} must be >= 0, got {value!r}')
    d = (
        interocular_distance(points, pt)
        if interocular is None
        else float(interocular)
    )
    out = points.copy()
    corners = set(pt.corners)
    for curve in pt.curves:
        idx = np.array(curve.indices)
        moving = np.array([i not in corners for i in idx])
        if not moving.any():
            continue
        poly = points[idx]
        arc = arc_lengths(poly, curve.closed)[moving]
        arc = arc + rng.normal(0.0, sigma_t * d, len(arc))
        pos, normal = point_at_arc_length(poly, curve.closed, arc)
        across = rng.normal(0.0, sigma_n * d, len(arc))
        out[idx[moving]] = pos + across[:, None] * normal
    still = sorted(corners | set(pt.isolated))
    if still:
        out[still] += rng.normal(0.0, sigma_c * d, (len(still), 2))
    return out


# --------------------------------------------------------------- scene
def sample_pose(rng: np.random.Generator) -> Tuple[float, float, float]:
    """A head pose skewed towards frontal, (yaw, pitch, roll) in degrees.

    Yaw is N(0, 12) with probability 0.8 and U(-70, 70) otherwise (clipped
    to [-75, 75]); pitch is N(0, 8) clipped to [-30, 30]; roll is N(0, 9)
    clipped to [-40, 40].
    """
    if rng.random() < 0.8:
        yaw = float(np.clip(rng.normal(0.0, 12.0), -75, 75))
    else:
        yaw = float(rng.uniform(-70.0, 70.0))
    pitch = float(np.clip(rng.normal(0.0, 8.0), -30, 30))
    roll = float(np.clip(rng.normal(0.0, 9.0), -40, 40))
    return yaw, pitch, roll


def _sample_expression(
    rng: np.random.Generator,
) -> Tuple[t3d.Expression, bool]:
    """A random expression and whether it is exaggerated (WFLW's flag)."""
    dx, dy = np.clip(rng.normal(0, 0.025, 2), -0.05, 0.05)
    gaze = (float(dx), 0.4 * float(dy))
    if rng.random() < 0.3:
        kinds = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
        mouth = float(rng.uniform(0.0, 0.04))
        smile = float(rng.uniform(0.0, 0.2))
        brow = float(rng.normal(0.0, 0.15))
        closure = (0.1, 0.1)
        for kind in kinds:
            if kind == 0:
                mouth = float(rng.uniform(0.12, 0.34))
            elif kind == 1:
                smile = float(rng.uniform(0.55, 1.0))
            elif kind == 2:
                brow = float(rng.choice([-1, 1]) * rng.uniform(0.6, 1.0))
            else:
                c = float(rng.uniform(0.65, 0.95))
                wink = rng.random() < 0.3
                closure = (c, 0.1) if wink else (c, c)
        expr = t3d.Expression(mouth, smile, brow, closure, gaze)
        return expr, True
    c = float(rng.uniform(0.0, 0.3))
    expr = t3d.Expression(
        mouth_open=float(max(0.0, rng.normal(0.0, 0.03))),
        smile=float(rng.uniform(0.0, 0.3)),
        brow=float(np.clip(rng.normal(0.0, 0.2), -0.4, 0.4)),
        eye_closure=(c, c),
        gaze=gaze,
    )
    return expr, False


# Skin tones (BGR) from light to dark, interpolated.
_SKIN = np.array(
    [
        [190, 215, 245],
        [150, 180, 225],
        [95, 140, 200],
        [60, 95, 150],
        [40, 60, 100],
    ],
    dtype=np.float64,
)
_HAIR_COLOURS = [
    (20, 20, 25),
    (30, 45, 70),
    (35, 60, 105),
    (85, 135, 185),
    (150, 150, 160),
]
_IRIS_COLOURS = [
    (30, 60, 100),
    (20, 35, 60),
    (150, 115, 60),
    (70, 120, 80),
    (120, 120, 120),
]


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0, len(_SKIN) - 1)
    i = min(int(t), len(_SKIN) - 2)
    tone = _SKIN[i] + (t - i) * (_SKIN[i + 1] - _SKIN[i])
    return np.clip(tone + rng.normal(0, 8, 3), 0, 255)


def _colour(values) -> Tuple[float, float, float]:
    return tuple(float(np.clip(v, 0, 255)) for v in values)


def _fix(points: np.ndarray) -> np.ndarray:
    """Render-resolution points as OpenCV fixed-point int32, (N, 1, 2)."""
    return np.round(points * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _poly(img, points, colour, closed=True, thickness=-1):
    """A filled (``thickness=-1``) or stroked anti-aliased polygon."""
    pts = _fix(points)
    if thickness < 0:
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, _SHIFT)
    else:
        cv2.polylines(
            img, [pts], closed, colour, thickness, cv2.LINE_AA, _SHIFT
        )


def _ellipse(img, centre, axes, angle, colour, thickness=-1):
    c = tuple(int(v) for v in np.round(np.asarray(centre) * _ONE))
    a = tuple(int(max(v, 0.5) * _ONE) for v in axes)
    cv2.ellipse(
        img,
        c,
        a,
        float(angle),
        0,
        360,
        colour,
        thickness,
        cv2.LINE_AA,
        _SHIFT,
    )


def _blend(img: np.ndarray, layer: np.ndarray, alpha) -> np.ndarray:
    """``img * (1 - alpha) + layer * alpha`` of two uint8 images; alpha a
    scalar or a uint8 mask (H, W) with 255 for 1."""
    if np.ndim(alpha) == 2:
        w = alpha.astype(np.float32) / 255
        return cv2.blendLinear(img, layer, 1 - w, w)
    return cv2.addWeighted(img, 1 - float(alpha), layer, float(alpha), 0)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cluttered background: gradient, texture, shapes and lines."""
    base = rng.uniform(20, 235, 3)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    direction = rng.normal(0, 1, 2).astype(np.float32)
    dx, dy = direction
    grad = ramp[None, :, None] * dx + ramp[:, None, None] * dy  # (S, S, 1)
    contrast = rng.uniform(-80, 80, 3).astype(np.float32)
    img = base.astype(np.float32) + grad * contrast
    if rng.random() < 0.6:
        cells = int(rng.integers(4, 24))
        tex = rng.normal(0, 1, (cells, cells, 3)).astype(np.float32)
        tex = cv2.resize(tex, (size, size), interpolation=cv2.INTER_CUBIC)
        img = img + tex * rng.uniform(5, 35)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        colour = _colour(rng.uniform(0, 255, 3))
        kind = rng.integers(4)
        c = rng.uniform(-0.1, 1.1, 2) * size
        r = rng.uniform(0.04, 0.35, 2) * size
        layer = img.copy()
        if kind == 0:
            box = cv2.boxPoints(
                ((c[0], c[1]), (2 * r[0], 2 * r[1]), rng.uniform(0, 180))
            )
            _poly(layer, box, colour)
        elif kind == 1:
            _ellipse(layer, c, r, rng.uniform(0, 180), colour)
        elif kind == 2:
            pts = c + rng.normal(0, 1, (int(rng.integers(3, 7)), 2)) * r
            _poly(layer, pts, colour)
        else:
            end = c + rng.normal(0, 0.4, 2) * size
            thickness = int(rng.integers(1, 3 * _SS + 1))
            _poly(layer, np.stack([c, end]), colour, False, thickness)
        img = _blend(img, layer, rng.uniform(0.5, 1.0))
    return img


class _Posed(NamedTuple):
    """A posed face at render resolution."""

    landmarks: np.ndarray  # (98, 2) render pixels
    facing: np.ndarray  # (98,)
    forehead: np.ndarray  # (F, 2)
    cheeks: np.ndarray  # (C, 2)
    hair: np.ndarray  # (H, 2)
    hairline: np.ndarray  # (F, 2)
    neck: np.ndarray  # (4, 2)
    body: np.ndarray  # (4, 2)
    unit: float  # render pixels per face unit
    rotation: np.ndarray  # (3, 3)


def _pose_face(
    face: np.ndarray,
    width_coeff: float,
    pose: Tuple[float, float, float],
    rng: np.random.Generator,
    size: int,
) -> _Posed:
    """Rotates, projects and places the face (and its outline) in the
    render image of side ``size``."""
    yaw, pitch, roll = pose
    rot = t3d.rotation_matrix(yaw, pitch, roll)
    outline = t3d.outline_points_3d(rng.uniform(0.55, 0.8))
    for part in outline.values():
        part[:, 0] *= 1 + 0.07 * width_coeff
    body_rot = t3d.rotation_matrix(0.3 * yaw, 0.0, 0.5 * roll)
    neck3d = np.array(
        [
            [-0.42, 0.4, -0.55],
            [0.42, 0.4, -0.55],
            [0.46, 2.2, -0.6],
            [-0.46, 2.2, -0.6],
        ]
    )
    body3d = np.array(
        [
            [-0.8, 1.75, -0.6],
            [0.8, 1.75, -0.6],
            [2.8, 3.5, -0.6],
            [-2.8, 3.5, -0.6],
        ]
    )
    unit = size * rng.uniform(0.23, 0.31)
    lm = t3d.pose_points(face, rot)
    box_centre = (lm.min(0) + lm.max(0)) / 2
    centre = size / 2 + rng.normal(0, 0.035, 2) * size

    def place(p: np.ndarray) -> np.ndarray:
        return centre + (p - box_centre) * unit

    return _Posed(
        landmarks=place(lm),
        facing=t3d.facing(face, rot),
        forehead=place(t3d.pose_points(outline['forehead'], rot)),
        cheeks=place(t3d.pose_points(outline['cheeks'], rot)),
        hair=place(t3d.pose_points(outline['hair'], rot)),
        hairline=place(t3d.pose_points(outline['hairline'], rot)),
        neck=place(t3d.pose_points(neck3d, body_rot)),
        body=place(t3d.pose_points(body3d, body_rot)),
        unit=unit,
        rotation=rot,
    )


def _alpha_of(facing: np.ndarray) -> float:
    """Opacity of a feature from how much it faces the camera."""
    return float(np.clip(np.mean(facing) / 0.3, 0.0, 1.0))


def _draw_eye(img, lm, eye, pupil, facing, colours, unit, makeup):
    """Sclera, iris clipped to the lids, pupil and lid lines of one eye."""
    alpha = _alpha_of(facing[eye])
    if alpha <= 0:
        return img
    layer = img.copy()
    pts = lm[eye]
    if makeup is not None:
        lid = np.concatenate([pts[:5], pts[4::-1] + [0, -0.09 * unit]])
        _poly(layer, lid, makeup)
    _poly(layer, pts, colours['sclera'])
    iris = layer.copy()
    r = 0.075 * unit
    squeeze = float(np.clip(facing[pupil], 0.3, 1.0))
    angle = np.degrees(np.arctan2(*(pts[4] - pts[0])[::-1]))
    _ellipse(iris, lm[pupil], (r * squeeze, r), angle, colours['iris'])
    _ellipse(iris, lm[pupil], (0.4 * r * squeeze, 0.4 * r), angle, (15,) * 3)
    mask = np.zeros(img.shape[:2], np.uint8)
    _poly(mask, pts, 255)
    layer = _blend(layer, iris, mask)
    dark = colours['line']
    _poly(layer, pts[:5], dark, False, max(1, int(round(0.035 * unit))))
    lower = np.concatenate([pts[4:], pts[:1]])
    _poly(layer, lower, colours['lower_lid'], False, 1)
    return _blend(img, layer, alpha)


def _draw_features(img, posed: _Posed, colours, expr, makeup):
    """Brows, eyes, nose and lips, each faded by how much it faces us."""
    lm, facing, unit = posed.landmarks, posed.facing, posed.unit
    layer = img.copy()
    # Jaw line: a faint shadow along the visible contour.
    jaw = t3d.JAW[facing[t3d.JAW] > 0.05]
    if len(jaw) > 1:
        _poly(layer, lm[jaw], colours['shadow'], False, 1)
    img = _blend(img, layer, 0.5)
    for brow in (t3d.BROW_L, t3d.BROW_R):
        alpha = _alpha_of(facing[brow])
        if alpha > 0:
            layer = img.copy()
            _poly(layer, lm[brow], colours['brow'])
            img = _blend(img, layer, alpha)
    img = _draw_eye(img, lm, t3d.EYE_L, 96, facing, colours, unit, makeup)
    img = _draw_eye(img, lm, t3d.EYE_R, 97, facing, colours, unit, makeup)
    # Nose: shaded bridge side, the base line, nostrils and a highlight.
    layer = img.copy()
    side = np.sign(posed.rotation[0, 2] + 1e-3)
    bridge = lm[t3d.NOSE_BRIDGE] + [side * 0.06 * unit, 0.0]
    _poly(layer, bridge[1:], colours['shadow'], False, _SS)
    img = _blend(img, layer, 0.5)
    layer = img.copy()
    base = lm[t3d.NOSE_BASE]
    _poly(layer, base, colours['nose'], False, _SS)
    for a, b in ((55, 56), (58, 59)):
        if facing[a] > 0.05:
            c = (lm[a] + lm[b]) / 2 + [0, -0.02 * unit]
            _ellipse(layer, c, (0.045 * unit, 0.022 * unit), 0, (25,) * 3)
    img = _blend(img, layer, 0.8)
    layer = img.copy()
    _ellipse(layer, lm[54], (0.06 * unit,) * 2, 0, colours['highlight'])
    img = _blend(img, layer, 0.35)
    # Lips: upper lip darker than the lower one; an open mouth shows a
    # dark cavity with the upper teeth.
    alpha = _alpha_of(facing[t3d.OUTER_LIP])
    if alpha > 0:
        layer = img.copy()
        upper = np.concatenate([lm[76:83], lm[92:87:-1]])
        lower = np.concatenate([lm[82:88], lm[76:77], lm[[88, 95, 94, 93]]])
        lower = np.concatenate([lower, lm[92:93]])
        _poly(layer, lower, colours['lip'])
        _poly(layer, upper, colours['lip_upper'])
        inner = lm[t3d.INNER_LIP]
        cavity = layer.copy()
        _poly(cavity, inner, (30, 25, 45))
        if expr.mouth_open > 0.06:
            drop = 0.3 * expr.mouth_open * unit
            teeth = np.concatenate([lm[88:93], lm[92:87:-1] + [0, drop]])
            _poly(cavity, teeth, colours['teeth'])
        mask = np.zeros(img.shape[:2], np.uint8)
        _poly(mask, inner, 255)
        layer = _blend(layer, cavity, mask)
        _poly(layer, lm[88:93], colours['line'], False, _SS)
        img = _blend(img, layer, alpha)
    return img


def _shading(posed: _Posed, size: int, light: np.ndarray, ambient: float):
    """Per-pixel brightness of a hemisphere lit from ``light``, (H, W)."""
    pts = np.concatenate([posed.landmarks, posed.forehead])
    lo, hi = pts.min(0), pts.max(0)
    centre, radius = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (xx - centre[0]) / radius[0]
    v = (yy - centre[1]) / radius[1]
    nz = np.sqrt(np.clip(1 - 0.85 * (u**2 + v**2), 0.05, None))
    norm = np.sqrt(u**2 + v**2 + nz**2)
    lit = (u * light[0] + v * light[1] + nz * light[2]) / norm
    return ambient + (1 - ambient) * np.clip(lit, 0.0, None)


def _occluder(
    img: np.ndarray,
    posed: _Posed,
    rng: np.random.Generator,
) -> Tuple[np.ndarray, np.ndarray]:
    """Draws a random occluder over part of the face; returns the image
    and the occluder's mask (uint8, 255 inside)."""
    lm, unit = posed.landmarks, posed.unit
    size = img.shape[0]
    mask = np.zeros((size, size), np.uint8)
    kind = int(rng.integers(4))
    colour = _colour(rng.uniform(0, 255, 3))
    if kind == 0:  # sunglasses
        colour = _colour(rng.uniform(5, 60, 3))
        for pupil in (96, 97):
            _ellipse(mask, lm[pupil], (0.24 * unit, 0.17 * unit), 0, 255)
        _poly(mask, lm[[96, 97]], 255, False, _SS * 2)
    elif kind == 1:  # a mask over mouth and nose
        colour = _colour(rng.uniform(150, 250, 3))
        top = lm[52] + (lm[52] - lm[54]) * 0.2
        pts = np.concatenate([lm[4:29:4], top[None]])
        _poly(mask, pts, 255)
    else:  # a hand-sized blob or a bar across the face
        anchor = lm[int(rng.integers(0, 98))]
        r = rng.uniform(0.3, 0.6, 2) * unit
        angle = rng.uniform(0, 180)
        if kind == 2:
            if rng.random() < 0.5:  # skin-coloured, like a hand
                colour = _colour(_skin_tone(rng))
            _ellipse(mask, anchor, r, angle, 255)
        else:
            box = cv2.boxPoints(
                ((anchor[0], anchor[1]), (4 * r[0], r[1]), angle)
            )
            _poly(mask, box, 255)
    yy = np.linspace(-1, 1, size)[:, None, None]
    layer = np.broadcast_to(colour, img.shape) * (
        1 + 0.15 * yy * rng.choice([-1, 1])
    )
    layer = np.clip(layer, 0, 255).astype(np.uint8)
    return _blend(img, layer, mask), mask


class Sample(NamedTuple):
    """One rendered face.

    Attributes:
        image: BGR image, shape (S, S, 3), uint8.
        landmarks: Clean WFLW landmarks in pixels, shape (98, 2).
        hidden: Per landmark, whether it is turned away from the camera or
            under an occluder, shape (98,).
        pose: (yaw, pitch, roll) in degrees.
        attributes: WFLW's six 0/1 flags.
        interocular: The mean face's frontal inter-ocular distance at the
            face's scale, in pixels (the ``d`` of the noise model).
    """

    image: np.ndarray
    landmarks: np.ndarray
    hidden: np.ndarray
    pose: Tuple[float, float, float]
    attributes: Dict[str, int]
    interocular: float


def render_face(rng: np.random.Generator, size: int = 128) -> Sample:
    """Draws a random face with OpenCV.

    Args:
        rng: The random generator; the same state gives the same face.
        size: Side of the square image in pixels.

    Returns:
        Sample: The image, its clean WFLW landmarks and their metadata.
    """
    big = size * _SS
    pose = sample_pose(rng)
    coeffs = np.clip(rng.normal(0, 1, t3d.NUM_SHAPE_MODES), -2.5, 2.5)
    jitter = rng.normal(0, 0.012, (t3d.NUM_POINTS, 3))
    expr, expressive = _sample_expression(rng)
    face = t3d.express(
        t3d.shape_deform(t3d.wflw_mean_face_3d(), coeffs, jitter), expr
    )
    posed = _pose_face(face, coeffs[0], pose, rng, big)

    skin = _skin_tone(rng)
    hair = np.array(_HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))])
    hair = np.clip(hair + rng.normal(0, 10, 3), 0, 255)
    brow = np.minimum(hair, skin * 0.5) * rng.uniform(0.6, 1.0)
    makeup = rng.random() < 0.1
    lip = skin * rng.uniform(0.6, 0.8) * [0.75, 0.7, 1.0] + [10, 0, 25]
    if makeup:
        lip = rng.choice([[60, 30, 190], [90, 40, 150], [40, 20, 120]])
    colours = dict(
        skin=_colour(skin),
        brow=_colour(brow),
        sclera=_colour(rng.uniform(195, 235) * np.array([0.95, 0.98, 1.0])),
        iris=_colour(
            np.array(_IRIS_COLOURS[int(rng.integers(len(_IRIS_COLOURS)))])
            + rng.normal(0, 8, 3)
        ),
        line=_colour(np.minimum(brow, skin * 0.35)),
        lower_lid=_colour(skin * 0.6),
        shadow=_colour(skin * 0.72),
        nose=_colour(skin * 0.5),
        highlight=_colour(skin * 0.15 + 215),
        lip=_colour(lip),
        lip_upper=_colour(np.asarray(lip) * 0.82),
        teeth=_colour(rng.uniform(185, 235) * np.array([0.9, 0.97, 1.0])),
    )
    eye_shadow = (
        _colour(rng.choice([[110, 40, 90], [60, 40, 40], [140, 90, 60]]))
        if makeup
        else None
    )

    img = _background(rng, big)
    head = np.zeros((big, big), np.uint8)
    layer = img.copy()
    _poly(layer, posed.body, _colour(rng.uniform(20, 230, 3)))
    _poly(layer, posed.neck, _colour(skin * 0.78))
    _poly(head, posed.neck, 255)
    has_hair = rng.random() < 0.85
    if has_hair:
        cap = cv2.convexHull(posed.hair.astype(np.float32))[:, 0]
        _poly(layer, cap, _colour(hair))
        _poly(head, cap, 255)
    outline = np.concatenate(
        [
            posed.landmarks[t3d.JAW],
            posed.forehead,
            posed.cheeks,
            posed.landmarks[[t3d.NOSE_TIP, 55, 59]],
        ]
    ).astype(np.float32)
    hull = cv2.convexHull(outline)[:, 0]
    _poly(layer, hull, colours['skin'])
    _poly(head, hull, 255)
    if has_hair:  # the fringe over the top of the forehead
        fringe = np.concatenate([posed.hair, posed.hairline[::-1]])
        _poly(layer, fringe, _colour(hair))
    img = layer
    img = _draw_features(img, posed, colours, expr, eye_shadow)

    strong = rng.random() < 0.2
    if strong:
        ambient = rng.uniform(0.1, 0.35)
        lateral = rng.uniform(0.7, 1.0) * rng.choice([-1, 1])
        light = np.array([lateral, rng.uniform(-0.5, 0.3), 0.5])
    else:
        ambient = rng.uniform(0.55, 0.85)
        light = np.array([rng.normal(0, 0.4), rng.normal(-0.2, 0.3), 1.0])
    light /= np.linalg.norm(light)
    shade = _shading(posed, big, light, ambient)
    shade *= rng.uniform(1.0, 1.3)
    head_alpha = cv2.GaussianBlur(head.astype(np.float32) / 255, (0, 0), _SS)
    gain = (1 + head_alpha * (shade - 1)).astype(np.float32)
    img = np.clip(img * gain[..., None], 0, 255).astype(np.uint8)

    hidden = posed.facing < 0.0
    occluded = False
    if rng.random() < 0.2:
        img, mask = _occluder(img, posed, rng)
        px = np.clip(np.round(posed.landmarks).astype(int), 0, big - 1)
        under = mask[px[:, 1], px[:, 0]] > 127
        hidden |= under
        occluded = bool(under.any())

    img = cv2.resize(
        img.astype(np.float32),
        (size, size),
        interpolation=cv2.INTER_AREA,
    )
    blurred = rng.random() < 0.2
    if blurred:
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.0, 2.2))
        else:
            length = int(rng.integers(5, 10))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2] = 1.0 / length
            rot = cv2.getRotationMatrix2D(
                ((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1
            )
            kernel = cv2.warpAffine(kernel, rot, (length, length))
            img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    else:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.6))
    img = img * rng.uniform(0.9, 1.1, 3) + rng.uniform(-15, 15)
    img = img + rng.normal(0, rng.uniform(1.0, 6.0), img.shape)
    if rng.random() < 0.05:
        grey = img.mean(2, keepdims=True)
        img = np.repeat(grey, 3, axis=2)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)

    # Render pixel P covers image pixels around (P - (SS - 1) / 2) / SS.
    landmarks = (posed.landmarks - (_SS - 1) / 2) / _SS
    corners = t3d.OUTER_EYE_CORNERS
    template = t3d.wflw_mean_face_3d()
    interocular = (
        np.linalg.norm(template[corners[0]] - template[corners[1]])
        * posed.unit
        / _SS
    )
    attributes = dict(
        largepose=int(abs(pose[0]) > LARGE_POSE_DEG),
        expression=int(expressive),
        illumination=int(strong),
        makeup=int(makeup),
        occlusion=int(occluded),
        blur=int(blurred),
    )
    return Sample(
        image=image,
        landmarks=landmarks,
        hidden=hidden,
        pose=pose,
        attributes=attributes,
        interocular=float(interocular),
    )


# --------------------------------------------------------------- writing
def _split_code(split: str) -> int:
    return zlib.crc32(split.encode('utf-8'))


def sample_rngs(
    seed: int, split: str, index: int
) -> Tuple[np.random.Generator, np.random.Generator]:
    """The scene and noise generators of one image.

    Derived from ``(seed, split, index)`` only, so the output does not
    depend on how images are spread over processes; the noise has its own
    stream, so the WFLW and 300W layouts share their images.
    """
    seq = np.random.SeedSequence([seed, _split_code(split), index])
    scene, noise = seq.spawn(2)
    return np.random.default_rng(scene), np.random.default_rng(noise)


def _round(values: np.ndarray, digits: int = 3) -> List[float]:
    return [round(float(v), digits) for v in np.ravel(values)]


def make_annotation(
    ann_id: int,
    clean: np.ndarray,
    annotated: np.ndarray,
    hidden: np.ndarray,
    sample: Sample,
) -> dict:
    """The COCO-style annotation of one face.

    ``bbox``, ``center`` and ``scale`` come from the clean landmarks'
    extent (side = max(w, h), ``scale`` = side / 200, as in MMPose's WFLW
    and 300W files; the pipeline's ``GetBBoxCenterScale`` pads by 1.25).
    Visibility ``v`` is 2, or 1 for a point turned away or occluded: both
    count as labelled, as every WFLW point is.
    """
    x0, y0 = clean.min(0)
    x1, y1 = clean.max(0)
    w, h = float(x1 - x0), float(y1 - y0)
    v = np.where(hidden, 1, 2)[:, None]
    return dict(
        id=ann_id,
        image_id=ann_id,
        category_id=1,
        iscrowd=0,
        num_keypoints=len(clean),
        keypoints=_round(np.concatenate([annotated, v], 1)),
        keypoints_clean=_round(np.concatenate([clean, v], 1)),
        bbox=_round([x0, y0, w, h]),
        area=round(w * h, 3),
        center=_round([(x0 + x1) / 2, (y0 + y1) / 2]),
        scale=round(max(w, h) / 200.0, 6),
        box_size=round(float(np.sqrt(w * h)), 3),
        interocular=round(sample.interocular, 3),
        yaw=round(sample.pose[0], 2),
        pitch=round(sample.pose[1], 2),
        roll=round(sample.pose[2], 2),
        attributes=dict(sample.attributes),
    )


def _layout(layout: str) -> Tuple[int, str]:
    if layout not in LAYOUTS:
        raise ValueError(
            f'layout must be one of {sorted(LAYOUTS)}, got {layout!r}'
        )
    return LAYOUTS[layout]


def synth_sample(
    seed: int,
    split: str,
    index: int,
    size: int = 128,
    layout: str = 'wflw',
    point_types: Optional[PointTypes] = None,
    sigmas: Tuple[float, float, float] = (SIGMA_T, SIGMA_N, SIGMA_C),
) -> Tuple[np.ndarray, dict]:
    """Renders image ``index`` of ``split`` and annotates it.

    Args:
        seed: The dataset seed.
        split: The split name (``'train'``, ``'test'``).
        index: 0-based image index within the split.
        size: Image side in pixels.
        layout: ``'wflw'`` (98 points) or ``'300w'`` (68 points).
        point_types: The layout's point types (looked up when None).
        sigmas: ``(sigma_t, sigma_n, sigma_c)`` as fractions of ``d``.

    Returns:
        The BGR image and its annotation (``id`` is ``index + 1``).
    """
    _layout(layout)
    pt = point_types or get_point_types(layout)
    scene_rng, noise_rng = sample_rngs(seed, split, index)
    sample = render_face(scene_rng, size)
    clean, hidden = sample.landmarks, sample.hidden
    if layout == '300w':
        clean, hidden = clean[WFLW_TO_300W], hidden[WFLW_TO_300W]
    annotated = annotation_noise(
        clean, pt, noise_rng, sample.interocular, *sigmas
    )
    ann = make_annotation(index + 1, clean, annotated, hidden, sample)
    return sample.image, ann


def image_name(split: str, index: int) -> str:
    """File name of image ``index`` of ``split``, under ``images/``."""
    return f'{split}_{index + 1:05d}.jpg'


def _init_worker() -> None:
    # One OpenCV thread per process: the processes already fill the cores.
    cv2.setNumThreads(1)


def _work(args) -> dict:
    out_dir, seed, split, index, size, layout, pt, sigmas = args
    image, ann = synth_sample(seed, split, index, size, layout, pt, sigmas)
    name = image_name(split, index)
    cv2.imwrite(
        osp.join(out_dir, 'images', name),
        image,
        [cv2.IMWRITE_JPEG_QUALITY, 95],
    )
    return ann


def write_synthface(
    out_dir: str,
    splits: Optional[Dict[str, int]] = None,
    size: int = 128,
    layout: str = 'wflw',
    seed: int = 0,
    workers: int = 1,
    sigma_t: float = SIGMA_T,
    sigma_n: float = SIGMA_N,
    sigma_c: float = SIGMA_C,
    progress: bool = True,
) -> Dict[str, str]:
    """Renders SynthFace and writes MMPose's JSON annotations.

    Writes ``out_dir/images/<split>_NNNNN.jpg`` and
    ``out_dir/annotations/face_landmarks_<layout>_<split>.json``.

    Args:
        out_dir: The data root.
        splits: Images per split. Defaults to 2,000 train and 500 test.
        size: Image side in pixels (at least 32).
        layout: ``'wflw'`` (98 points) or ``'300w'`` (68 points).
        seed: Everything written is a function of the seed.
        workers: Processes that render images; the output does not depend
            on it.
        sigma_t: Along-curve noise std, as a fraction of ``d``.
        sigma_n: Across-curve noise std, as a fraction of ``d``.
        sigma_c: Corner and isolated-point noise std, as a fraction of
            ``d``.
        progress: Whether to show a progress bar.

    Returns:
        The annotation file of each split.
    """
    num_keypoints, ann_name = _layout(layout)
    splits = dict(train=2000, test=500) if splits is None else splits
    for split, num in splits.items():
        if not isinstance(num, int) or num < 0:
            raise ValueError(
                f'split {split!r} needs a non-negative image count, got '
                f'{num!r}'
            )
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    if size < 32:
        raise ValueError(f'size must be at least 32 pixels, got {size}')
    if workers < 1:
        raise ValueError(f'workers must be at least 1, got {workers}')
    pt = get_point_types(layout)
    sigmas = (float(sigma_t), float(sigma_n), float(sigma_c))
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    jobs = [
        (out_dir, seed, split, i, size, layout, pt, sigmas)
        for split, num in splits.items()
        for i in range(num)
    ]
    from tqdm import tqdm

    bar = tqdm(
        total=len(jobs), desc='SynthFace', unit='img', disable=not progress
    )
    anns: List[dict] = []
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            anns.append(_work(job))
            bar.update()
    else:
        # Not fork: a forked child inherits the locks of the parent's
        # OpenCV and OpenMP thread pools and can deadlock on them. The
        # fork server imports this module once, then forks clean workers.
        if 'forkserver' in get_all_start_methods():
            ctx = get_context('forkserver')
            ctx.set_forkserver_preload([__name__])
        else:
            ctx = get_context('spawn')
        with ctx.Pool(workers, _init_worker) as pool:
            for ann in pool.imap(_work, jobs, chunksize=8):
                anns.append(ann)
                bar.update()
    bar.close()

    info = dict(
        description='SynthFace: rendered faces with along-curve '
        'annotation noise (mmaniso)',
        layout=layout,
        num_keypoints=num_keypoints,
        seed=seed,
        image_size=size,
        noise=dict(
            model='curve points slide along their curve by N(0, sigma_t*d) '
            'in arc length and move across it by N(0, sigma_n*d); corners '
            'and isolated points move by N(0, sigma_c*d) in x and y',
            d='frontal outer-eye-corner distance at the face scale '
            '(annotation field interocular)',
            sigma_t=sigmas[0],
            sigma_n=sigmas[1],
            sigma_c=sigmas[2],
        ),
        point_types=pt.to_dict(),
        keypoints_clean='the exact landmarks, [x, y, v] * K',
        visibility='v = 2 visible, 1 turned away or under an occluder',
    )
    paths, start = {}, 0
    for split, num in splits.items():
        split_anns = anns[start : start + num]
        start += num
        images = [
            dict(
                id=ann['image_id'],
                file_name=image_name(split, i),
                height=size,
                width=size,
            )
            for i, ann in enumerate(split_anns)
        ]
        coco = dict(
            info=dict(info, split=split),
            images=images,
            annotations=split_anns,
            categories=[dict(id=1, name='face', supercategory='face')],
        )
        path = osp.join(out_dir, 'annotations', ann_name.format(split=split))
        with open(path, 'w') as f:
            json.dump(coco, f)
        paths[split] = path
    return paths


def preview_grid(
    data_root: str,
    ann_file: str,
    out_file: str,
    num: int = 16,
    cell: int = 192,
) -> str:
    """Saves a grid of the first images with clean (green) and annotated
    (red) landmarks.

    Args:
        data_root: The data root with ``images/``.
        ann_file: The annotation file, relative to ``data_root`` or
            absolute.
        out_file: Where to write the PNG.
        num: How many images (a square grid, filled row by row).
        cell: Side of each grid cell in pixels.

    The PNG has a 256-colour palette, which keeps it small enough for the
    documentation.

    Returns:
        ``out_file``.
    """
    path = ann_file if osp.isabs(ann_file) else osp.join(data_root, ann_file)
    with open(path) as f:
        coco = json.load(f)
    names = {img['id']: img['file_name'] for img in coco['images']}
    anns = coco['annotations'][:num]
    cols = int(np.ceil(np.sqrt(max(len(anns), 1))))
    rows = int(np.ceil(len(anns) / cols))
    grid = np.zeros((rows * cell, cols * cell, 3), np.uint8)
    for n, ann in enumerate(anns):
        img = cv2.imread(osp.join(data_root, 'images', names[ann['image_id']]))
        k = cell / img.shape[0]
        img = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_CUBIC)
        for field, colour in (
            ('keypoints_clean', (0, 220, 0)),
            ('keypoints', (0, 0, 255)),
        ):
            pts = np.asarray(ann[field]).reshape(-1, 3)[:, :2]
            pts = (pts + 0.5) * k - 0.5
            for p in pts:
                c = tuple(int(v) for v in np.round(p * _ONE))
                cv2.circle(img, c, _ONE, colour, -1, cv2.LINE_AA, _SHIFT)
        r, c = divmod(n, cols)
        grid[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = img
    from PIL import Image

    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    rgb = Image.fromarray(np.ascontiguousarray(grid[..., ::-1]))
    palette = rgb.quantize(256, dither=Image.Dither.NONE)
    palette.save(out_file, format='PNG', optimize=True)
    return out_file


def summarise(paths: Dict[str, str]) -> Sequence[str]:
    """One line per annotation file: face count and attribute counts."""
    lines = []
    for split, path in paths.items():
        with open(path) as f:
            anns = json.load(f)['annotations']
        flags = ', '.join(
            f'{a} {sum(x["attributes"][a] for x in anns)}' for a in ATTRIBUTES
        )
        lines.append(f'{split}: {path} ({len(anns)} faces; {flags})')
    return lines
