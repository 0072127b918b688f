"""SynthFace's renderer: random faces drawn with OpenCV, and their poses.

The faces come from the 3-D template of :mod:`.face_template_3d`, with
random shape modes, expressions, skin tone, hair, directional lighting,
background clutter, occluders and blur. Poses are skewed towards frontal
as in real datasets: yaw is N(0, 12 degrees) with probability 0.8 and
U(-70, 70) degrees otherwise; pitch and roll are N(0, 8) and N(0, 9)
degrees. :func:`render_face` returns the image, the exact (clean) WFLW
landmarks, which of them are hidden, the pose and WFLW's six attribute
flags (``largepose`` is ``|yaw| > 40``).
"""

from typing import Dict, NamedTuple, Tuple

import cv2
import numpy as np

from . import face_template_3d as t3d

LARGE_POSE_DEG = 40.0

_SS = 2  # supersampling factor of the renderer
_SHIFT = 4  # sub-pixel bits of OpenCV's drawing functions
_ONE = 1 << _SHIFT


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
# Colour tables: data, not logic.
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
    left, right = t3d.PUPILS
    img = _draw_eye(img, lm, t3d.EYE_L, left, facing, colours, unit, makeup)
    img = _draw_eye(img, lm, t3d.EYE_R, right, facing, colours, unit, makeup)
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
        for pupil in t3d.PUPILS:
            _ellipse(mask, lm[pupil], (0.24 * unit, 0.17 * unit), 0, 255)
        _poly(mask, lm[t3d.PUPILS], 255, False, _SS * 2)
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
