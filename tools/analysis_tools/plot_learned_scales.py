"""Draw the learned scales as ellipses on the mean face, beside the fixed.

    python tools/analysis_tools/plot_learned_scales.py CONFIG CHECKPOINT \
        [--out learned_scales.png] [--k 1] [--overwrite]

CONFIG is a config whose loss has ``scales='learned'`` or
``'learned_isotropic'`` (``AnisotropicLoss``); CHECKPOINT one of its
trained checkpoints (read with mmaniso's restricted loader). Left: the
fixed family's ellipses (semi-axes ``a`` along and ``b`` across each curve,
``b`` at corners and isolated points), right: the learned ones, each drawn
at ``k`` scales around the head's mean shape in input-crop pixels, with
tangents from the mean shape. The figure is written under a temporary
name and renamed; an existing file is refused unless ``--overwrite``.
"""

import argparse
import os
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
import torch


def mean_face_ellipses(
    loss, mean_shape: torch.Tensor
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed and learned ellipses ``(a, b, angle)`` on the mean face.

    Args:
        loss: An ``AnisotropicLoss`` with learned scales.
        mean_shape: The head's mean shape, normalised, shape (K, 2).

    Returns:
        tuple: ``(points (K, 2), fixed (K, 3), learned (K, 3))`` in
        input-crop pixels.
    """
    from mmaniso.ops.likelihood import ellipse_axes
    from mmaniso.ops.tangents import curve_tangents

    size = torch.tensor(loss._size)
    points = mean_shape.float()[None] * size  # (1, K, 2)
    tangents, valid = curve_tangents(points, loss.neighbours.cpu())
    with torch.no_grad():
        along, across = loss.learned_scales()
    has = loss.has_tangent.cpu()
    fixed_a = torch.where(has, loss.a, loss.b)
    fixed_b = torch.full_like(fixed_a, loss.b)
    fixed = ellipse_axes(tangents, valid, fixed_a[None], fixed_b[None])
    learned = ellipse_axes(tangents, valid, along[None], across[None])
    return points[0].numpy(), fixed[0].numpy(), learned[0].numpy()


def draw(points, fixed, learned, path: str, k: float = 1.0) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8), sharex=True, sharey=True)
    titles = ('fixed a, b', 'learned')
    for ax, ellipses, title in zip(axes, (fixed, learned), titles):
        ax.plot(points[:, 0], points[:, 1], 'k.', ms=2)
        for (x, y), (a, b, angle) in zip(points, ellipses):
            ax.add_patch(
                Ellipse(
                    (x, y),
                    2 * k * a,
                    2 * k * b,
                    angle=np.degrees(angle),
                    fill=False,
                    lw=0.7,
                    color='tab:blue',
                )
            )
        ax.set_title(f'{title} ({k:g} scale)')
        ax.set_aspect('equal')
    axes[0].invert_yaxis()  # image rows down; the axes are shared
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.tmp.png')
    try:
        fig.savefig(tmp, dpi=130)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if osp.exists(tmp):
            os.remove(tmp)


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', default='learned_scales.png')
    parser.add_argument(
        '--k', type=float, default=1.0, help='draw k-scale ellipses'
    )
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    from mmengine.config import Config

    import mmaniso  # noqa: F401  (registers)
    from mmaniso.models.losses.learned_scales import read_learned_scales
    from mmaniso.utils.launch import refuse_existing_files

    refuse_existing_files([('--out', args.out)], args.overwrite)
    cfg = Config.fromfile(args.config)
    try:
        learned = read_learned_scales(cfg, args.checkpoint)
    except (TypeError, ValueError) as e:
        raise SystemExit(f'error: {args.config}: {e}') from None
    loss = learned['loss']
    points, fixed, learned = mean_face_ellipses(loss, learned['mean_shape'])
    draw(points, fixed, learned, args.out, args.k)
    along, across = loss.learned_scales()
    print(
        f'learned scales (input-crop px): along mean '
        f'{along[loss.has_tangent].mean():.3f}, across mean '
        f'{across.mean():.3f}; {args.out}'
    )
    return args.out


if __name__ == '__main__':
    main()
