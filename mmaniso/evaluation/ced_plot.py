"""Cumulative error distribution plots (matplotlib, Agg canvas).

Draws on a private :class:`~matplotlib.figure.Figure` with an Agg canvas, so
it works headless and never touches pyplot's global state or backend.
"""

import os
import os.path as osp
from typing import Mapping, Optional, Sequence

import numpy as np

from .functional import auc, ced_curve, failure_rate, threshold_name


def ced_legend(
    label: str,
    nme: np.ndarray,
    thresholds: Sequence[float],
    step: float,
    width: int = 0,
) -> str:
    """``'label  AUC@0.1 0.5895  FR@0.1  2.34%'`` for each threshold, the
    label padded to ``width`` so that columns align in a monospace font."""
    parts = [label.ljust(width)]
    for t in thresholds:
        key = threshold_name(t)
        parts.append(
            f'AUC@{key} {auc(nme, t, step):.4f}  '
            f'FR@{key} {failure_rate(nme, t) * 100:5.2f}%'
        )
    return '  '.join(parts)


def plot_ced(
    curves: Mapping[str, np.ndarray],
    out_file: str,
    max_nme: float = 0.1,
    thresholds: Optional[Sequence[float]] = None,
    step: float = 1e-4,
    title: Optional[str] = None,
) -> str:
    """Draws the CED of each set of per-image errors on one plot.

    Args:
        curves: Per-image errors (fractions of the normalising distance,
            shape (N,)) of each curve, keyed by its legend label.
        out_file: Image file to write (PNG by its extension); its folder is
            created.
        max_nme: Right end of the x axis.
        thresholds: Where the legend quotes AUC and FR; marked by dotted
            lines. Defaults to ``(max_nme,)``.
        step: Grid spacing of the curves and of the AUC integral.
        title: Optional plot title.

    Returns:
        ``out_file``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError('no curves to plot')
    thresholds = tuple(thresholds) if thresholds else (max_nme,)
    fig = Figure(figsize=(7.0, 5.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    named = {
        f'{label} (n={np.size(nme)})': np.asarray(nme, np.float64).ravel()
        for label, nme in curves.items()
    }
    width = max(len(name) for name in named)
    for name, nme in named.items():
        grid, ced = ced_curve(nme, max_nme, step)
        ax.plot(
            grid * 100,
            ced,
            linewidth=1.6,
            label=ced_legend(name, nme, thresholds, step, width),
        )
    for t in thresholds:
        if t < max_nme:
            ax.axvline(t * 100, color='0.5', linestyle=':', linewidth=1)
    ax.set_xlim(0, max_nme * 100)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel('NME (% of the normalising distance)')
    ax.set_ylabel('Fraction of images')
    ax.grid(True, alpha=0.3)
    # Below the axes, so that no curve is hidden however many there are.
    ax.legend(
        loc='upper left',
        bbox_to_anchor=(0.0, -0.12),
        prop=dict(family='monospace', size=8),
        frameon=False,
    )
    if title:
        ax.set_title(title)
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out_file, bbox_inches='tight')
    return out_file
