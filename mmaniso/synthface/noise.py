"""SynthFace's annotation model: noise that runs along the curves.

Rayhan, Galata and Cootes (BMVC 2020) argue that annotators agree on where
a curve (a jaw line, a lid, a lip) is, but not on where along it a point
lies. :func:`annotation_noise` makes that literal; from the exact *clean*
landmarks it makes *annotated* ones:

* a point on a curve slides along it by :math:`N(0, \\sigma_t)` in arc
  length, moving along the polyline of the curve's clean points (so it
  stays on the curve; a closed curve wraps round, an open one continues
  straight past its ends), then moves off it by :math:`N(0, \\sigma_n)`
  along the normal of the polyline there;
* a corner (eye and mouth corners) or an isolated point (pupils) moves by
  :math:`N(0, \\sigma_c)` in x and y.

The curves and corners are those of :func:`get_point_types` for the layout.
The sigmas are fractions of the face's inter-ocular distance ``d``; the
defaults are :math:`\\sigma_t = 0.06 d`, :math:`\\sigma_n = 0.01 d` and
:math:`\\sigma_c = 0.01 d`. Pure numpy.
"""

from typing import Optional, Tuple, Union

import numpy as np

from mmaniso.datasets.layouts import LAYOUTS
from mmaniso.datasets.point_types import PointTypes, get_point_types

#: Default noise scales, as fractions of the inter-ocular distance.
SIGMA_T = 0.06
SIGMA_N = 0.01
SIGMA_C = 0.01


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
    """Distance of the outer eye corners of a face of a known layout
    (:data:`~mmaniso.datasets.layouts.LAYOUTS`)."""
    if point_types.name not in LAYOUTS:
        raise ValueError(
            f'no outer eye corners known for point types '
            f'{point_types.name!r}; pass interocular= explicitly'
        )
    a, b = LAYOUTS[point_types.name].outer_eye_corners
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
            eye corners of ``points`` (layouts of
            :data:`~mmaniso.datasets.layouts.LAYOUTS` only).
        sigma_t: Along-curve std as a fraction of ``d``.
        sigma_n: Across-curve std as a fraction of ``d``.
        sigma_c: Std of corners and isolated points in x and in y, as a
            fraction of ``d``.

    Returns:
        The annotated landmarks, shape (K, 2).

    Example:
        >>> from mmaniso.synthface.face_template import wflw_mean_face
        >>> clean = wflw_mean_face() * 50 + 64
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
