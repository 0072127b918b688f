"""A 2-D frontal mean face in the WFLW 98-point and 300W 68-point layouts.

The template is procedural (arcs and ellipses), not measured: it is what the
generated test fixture and the point-type pictures draw, so it only has to
put every landmark where a face has it, in the dataset's order. Coordinates
are in a face frame with x to the image right, y down, the face centre at
the origin and the jaw spanning about [-1, 1].
"""

import numpy as np

from mmaniso.datasets.layouts import WFLW_TO_300W, WFLW_TO_AFLW


def _arc(
    cx: float, cy: float, rx: float, ry: float, t0: float, t1: float, n: int
) -> np.ndarray:
    """Points on an ellipse from angle t0 to t1 (radians), shape (n, 2)."""
    t = np.linspace(t0, t1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _mirror(points: np.ndarray, order: list) -> np.ndarray:
    """The image-right copy of an image-left part, re-ordered so that
    ``result[j]`` is the flip partner of ``points[order[j]]``."""
    out = points[order].copy()
    out[:, 0] *= -1
    return out


def wflw_mean_face() -> np.ndarray:
    """The 98-point WFLW mean face, shape (98, 2).

    Each part follows WFLW's order: the contour from the image-left temple
    round the chin (16) to the image-right one; brows as upper edge then
    lower edge; eyes from the image-left corner along the upper lid and back
    along the lower one; the nose bridge top-down, its base left to right;
    the lips from the left corner along the upper lip and back.
    """
    jaw = _arc(0.0, -0.25, 1.0, 1.25, np.pi, 0.0, 33)
    # Left brow 33-41: upper edge outer->inner, lower edge inner->outer.
    upper = np.stack(
        [
            np.linspace(-0.85, -0.15, 5),
            -0.58 - 0.1 * np.sin(np.linspace(0.4, 2.6, 5)),
        ],
        1,
    )
    lower = upper[1:][::-1] + [0.0, 0.08]
    brow_l = np.concatenate([upper, lower])
    brow_r = _mirror(brow_l, [4, 3, 2, 1, 0, 8, 7, 6, 5])
    # Left eye 60-67: outer corner, upper lid, inner corner, lower lid.
    eye_l = np.concatenate(
        [
            _arc(-0.42, -0.22, 0.17, 0.07, np.pi, 2 * np.pi, 5),
            _arc(-0.42, -0.22, 0.17, 0.07, 0.0, np.pi, 5)[1:4],
        ]
    )
    eye_r = _mirror(eye_l, [4, 3, 2, 1, 0, 7, 6, 5])
    nose_bridge = np.stack([np.zeros(4), np.linspace(-0.2, 0.18, 4)], 1)
    nose_base = np.stack(
        [
            np.linspace(-0.2, 0.2, 5),
            0.28 - 0.05 * np.cos(np.linspace(-1.2, 1.2, 5)),
        ],
        1,
    )
    mouth = 0.58
    outer_up = _arc(0.0, mouth, 0.42, 0.14, np.pi, 2 * np.pi, 7)
    outer_lo = _arc(0.0, mouth, 0.42, 0.2, 0.0, np.pi, 7)[1:6]
    inner_up = _arc(0.0, mouth, 0.28, 0.05, np.pi, 2 * np.pi, 5)
    inner_lo = _arc(0.0, mouth, 0.28, 0.06, 0.0, np.pi, 5)[1:4]
    pupils = np.array([[-0.42, -0.22], [0.42, -0.22]])
    face = np.concatenate(
        [
            jaw,
            brow_l,
            brow_r,
            nose_bridge,
            nose_base,
            eye_l,
            eye_r,
            outer_up,
            outer_lo,
            inner_up,
            inner_lo,
            pupils,
        ]
    )
    assert face.shape == (98, 2)
    return face


def mean_face(num_keypoints: int) -> np.ndarray:
    """The template for 98 (WFLW), 68 (300W) or 19 (AFLW) points, (K, 2)."""
    face = wflw_mean_face()
    if num_keypoints == 98:
        return face
    if num_keypoints == 68:
        return face[WFLW_TO_300W]
    if num_keypoints == 19:
        return face[WFLW_TO_AFLW]
    raise ValueError(
        f'no face template for {num_keypoints} keypoints; templates exist '
        'for 98 (WFLW), 68 (300W) and 19 (AFLW)'
    )
