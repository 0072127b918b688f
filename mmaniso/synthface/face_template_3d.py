"""A 3-D face: the 2-D WFLW mean face lifted to depth, deformed and posed.

:func:`~mmaniso.synthface.face_template.wflw_mean_face` gives every WFLW
landmark an (x, y) in a face frame (x to the image right, y down, the jaw
spanning about [-1, 1]). Here each landmark also gets a depth z, towards
the camera, from a smooth head-like surface: the jaw contour curves back
to the temples, the brow ridge stands forward of the eyes, the nose tip is
the most forward point and the mouth bulges over the teeth. The numbers
are plausible, not measured: they only have to make a posed face look like
a face and hide what a real head would hide.

On top of the template come a few shape modes (face width and length, eye
spacing and size, nose length and depth, mouth width, lip thickness, jaw
squareness) and expressions (mouth opening, smile, brow raise or frown,
eye closure, gaze), then a rotation (yaw, pitch, roll) and a perspective
projection. Auxiliary outline points that are no landmarks (forehead,
cheeks, hair) let a renderer fill the head.
"""

from typing import Dict, NamedTuple, Optional

import numpy as np

from mmaniso.datasets.layouts import LAYOUTS

from .face_template import wflw_mean_face

NUM_POINTS = LAYOUTS['wflw'].num_keypoints

# WFLW index groups (0-based), image-left first.
JAW = np.arange(0, 33)
BROW_L = np.arange(33, 42)
BROW_R = np.arange(42, 51)
NOSE_BRIDGE = np.arange(51, 55)
NOSE_BASE = np.arange(55, 60)
EYE_L = np.arange(60, 68)
EYE_R = np.arange(68, 76)
OUTER_LIP = np.arange(76, 88)
INNER_LIP = np.arange(88, 96)
PUPILS = np.array(LAYOUTS['wflw'].pupils)
NOSE_TIP = 54
CHIN = 16
#: Outer eye corners, whose distance is the inter-ocular distance.
OUTER_EYE_CORNERS = LAYOUTS['wflw'].outer_eye_corners
# Upper-lid points and the lower-lid points straight below them.
_LID_PAIRS = np.array([[61, 67], [62, 66], [63, 65], [69, 75], [70, 74]])
_LID_PAIRS = np.concatenate([_LID_PAIRS, [[71, 73]]])
_LOWER_LIPS = np.array([83, 84, 85, 86, 87, 93, 94, 95])
_MOUTH_CORNERS = np.array([76, 82, 88, 92])

# The head as an ellipsoid, for surface normals: centre and semi-axes.
_HEAD_CENTRE = np.array([0.0, -0.05, -0.78])
_HEAD_AXES = np.array([1.02, 1.3, 1.0])
# Rotations pivot about this point (roughly the neck's top), so that a
# turned face swings like a head rather than spinning about its nose.
PIVOT = np.array([0.0, 0.0, -0.6])


def _depth(face: np.ndarray) -> np.ndarray:
    """Depth (towards the camera) of each WFLW landmark, shape (98,)."""
    x = face[:, 0]
    z = np.empty(NUM_POINTS)
    z[JAW] = 0.12 - 0.62 * x[JAW] ** 2
    for brow in (BROW_L, BROW_R):
        z[brow] = 0.24 - 0.45 * x[brow] ** 2
    # Bridge from between the eyes (z 0.22) down to the tip (0.58).
    z[NOSE_BRIDGE] = np.linspace(0.22, 0.58, 4)
    z[NOSE_BASE] = 0.38 - 3.0 * x[NOSE_BASE] ** 2
    for eye in (EYE_L, EYE_R):
        z[eye] = 0.17 - 0.62 * x[eye] ** 2
        upper = eye[1:4]
        z[upper] += 0.03  # the lid over the eyeball
    z[PUPILS] = 0.2 - 0.62 * x[PUPILS] ** 2
    z[OUTER_LIP] = 0.33 - 0.9 * x[OUTER_LIP] ** 2
    z[INNER_LIP] = 0.3 - 0.9 * x[INNER_LIP] ** 2
    return z


def wflw_mean_face_3d() -> np.ndarray:
    """The WFLW mean face with depth, shape (98, 3).

    x and y are those of :func:`wflw_mean_face`; z points towards the
    camera, with the eye corners near 0 and the nose tip at about 0.58.

    Example:
        >>> face = wflw_mean_face_3d()
        >>> face.shape, int(face[:, 2].argmax())
        ((98, 3), 54)
    """
    face = wflw_mean_face()
    # The 2-D template's lips part a little; close them, so that mouth
    # opening starts from a closed mouth.
    mouth_y = face[[88, 92], 1].mean()
    face[INNER_LIP, 1] = mouth_y + 0.2 * (face[INNER_LIP, 1] - mouth_y)
    return np.concatenate([face, _depth(face)[:, None]], 1)


def outline_points_3d(hairline: float = 0.75) -> Dict[str, np.ndarray]:
    """Auxiliary head outline points that are no landmarks.

    Args:
        hairline: Height of the hairline above the temples, in face units
            (the forehead's top is 0.88 above them).

    Returns:
        ``forehead``: the top of the face from temple to temple, shape
        (N, 3); ``cheeks``: points on the cheeks that bound the face when
        it turns, shape (M, 3); ``hair``: the outline of a hair cap around
        the top of the head, shape (L, 3); ``hairline``: the lower edge of
        the hair on the forehead, temple to temple, shape (N, 3).
    """

    def forehead_arc(height: float, inset: float) -> np.ndarray:
        t = np.linspace(np.pi, 2 * np.pi, 15)
        x, y = inset * np.cos(t), -0.25 + height * np.sin(t)
        z = 0.1 - 0.62 * x**2 - 0.25 * ((-0.25 - y) / 0.88) ** 2
        return np.stack([x, y, z], 1)

    cx = np.array([-0.93, -0.85, -0.7, 0.7, 0.85, 0.93])
    cy = np.array([-0.05, 0.25, 0.5, 0.5, 0.25, -0.05])
    cheeks = np.stack([cx, cy, 0.12 - 0.6 * cx**2], 1)
    t = np.linspace(np.pi * 0.92, np.pi * 2.08, 19)
    hx, hy = 1.16 * np.cos(t), -0.22 + 1.2 * np.sin(t)
    hz = -0.1 - 0.55 * (hx / 1.16) ** 2 - 0.2 * np.clip(-hy - 0.2, 0, None)
    return dict(
        forehead=forehead_arc(0.88, 1.0),
        cheeks=cheeks,
        hair=np.stack([hx, hy, hz], 1),
        hairline=forehead_arc(hairline, 0.99),
    )


def head_normals(points: np.ndarray) -> np.ndarray:
    """Outward unit normals of the head ellipsoid at (or near) points.

    Args:
        points: 3-D points in the face frame, shape (N, 3).

    Returns:
        Unit normals, shape (N, 3).
    """
    n = (points - _HEAD_CENTRE) / _HEAD_AXES**2
    return n / np.linalg.norm(n, axis=1, keepdims=True)


#: Number of coefficients :func:`shape_deform` takes.
NUM_SHAPE_MODES = 8


def shape_deform(
    face: np.ndarray, coeffs: np.ndarray, jitter: Optional[np.ndarray] = None
) -> np.ndarray:
    """Applies the shape modes to a 3-D face.

    Args:
        face: WFLW face, shape (98, 3).
        coeffs: Mode coefficients, about N(0, 1) each, shape (8,): face
            width, lower-face length, eye spacing, eye size, nose length,
            nose depth, mouth width, jaw squareness.
        jitter: Optional per-point offsets, shape (98, 3).

    Returns:
        The deformed face, shape (98, 3).
    """
    if len(coeffs) != NUM_SHAPE_MODES:
        raise ValueError(
            f'coeffs must hold {NUM_SHAPE_MODES} shape coefficients, got '
            f'{len(coeffs)}'
        )
    f = face.copy()
    width, length, spacing, eye_size, nose_len, nose_depth, mouth, sq = coeffs
    f[JAW, 0] *= 1 + 0.07 * width
    f[:, 0] *= 1 + 0.02 * width
    below = np.clip((f[:, 1] + 0.2) / 1.2, 0, None)
    f[:, 1] += 0.09 * length * below
    for eye, brow, pupil, side in (
        (EYE_L, BROW_L, 96, -1),
        (EYE_R, BROW_R, 97, 1),
    ):
        centre = f[pupil, :2].copy()
        f[eye, :2] = centre + (f[eye, :2] - centre) * (1 + 0.1 * eye_size)
        for part in (eye, brow, [pupil]):
            f[part, 0] += side * 0.035 * spacing
    nose = np.concatenate([NOSE_BRIDGE[1:], NOSE_BASE])
    f[nose, 1] += 0.04 * nose_len
    f[NOSE_BRIDGE, 2] *= 1 + 0.12 * nose_depth
    f[NOSE_BASE, 2] *= 1 + 0.08 * nose_depth
    lips = np.concatenate([OUTER_LIP, INNER_LIP])
    f[lips, 0] *= 1 + 0.08 * mouth
    lower_jaw = JAW[(f[JAW, 1] > 0.1) & (np.abs(f[JAW, 0]) > 0.2)]
    bump = np.sin(np.pi * np.clip((f[lower_jaw, 1] - 0.1) / 0.9, 0, 1))
    f[lower_jaw, 0] += np.sign(f[lower_jaw, 0]) * 0.07 * sq * bump
    if jitter is not None:
        f += jitter
    return f


class Expression(NamedTuple):
    """Expression parameters.

    Attributes:
        mouth_open: Jaw drop in face units (0 closed, about 0.35 wide open).
        smile: Mouth corners up and out, in [0, 1].
        brow: Brow raise (positive) or frown (negative), in [-1, 1].
        eye_closure: Closure of the image-left and image-right eye, each in
            [0, 1) (1 would close the lids completely).
        gaze: Pupil offset (dx, dy) in face units.
    """

    mouth_open: float = 0.0
    smile: float = 0.0
    brow: float = 0.0
    eye_closure: tuple = (0.0, 0.0)
    gaze: tuple = (0.0, 0.0)


def express(face: np.ndarray, expr: Expression) -> np.ndarray:
    """Applies an expression to a 3-D face.

    Args:
        face: WFLW face, shape (98, 3).
        expr: The expression.

    Returns:
        The face with the expression, shape (98, 3).
    """
    f = face.copy()
    mouth_y = f[INNER_LIP, 1].mean()
    # Smile: corners up and out, the whole mouth curving upwards at its
    # ends; the lower lids rise a little.
    half = np.abs(f[_MOUTH_CORNERS, 0]).max()
    lips = np.concatenate([OUTER_LIP, INNER_LIP])
    rel = f[lips, 0] / max(half, 1e-6)
    f[lips, 0] *= 1 + 0.12 * expr.smile
    f[lips, 1] -= 0.08 * expr.smile * rel**2
    f[[65, 66, 67, 73, 74, 75], 1] -= 0.015 * expr.smile
    # Mouth opening: the lower lips drop fully, the corners half, the
    # lower jaw in proportion to how far below the mouth it lies.
    drop = expr.mouth_open
    f[_LOWER_LIPS, 1] += drop
    f[_MOUTH_CORNERS, 1] += 0.5 * drop
    f[[89, 90, 91], 1] -= 0.08 * drop
    w = np.clip((f[JAW, 1] - mouth_y + 0.25) / 0.65, 0, 1)
    f[JAW, 1] += 0.85 * drop * w
    # Brows: raised evenly, or pulled down and inwards at the inner ends.
    for brow, inner_x in ((BROW_L, -0.15), (BROW_R, 0.15)):
        xs = f[brow, 0]
        inner = 1 - np.clip(np.abs(xs - inner_x) / 0.7, 0, 1)
        if expr.brow >= 0:
            f[brow, 1] -= 0.1 * expr.brow
        else:
            f[brow, 1] -= 0.07 * expr.brow * (0.4 + inner)
            f[brow, 0] -= np.sign(xs) * 0.04 * expr.brow * inner
    # Eye closure: upper lids move towards the lower lids.
    for pairs, closure in (
        (_LID_PAIRS[:3], expr.eye_closure[0]),
        (_LID_PAIRS[3:], expr.eye_closure[1]),
    ):
        up, lo = pairs[:, 0], pairs[:, 1]
        f[up, 1] += closure * (f[lo, 1] - f[up, 1])
    f[PUPILS, 0] += expr.gaze[0]
    f[PUPILS, 1] += expr.gaze[1]
    return f


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation, shape (3, 3), angles in degrees.

    In the face frame (x image right, y down, z towards the camera):
    positive yaw turns the nose towards the image's right, positive pitch
    lifts it (the face looks up), positive roll turns the face clockwise
    in the image. Applied as roll after yaw after pitch.
    """
    p, y, r = np.deg2rad([pitch, yaw, roll])
    rx = np.array(
        [
            [1, 0, 0],
            [0, np.cos(p), -np.sin(p)],
            [0, np.sin(p), np.cos(p)],
        ]
    )
    ry = np.array(
        [
            [np.cos(y), 0, np.sin(y)],
            [0, 1, 0],
            [-np.sin(y), 0, np.cos(y)],
        ]
    )
    rz = np.array(
        [
            [np.cos(r), -np.sin(r), 0],
            [np.sin(r), np.cos(r), 0],
            [0, 0, 1],
        ]
    )
    return rz @ ry @ rx


def pose_points(
    points: np.ndarray, rotation: np.ndarray, distance: float = 7.0
) -> np.ndarray:
    """Rotates face-frame points about :data:`PIVOT` and projects them.

    A pinhole camera at ``distance`` face units in front of the pivot, with
    the focal length chosen so that the pivot's depth keeps scale 1.

    Args:
        points: Points in the face frame, shape (N, 3).
        rotation: From :func:`rotation_matrix`, shape (3, 3).
        distance: Camera distance; larger is closer to orthographic.

    Returns:
        Projected (x, y) in face units, shape (N, 2).
    """
    rotated = (points - PIVOT) @ rotation.T  # (N, 3), pivot at the origin
    factor = distance / (distance - rotated[:, 2])
    return rotated[:, :2] * factor[:, None]


def facing(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """How much each point's head surface faces the camera, shape (N,).

    The z component of the rotated ellipsoid normal: 1 facing the camera,
    0 on the silhouette, negative turned away.
    """
    return (head_normals(points) @ rotation.T)[:, 2]
