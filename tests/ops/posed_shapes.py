"""Posed shapes for the ops tests: similarity copies and turned faces."""

import math

import numpy as np
import torch


def rotation_2d(angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices, shape (B, 2, 2), for angles (B,)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def posed(base: np.ndarray, rng, num: int) -> np.ndarray:
    """Copies of ``base`` (K, 2) under random similarities, (num, K, 2)."""
    angle = rng.uniform(-math.pi, math.pi, num)
    rot = rotation_2d(torch.as_tensor(angle)).numpy()
    scale = rng.uniform(0.5, 50, num)
    shift = rng.uniform(-100, 100, (num, 1, 2))
    return scale[:, None, None] * base @ rot.transpose(0, 2, 1) + shift


def turned_faces(yaws_deg, rng, noise=0.01):
    """A 3-D face turned by each yaw, projected, then moved at random."""
    from mmaniso.synthface.face_template import mean_face

    face = mean_face(98)
    z = 0.7 * np.sqrt(np.clip(1 - face[:, 0] ** 2, 0, None))
    z[51:55] += np.linspace(0.1, 0.45, 4)
    yaw = np.deg2rad(np.asarray(yaws_deg, dtype=float))
    xr = np.cos(yaw)[:, None] * face[:, 0] + np.sin(yaw)[:, None] * z
    flat = np.stack([xr, np.broadcast_to(face[:, 1], xr.shape)], -1)
    flat = flat + rng.normal(0, noise, flat.shape)
    out = np.empty_like(flat)
    for i, shape in enumerate(flat):
        out[i] = posed(shape, rng, 1)[0]
    return out
