"""SynthFace's annotation models: noise that runs along the curves.

Rayhan, Galata and Cootes (BMVC 2020) argue that annotators agree on where
a curve (a jaw line, a lid, a lip) is, but not on where along it a point
lies. :func:`annotation_noise` makes that literal; from the exact *clean*
landmarks it makes *annotated* ones under one of :data:`NOISE_MODELS`:

* ``'arc'`` (the default, and the only model before there was a choice): a
  point on a curve slides along it by :math:`N(0, \\sigma_t)` in arc
  length, moving along the polyline of the curve's clean points (so it
  stays on the curve; a closed curve wraps round, an open one continues
  straight past its ends), then moves off it by :math:`N(0, \\sigma_n)`
  along the normal of the polyline there. Sliding round a bend pulls the
  expected label to the inside of the bend: the mean label is off the
  clean point by up to about 1.6 % of ``d`` at the eyes.
* ``'tangent'``: a point on a curve moves by :math:`N(0, \\sigma_t)` along
  the tangent line of the clean curve at the point and by
  :math:`N(0, \\sigma_n)` along its normal (:func:`tangent_noise`; the
  tangent follows :func:`~mmaniso.ops.tangents.curve_tangents`). Zero-mean.
* ``'resampled'``: WFLW-like. Each curve's key points (corners, ends of
  open curves and the :data:`RESAMPLING_ANCHORS`) get the ``'tangent'``
  noise; the curve, a smooth spline through the clean points, follows them
  and gets a smooth normal displacement; the other points keep their
  clean share of the arc between the key points along it, so they share
  the key points' along-curve error (:func:`resampled_noise`).
* ``'300w'``: ``'tangent'`` with per-curve-group sigmas calibrated on real
  300W shapes (:data:`SIGMAS_300W`, from
  ``tools/misc/calibrate_noise.py``).

In every model a corner (eye and mouth corners) or an isolated point
(pupils) moves by :math:`N(0, \\sigma_c)` in x and y. The curves and
corners are those of :func:`get_point_types` for the layout. The sigmas are
fractions of the face's inter-ocular distance ``d``; the defaults are
:math:`\\sigma_t = 0.06 d`, :math:`\\sigma_n = 0.01 d` and
:math:`\\sigma_c = 0.01 d`. Numpy, with the tangents from ``mmaniso.ops``.
"""

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mmaniso.datasets.layouts import LAYOUTS
from mmaniso.datasets.point_types import PointTypes, get_point_types
from mmaniso.ops.tangents import curve_tangents

#: Default noise scales, as fractions of the inter-ocular distance.
SIGMA_T = 0.06
SIGMA_N = 0.01
SIGMA_C = 0.01

#: The annotation models :func:`annotation_noise` knows.
NOISE_MODELS = ('arc', 'tangent', 'resampled', '300w')

#: One line per model, recorded in SynthFace's JSON ``info``.
NOISE_DESCRIPTIONS = {
    'arc': 'curve points slide along their curve by N(0, sigma_t*d) '
    'in arc length and move across it by N(0, sigma_n*d); corners '
    'and isolated points move by N(0, sigma_c*d) in x and y',
    'tangent': 'curve points move by N(0, sigma_t*d) along the tangent '
    'line of the clean curve and by N(0, sigma_n*d) along its normal '
    '(zero-mean); corners and isolated points move by N(0, sigma_c*d) '
    'in x and y',
    'resampled': 'key points (corners, ends of open curves, anchors) '
    'move as in tangent; the spline through the clean points follows '
    'them, their along- and across-curve shifts interpolated in arc '
    'length separately, and bends by a smooth normal field of rms '
    'sigma_n*d that is 0 at the key points (sine modes, half-wavelengths '
    'of 8 or more point spacings); the other points keep their clean '
    'share of the arc between the key points along it; isolated points '
    'move by N(0, sigma_c*d) in x and y',
    '300w': 'tangent with sigma_t and sigma_n per curve group, calibrated '
    'on real 300W shapes (second-difference residuals)',
}

#: Key points of the ``'resampled'`` model besides corners and the ends of
#: open curves, per layout and curve: points an annotator places first and
#: on their own, the others being spread between them. The chin
#: (the jaw's middle point), the subnasale (the nose base's middle) and the
#: midline points of the upper and lower lips.
RESAMPLING_ANCHORS: Dict[str, Dict[str, Tuple[int, ...]]] = {
    'wflw': dict(
        jaw=(16,), nose_base=(57,), outer_lip=(79, 85), inner_lip=(90, 94)
    ),
    '300w': dict(
        jaw=(8,), nose_base=(33,), outer_lip=(51, 57), inner_lip=(62, 66)
    ),
}

#: Most sine modes of the ``'resampled'`` model's normal field; a stroke
#: gets mode ``m`` only if it spans at least ``FIELD_SPACINGS * m`` point
#: spacings (mode 1 always), so the field never bends at the scale of the
#: points.
FIELD_MODES = 3
FIELD_SPACINGS = 8

#: Dense samples per clean segment of the ``'resampled'`` model's spline.
SPLINE_SAMPLES = 32

#: The curve group of each curve name of the WFLW and 300W point types, for
#: :data:`SIGMAS_300W`; a curve of another name gets the ``'all'`` sigmas.
CURVE_GROUPS: Dict[str, str] = {
    'jaw': 'jaw',
    'left_brow': 'brow',
    'right_brow': 'brow',
    'left_brow_upper': 'brow',
    'left_brow_lower': 'brow',
    'right_brow_upper': 'brow',
    'right_brow_lower': 'brow',
    'nose_bridge': 'nose_bridge',
    'nose_base': 'nose_base',
    'left_eye': 'eye',
    'right_eye': 'eye',
    'outer_lip': 'outer_lip',
    'inner_lip': 'inner_lip',
}

#: ``(sigma_t, sigma_n)`` of the ``'300w'`` model per curve group, as
#: fractions of ``d``: the ``'tangent'`` sigmas with which the frontal mean
#: face reproduces the second-difference residuals of the real 300W test
#: shapes (:data:`RESIDUALS_300W`). Made by
#: ``python tools/misc/calibrate_noise.py /path/to/real_shapes``
#: (docs/synthface.md has its output and command).
SIGMAS_300W: Dict[str, Tuple[float, float]] = {
    'jaw': (0.0097, 0.0117),
    'brow': (0.0063, 0.0123),
    'nose_bridge': (0.0030, 0.0018),
    'nose_base': (0.0050, 0.0063),
    'eye': (0.0062, 0.0067),
    'outer_lip': (0.0118, 0.0104),
    'inner_lip': (0.0182, 0.0111),
    'all': (0.0085, 0.0098),
}

#: The real 300W residuals the calibration matched (1289 faces of the
#: public and private test sets): the :func:`robust_spread` of the along-
#: and across-curve :func:`second_difference_residuals`, as fractions of
#: the image's outer-eye-corner distance, per curve group. Same command.
RESIDUALS_300W: Dict[str, Tuple[float, float]] = {
    # Same keys as SIGMAS_300W: a table of measured data, not logic.
    'jaw': (0.0118, 0.0143),
    'brow': (0.0078, 0.0150),
    'nose_bridge': (0.0037, 0.0022),
    'nose_base': (0.0061, 0.0076),
    'eye': (0.0089, 0.0106),
    'outer_lip': (0.0144, 0.0129),
    'inner_lip': (0.0214, 0.0138),
    'all': (0.0106, 0.0122),
}


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
    a, b = _outer_eye_corners(point_types)
    return float(np.linalg.norm(points[a] - points[b]))


def clean_tangents(
    points: np.ndarray, point_types: Union[str, dict, PointTypes]
) -> Tuple[np.ndarray, np.ndarray]:
    """Unit tangents of the curves at each landmark, in numpy.

    The rule of :func:`~mmaniso.ops.tangents.curve_tangents` (central
    difference of the neighbours, one-sided at the ends of an open curve,
    wrapping round a closed one; none at corners and isolated points),
    which computes them.

    Args:
        points: Landmarks, shape (..., K, 2).
        point_types: The layout's curves and corners.

    Returns:
        Unit tangents, shape (..., K, 2), zeros where there is none, and
        whether a point has one, shape (..., K).

    Example:
        >>> from mmaniso.synthface.face_template import wflw_mean_face
        >>> t, valid = clean_tangents(wflw_mean_face(), 'wflw')
        >>> t.shape, bool(valid[16]), bool(valid[60])  # chin, eye corner
        ((98, 2), True, False)
    """
    pt = _point_types(point_types)
    points = np.asarray(points, dtype=np.float64)
    batch = points.shape[:-2]
    flat = torch.tensor(points.reshape(-1, pt.num_keypoints, 2))
    tangents, valid = curve_tangents(flat, pt.neighbours())
    return (
        tangents.numpy().reshape(points.shape),
        valid.numpy().reshape(batch + (pt.num_keypoints,)),
    )


def second_difference_residuals(
    points: np.ndarray,
    point_types: Union[str, dict, PointTypes],
    interocular: Optional[Union[float, np.ndarray]] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along- and across-curve second differences of the curve points.

    .. math:: r_i = \\frac{p_i - (p_{i-1} + p_{i+1}) / 2}{d}, \\quad
        a_i = r_i \\cdot t_i, \\quad c_i = r_i \\cdot n_i

    for every non-corner curve point with two neighbours (a closed curve
    wraps round), :math:`t_i` the unit central difference of its
    neighbours and :math:`n_i` its normal. On points evenly spaced along a
    smooth curve :math:`a_i` is about 0 and :math:`c_i` is the curvature
    term; annotation noise spreads both.

    Args:
        points: Landmarks, shape (..., K, 2).
        point_types: The layout's curves and corners.
        interocular: The scale ``d``, a number or shape (...). Defaults to
            each face's outer-eye-corner distance (known layouts only).

    Returns:
        ``along`` and ``across``, each shape (..., M), NaN where the
        neighbours coincide, and the keypoint index of each column, (M,).

    Example:
        >>> from mmaniso.synthface.face_template import wflw_mean_face
        >>> along, across, idx = second_difference_residuals(
        ...     wflw_mean_face(), 'wflw')
        >>> along.shape, idx[:3].tolist()
        ((74,), [1, 2, 3])
    """
    pt = _point_types(point_types)
    points = np.asarray(points, dtype=np.float64)
    neighbours = pt.neighbours().numpy()
    idx = np.flatnonzero((neighbours >= 0).all(0))
    prev, nxt = neighbours[:, idx]
    if interocular is None:
        a, b = _outer_eye_corners(pt)
        gap = points[..., a, :] - points[..., b, :]
        interocular = np.linalg.norm(gap, axis=-1)
    d = np.asarray(interocular, dtype=np.float64)[..., None]
    r = points[..., idx, :] - (points[..., prev, :] + points[..., nxt, :]) / 2
    tangents, valid = clean_tangents(points, pt)
    t = tangents[..., idx, :]  # (..., M, 2)
    along = (r * t).sum(-1) / d
    across = (r[..., 1] * t[..., 0] - r[..., 0] * t[..., 1]) / d
    bad = ~valid[..., idx]
    along[bad] = np.nan
    across[bad] = np.nan
    return along, across, idx


def robust_spread(values: np.ndarray) -> float:
    """Robust std of residuals about each column's median, pooled.

    .. math:: 1.4826 \\operatorname{median}_{n, i} |v_{ni} -
        \\operatorname{median}_n v_{ni}|

    Args:
        values: Residuals of N faces at M points, shape (N, M); NaNs are
            ignored.

    Returns:
        The spread; the std for Gaussian residuals, blind to a few gross
        outliers and to each point's systematic offset (its curvature).
    """
    values = np.asarray(values, dtype=np.float64)
    dev = np.abs(values - np.nanmedian(values, 0, keepdims=True))
    return float(1.4826 * np.nanmedian(dev))


def curve_groups(
    point_types: Union[str, dict, PointTypes],
) -> Dict[str, np.ndarray]:
    """The non-corner points of each curve group (:data:`CURVE_GROUPS`).

    Args:
        point_types: The layout's curves and corners.

    Returns:
        Keypoint indices per group, each sorted, in order of first use;
        curves of unknown names are in group ``'other'``.
    """
    pt = _point_types(point_types)
    corners = set(pt.corners)
    groups: Dict[str, list] = {}
    for curve in pt.curves:
        group = CURVE_GROUPS.get(curve.name, 'other')
        groups.setdefault(group, []).extend(
            i for i in curve.indices if i not in corners
        )
    return {g: np.array(sorted(idx)) for g, idx in groups.items()}


def sigmas_300w(
    point_types: Union[str, dict, PointTypes],
) -> Tuple[np.ndarray, np.ndarray]:
    """Per-point ``sigma_t`` and ``sigma_n`` of the ``'300w'`` model.

    Args:
        point_types: The layout's curves and corners.

    Returns:
        ``sigma_t`` and ``sigma_n`` of each keypoint, shape (K,) each, from
        :data:`SIGMAS_300W` by the curve's group (``'all'`` for a group
        not calibrated); 0 off the curves, where ``sigma_c`` applies.
    """
    pt = _point_types(point_types)
    sigma = np.zeros((pt.num_keypoints, 2))
    for group, idx in curve_groups(pt).items():
        sigma[idx] = SIGMAS_300W.get(group, SIGMAS_300W['all'])
    return sigma[:, 0], sigma[:, 1]


def describe_noise(
    noise: str = 'arc',
    sigma_t: Optional[float] = None,
    sigma_n: Optional[float] = None,
    sigma_c: float = SIGMA_C,
) -> dict:
    """A JSON-ready record of an annotation model and its scales.

    Args:
        noise: One of :data:`NOISE_MODELS`.
        sigma_t: Along-curve std as a fraction of ``d``; the model's
            default when None.
        sigma_n: Across-curve std as a fraction of ``d``; likewise.
        sigma_c: Corner and isolated-point std as a fraction of ``d``.

    Returns:
        ``name``, ``model`` (a sentence) and the sigmas; for ``'300w'``,
        ``sigma_t`` and ``sigma_n`` map each curve group to its value.
    """
    sigma_t, sigma_n = _model_sigmas(noise, sigma_t, sigma_n)
    record = dict(name=noise, model=NOISE_DESCRIPTIONS[noise])
    if noise == '300w':
        record.update(
            sigma_t={g: s[0] for g, s in SIGMAS_300W.items()},
            sigma_n={g: s[1] for g, s in SIGMAS_300W.items()},
        )
    else:
        record.update(sigma_t=float(sigma_t), sigma_n=float(sigma_n))
        if noise == 'resampled':
            record.update(
                field_modes=FIELD_MODES, field_spacings=FIELD_SPACINGS
            )
    record.update(sigma_c=float(sigma_c))
    return record


def annotation_noise(
    points: np.ndarray,
    point_types: Union[str, dict, PointTypes],
    rng: np.random.Generator,
    interocular: Optional[float] = None,
    sigma_t: Optional[float] = None,
    sigma_n: Optional[float] = None,
    sigma_c: float = SIGMA_C,
    noise: str = 'arc',
) -> np.ndarray:
    """Simulated annotation of clean landmarks under one of the models.

    For ``noise='arc'``:

    .. math:: p' = c(s + \\epsilon_t) + \\epsilon_n n(s + \\epsilon_t),
        \\quad \\epsilon_t \\sim N(0, \\sigma_t d),
        \\epsilon_n \\sim N(0, \\sigma_n d)

    for a point at arc length ``s`` of curve ``c`` with normal ``n``;
    corners and isolated points get :math:`N(0, \\sigma_c d)` in x and y.
    The other models are :func:`tangent_noise` (``'tangent'``, and
    ``'300w'`` with :func:`sigmas_300w`) and :func:`resampled_noise`.

    Args:
        points: Clean landmarks, shape (K, 2).
        point_types: The layout's curves and corners (a name such as
            ``'wflw'``, a dict, or :class:`PointTypes`).
        rng: The random generator; the same state gives the same noise.
        interocular: The scale ``d``. Defaults to the distance of the outer
            eye corners of ``points`` (layouts of
            :data:`~mmaniso.datasets.layouts.LAYOUTS` only).
        sigma_t: Along-curve std as a fraction of ``d``; :data:`SIGMA_T`
            when None. Calibrated per curve group for ``'300w'``, which
            takes none.
        sigma_n: Across-curve std as a fraction of ``d``; :data:`SIGMA_N`
            when None. Likewise.
        sigma_c: Std of corners and isolated points in x and in y, as a
            fraction of ``d``.
        noise: The model, one of :data:`NOISE_MODELS`.

    Returns:
        The annotated landmarks, shape (K, 2).

    Raises:
        ValueError: For an unknown model, a wrong shape, a negative sigma,
            or ``sigma_t``/``sigma_n`` given with ``'300w'``.

    Example:
        >>> from mmaniso.synthface.face_template import wflw_mean_face
        >>> clean = wflw_mean_face() * 50 + 64
        >>> noisy = annotation_noise(clean, 'wflw', np.random.default_rng(0))
        >>> noisy.shape
        (98, 2)
    """
    sigma_t, sigma_n = _model_sigmas(noise, sigma_t, sigma_n)
    pt = _point_types(point_types)
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
        if value is not None and not value >= 0:
            raise ValueError(f'{name} must be >= 0, got {value!r}')
    d = (
        interocular_distance(points, pt)
        if interocular is None
        else float(interocular)
    )
    if not (np.isfinite(d) and d > 0):
        # NaN would give NaN landmarks without a word; a negative scale
        # flips some models and breaks others.
        raise ValueError(
            f'interocular (the noise scale d) must be a finite number > 0, '
            f"got {d!r}; pass the face's outer-eye-corner distance in "
            'pixels, or None to measure it on the points'
        )
    if noise == 'arc':
        return _arc_noise(points, pt, rng, d, sigma_t, sigma_n, sigma_c)
    if noise == 'tangent':
        return tangent_noise(points, pt, rng, d, sigma_t, sigma_n, sigma_c)
    if noise == '300w':
        sig_t, sig_n = sigmas_300w(pt)
        return tangent_noise(points, pt, rng, d, sig_t, sig_n, sigma_c)
    return resampled_noise(points, pt, rng, d, sigma_t, sigma_n, sigma_c)


def _model_sigmas(
    noise: str, sigma_t: Optional[float], sigma_n: Optional[float]
) -> Tuple[Optional[float], Optional[float]]:
    """Checks the model name; fills in its default sigmas."""
    if noise not in NOISE_MODELS:
        raise ValueError(
            f'unknown noise model {noise!r}; choose one of '
            f'{", ".join(NOISE_MODELS)}'
        )
    if noise == '300w':
        if sigma_t is not None or sigma_n is not None:
            raise ValueError(
                "noise='300w' has calibrated sigma_t and sigma_n per curve "
                'group (SIGMAS_300W); leave sigma_t and sigma_n unset, or '
                "use noise='tangent' with your own"
            )
        return None, None
    return (
        SIGMA_T if sigma_t is None else sigma_t,
        SIGMA_N if sigma_n is None else sigma_n,
    )


def _point_types(point_types: Union[str, dict, PointTypes]) -> PointTypes:
    return (
        point_types
        if isinstance(point_types, PointTypes)
        else get_point_types(point_types)
    )


def _outer_eye_corners(pt: PointTypes) -> Tuple[int, int]:
    if pt.name not in LAYOUTS:
        raise ValueError(
            f'no outer eye corners known for point types {pt.name!r}; '
            'pass interocular= explicitly'
        )
    return LAYOUTS[pt.name].outer_eye_corners


def _arc_noise(
    points: np.ndarray,
    pt: PointTypes,
    rng: np.random.Generator,
    d: float,
    sigma_t: float,
    sigma_n: float,
    sigma_c: float,
) -> np.ndarray:
    """The ``'arc'`` model (the code path of the original model, whose
    output for a given generator state it keeps bit for bit)."""
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


def tangent_noise(
    points: np.ndarray,
    point_types: Union[str, dict, PointTypes],
    rng: np.random.Generator,
    interocular: Union[float, np.ndarray],
    sigma_t: Union[float, np.ndarray] = SIGMA_T,
    sigma_n: Union[float, np.ndarray] = SIGMA_N,
    sigma_c: float = SIGMA_C,
) -> np.ndarray:
    """The ``'tangent'`` model: zero-mean noise along and across the curve.

    .. math:: p' = p + \\epsilon_t t + \\epsilon_n n, \\quad
        \\epsilon_t \\sim N(0, \\sigma_t d), \\epsilon_n \\sim
        N(0, \\sigma_n d)

    with ``t`` the unit tangent of the clean curve at ``p``
    (:func:`clean_tangents`) and ``n`` its normal; a point without a
    tangent (corners, isolated points, a point whose neighbours coincide)
    gets :math:`N(0, \\sigma_c d)` in x and y.

    Args:
        points: Clean landmarks, shape (..., K, 2); a batch is noised in
            one draw.
        point_types: The layout's curves and corners.
        rng: The random generator: one draw of shape (..., K, 2).
        interocular: The scale ``d``, a number or shape (...).
        sigma_t: Along-curve std as a fraction of ``d``, a number or one
            per keypoint, shape (K,).
        sigma_n: Across-curve std as a fraction of ``d``, likewise.
        sigma_c: Std of the points without a tangent in x and y, as a
            fraction of ``d``.

    Returns:
        The annotated landmarks, shape (..., K, 2).

    Example:
        >>> line = np.stack([np.arange(4.0), np.zeros(4)], 1)
        >>> pt = dict(num_keypoints=4, curves=[dict(name='c',
        ...     indices=[0, 1, 2, 3])])
        >>> noisy = tangent_noise(line, pt, np.random.default_rng(0), 1.0,
        ...     sigma_t=0.1, sigma_n=0.0)
        >>> bool(np.all(noisy[:, 1] == 0))
        True
    """
    pt = _point_types(point_types)
    points = np.asarray(points, dtype=np.float64)
    tangents, valid = clean_tangents(points, pt)
    normals = np.stack([-tangents[..., 1], tangents[..., 0]], -1)
    d = np.asarray(interocular, dtype=np.float64)[..., None]  # (..., 1)
    eps = rng.standard_normal(points.shape)  # (..., K, 2)
    along = eps[..., 0] * np.asarray(sigma_t) * d  # (..., K)
    across = eps[..., 1] * np.asarray(sigma_n) * d
    on_curve = along[..., None] * tangents + across[..., None] * normals
    iso = eps * (sigma_c * d)[..., None]
    return points + np.where(valid[..., None], on_curve, iso)


def catmull_rom(
    points: np.ndarray, closed: bool = False, samples: int = SPLINE_SAMPLES
) -> np.ndarray:
    """Dense points on the centripetal Catmull-Rom spline through points.

    An open curve gets reflected end points (``2 p_0 - p_1``), so its
    spline starts and ends at its end points; a closed one wraps round.
    Centripetal knots (square root of the chord lengths) never overshoot
    into loops or cusps.

    Args:
        points: The points the spline passes through, shape (N, 2).
        closed: Whether the spline returns from the last point to the
            first.
        samples: Dense points per segment between two given points.

    Returns:
        The dense points, shape (S * samples + 1, 2), with S = N - 1
        segments (open) or N (closed); point ``j`` is dense point
        ``j * samples``, and a closed spline ends where it starts.

    Example:
        >>> square = np.array([[0.0, 0.0], [1, 0], [1, 1], [0, 1]])
        >>> dense = catmull_rom(square, closed=True, samples=4)
        >>> dense.shape, bool(np.allclose(dense[::4], square[[0, 1, 2, 3,
        ...     0]]))
        ((17, 2), True)
    """
    pts = np.asarray(points, dtype=np.float64)
    if closed:
        ext = np.concatenate([pts[-1:], pts, pts[:2]])
    else:
        ext = np.concatenate(
            [2 * pts[:1] - pts[1:2], pts, 2 * pts[-1:] - pts[-2:-1]]
        )
    p0, p1, p2, p3 = ext[:-3], ext[1:-2], ext[2:-1], ext[3:]  # (S, 2) each
    scale = max(float(np.ptp(pts, 0).max()), 1e-12)

    def step(a, b):  # centripetal knot interval, never 0
        return np.sqrt(np.linalg.norm(b - a, axis=1)) + 1e-9 * scale

    t1 = step(p0, p1)[:, None, None]
    t2 = t1 + step(p1, p2)[:, None, None]
    t3 = t2 + step(p2, p3)[:, None, None]
    u = np.linspace(0.0, 1.0, samples, endpoint=False)[None, :, None]
    t = t1 + u * (t2 - t1)  # (S, samples, 1)
    p0, p1, p2, p3 = (p[:, None] for p in (p0, p1, p2, p3))
    # Barry and Goldman's pyramid, t0 = 0.
    a1 = ((t1 - t) * p0 + t * p1) / t1
    a2 = ((t2 - t) * p1 + (t - t1) * p2) / (t2 - t1)
    a3 = ((t3 - t) * p2 + (t - t2) * p3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + t * a2) / t2
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    c = ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)  # (S, samples, 2)
    end = pts[:1] if closed else pts[-1:]
    return np.concatenate([c.reshape(-1, 2), end])


def resampling_key_points(
    point_types: Union[str, dict, PointTypes],
) -> Tuple[int, ...]:
    """The key points of the ``'resampled'`` model, sorted.

    Corners, the ends of open curves, the layout's
    :data:`RESAMPLING_ANCHORS`, and the first point of a closed curve that
    would otherwise have none.
    """
    pt = _point_types(point_types)
    anchors = RESAMPLING_ANCHORS.get(pt.name, {})
    keys = set(pt.corners)
    for curve in pt.curves:
        keys.update(anchors.get(curve.name, ()))
        if not curve.closed:
            keys.update((curve.indices[0], curve.indices[-1]))
        elif not keys & set(curve.indices):
            keys.add(curve.indices[0])
    return tuple(sorted(keys))


def _strokes(
    indices: Sequence[int], closed: bool, corners: set, keys: set
) -> list:
    """A curve cut at its corners (open curves also at their ends) into
    strokes: ``(indices, periodic)``, each from a key point to a key point
    (a corner-free closed curve is one periodic stroke round from its first
    key point back to it)."""
    idx = list(indices)
    cuts = [j for j, i in enumerate(idx) if i in corners]
    if closed:
        if not cuts:
            start = next(j for j, i in enumerate(idx) if i in keys)
            return [(idx[start:] + idx[:start], True)]
        idx = idx[cuts[0] :] + idx[: cuts[0]] + [idx[cuts[0]]]
        cuts = [j for j, i in enumerate(idx) if i in corners]
    else:
        cuts = sorted(set(cuts) | {0, len(idx) - 1})
    return [
        (idx[a : b + 1], False) for a, b in zip(cuts[:-1], cuts[1:]) if b > a
    ]


def resampled_noise(
    points: np.ndarray,
    point_types: Union[str, dict, PointTypes],
    rng: np.random.Generator,
    interocular: float,
    sigma_t: float = SIGMA_T,
    sigma_n: float = SIGMA_N,
    sigma_c: float = SIGMA_C,
) -> np.ndarray:
    """The ``'resampled'`` model: noisy key points, the others spread
    between them as on the clean curve.

    WFLW's annotators drew each curve and its points were then placed at
    equal spacing along it, so the along-curve uncertainty sits in a few
    key points (:func:`resampling_key_points`). Per curve, cut at its
    corners into strokes:

    1. the key points move as in :func:`tangent_noise` (corners and
       isolated points by :math:`N(0, \\sigma_c d)` in x and y);
    2. the stroke, densely sampled on the :func:`catmull_rom` spline
       through its clean points, follows them: each key point's shift is
       split into its part along the stroke (a slide in arc length) and
       across it, each part is interpolated linearly in arc length on its
       own (interpolating x and y would turn the along-curve motion of two
       key points with different tangents into motion across the curve
       between them), and the dense point at ``s`` goes to the stroke's
       point at ``s`` + slide (straight on past an open stroke's end),
       moved along the normal there by the interpolated across part plus
       a normal field :math:`\\phi(s)`,
       :math:`\\phi(s) = \\sum_{m=1}^{M} a_m \\sin(m \\pi s / L)`
       less its linear interpolation between the key points (so it is 0
       at every key point and the key points move exactly as in
       :func:`tangent_noise`), :math:`a_m \\sim N(0, 2 \\sigma_n^2 d^2 /
       M)`, ``L`` the stroke's length and ``M`` = min(:data:`FIELD_MODES`,
       max(1, segments // :data:`FIELD_SPACINGS`)): 3 on the jaw, 1 on
       the shorter strokes. A point between key points moves across the
       curve by about :math:`\\sigma_n` to :math:`1.4 \\sigma_n`;
    3. the points between two consecutive key points are placed along the
       perturbed stroke at the share of the arc between them that they
       have on the clean spline (WFLW spaces them equally; SynthFace's
       clean points are not equally spaced, so its own spacing is the
       convention, and without noise the labels are the clean points).

    The along-curve error of the points between two key points is thus
    shared, interpolated from the key points' (their second difference
    along the curve is that of the clean shape).

    Args:
        points: Clean landmarks, shape (K, 2).
        point_types: The layout's curves and corners.
        rng: The random generator; the same state gives the same noise.
        interocular: The scale ``d``.
        sigma_t: Along-curve std of the key points, a fraction of ``d``.
        sigma_n: Across-curve std of the key points and rms of the normal
            field, a fraction of ``d``.
        sigma_c: Std of corners and isolated points in x and y, a fraction
            of ``d``.

    Returns:
        The annotated landmarks, shape (K, 2).
    """
    pt = _point_types(point_types)
    points = np.asarray(points, dtype=np.float64)
    d = float(interocular)
    keys = set(resampling_key_points(pt))
    corners = set(pt.corners)
    # Step 1: every key (and isolated) point's final position.
    key_noise = tangent_noise(points, pt, rng, d, sigma_t, sigma_n, sigma_c)
    out = points.copy()
    fixed = sorted(keys | set(pt.isolated))
    out[fixed] = key_noise[fixed]
    for curve in pt.curves:
        for stroke, periodic in _strokes(
            curve.indices, curve.closed, corners, keys
        ):
            segments = len(stroke) - (0 if periodic else 1)
            num = min(FIELD_MODES, max(1, segments // FIELD_SPACINGS))
            modes = np.arange(1, num + 1)
            amps = rng.normal(0.0, np.sqrt(2.0 / num) * sigma_n * d, num)
            stroke = np.array(stroke)
            if periodic:  # round the loop and back to the first point
                dense = catmull_rom(points[stroke], closed=True)
                stroke = np.append(stroke, stroke[0])
            else:
                dense = catmull_rom(points[stroke])
            _place_stroke(
                out, points, stroke, dense, keys, amps, modes, periodic
            )
    return out


def _on_stroke(
    dense: np.ndarray, s: np.ndarray, query: np.ndarray, periodic: bool
) -> np.ndarray:
    """Points of the dense stroke at arc lengths ``query``, shape (Q, 2).

    A periodic stroke wraps round; an open one continues straight along
    its end tangents (as :func:`tangent_noise` moves an end point along
    its tangent line)."""
    length = s[-1]
    if periodic:
        query = np.mod(query, length)
    pos = np.stack(
        [np.interp(query, s, dense[:, 0]), np.interp(query, s, dense[:, 1])],
        1,
    )
    if not periodic:
        for end, beyond, inner in (
            (0, query < 0, 1),
            (-1, query > length, -2),
        ):
            if beyond.any():
                t = dense[end] - dense[inner]
                t /= max(np.linalg.norm(t), 1e-12)
                past = np.abs(query[beyond] - s[end])
                pos[beyond] = dense[end] + past[:, None] * t
    return pos


def _place_stroke(
    out: np.ndarray,
    points: np.ndarray,
    stroke: np.ndarray,
    dense: np.ndarray,
    keys: set,
    amps: np.ndarray,
    modes: np.ndarray,
    periodic: bool = False,
) -> None:
    """Steps 2 and 3 of :func:`resampled_noise` for one stroke, in place:
    ``out`` holds the key points' final positions."""
    seg = np.linalg.norm(np.diff(dense, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])  # (D,)
    length = max(s[-1], 1e-12)
    at = np.arange(len(stroke)) * SPLINE_SAMPLES  # dense index of each
    is_key = np.array([i in keys for i in stroke])
    is_key[[0, -1]] = True  # strokes run from key to key
    key_s = s[at[is_key]]
    tangent = np.gradient(dense, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1), 1e-12)[:, None]
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    # Each key point's displacement split in the stroke's own frame, and
    # each part interpolated in arc length on its own: interpolating x and
    # y instead would turn the along-curve motion of two key points with
    # different tangents (the jaw's end and the chin) into motion across
    # the curve between them.
    shift = out[stroke[is_key]] - points[stroke[is_key]]  # (J, 2)
    key_t, key_n = tangent[at[is_key]], normal[at[is_key]]
    slide = np.interp(s, key_s, (shift * key_t).sum(1))  # (D,)
    lift = np.interp(s, key_s, (shift * key_n).sum(1))
    phi = np.sin(np.pi * s[:, None] / length * modes) @ amps  # (D,)
    # The field is pinned to 0 at every key point, not only at the ends,
    # so that key points move exactly as tangent_noise moved them.
    phi -= np.interp(s, key_s, phi[at[is_key]])
    base = _on_stroke(dense, s, s + slide, periodic)
    ahead = _on_stroke(dense, s, s + slide + 1e-3 * length, periodic)
    behind = _on_stroke(dense, s, s + slide - 1e-3 * length, periodic)
    moved_t = ahead - behind
    moved_t /= np.maximum(np.linalg.norm(moved_t, axis=1), 1e-12)[:, None]
    moved_n = np.stack([-moved_t[:, 1], moved_t[:, 0]], 1)
    moved = base + (lift + phi)[:, None] * moved_n
    # Sliding along a bent stroke is not sliding along the key point's
    # tangent line; the difference (curvature x slide^2 / 2, about 0.2 % of
    # d on the jaw) is spread between the key points so they land exactly.
    miss = out[stroke[is_key]] - moved[at[is_key]]
    moved += np.stack(
        [np.interp(s, key_s, miss[:, 0]), np.interp(s, key_s, miss[:, 1])], 1
    )
    out[stroke[is_key]] = moved[at[is_key]]
    key_j = np.flatnonzero(is_key)
    for a, b in zip(key_j[:-1], key_j[1:]):
        if b - a < 2:
            continue
        part = moved[at[a] : at[b] + 1]
        arc = np.concatenate(
            [[0.0], np.cumsum(np.linalg.norm(np.diff(part, axis=0), axis=1))]
        )
        # Each point keeps its clean share of the arc between the two key
        # points: the labelling convention is SynthFace's own spacing, so
        # without noise the labels are the clean points.
        clean_s = s[at[a + 1 : b]] - s[at[a]]
        target = arc[-1] * clean_s / max(s[at[b]] - s[at[a]], 1e-12)
        out[stroke[a + 1 : b]] = np.stack(
            [
                np.interp(target, arc, part[:, 0]),
                np.interp(target, arc, part[:, 1]),
            ],
            1,
        )
