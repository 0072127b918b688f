"""Paper-style tables of face-alignment metrics.

``FaceLandmarkMetric`` reports ``NME``, ``FR@t``, ``AUC@t`` and the point
groups (``NME_curve``, ``NME_along``, ``NME_across``, ``NME_corners``) for
the whole test set and ``<subset>/NME`` ... per subset; these helpers lay
such a dict out as one row per subset, the full set first.
"""

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .functional import POINT_GROUP_KEYS

# Column order: NME, the point groups, then FR and AUC by threshold.
_METRIC_ORDER = ('NME',) + POINT_GROUP_KEYS + ('FR', 'AUC')


def _split_key(key: str) -> Tuple[str, str]:
    subset, _, metric = key.rpartition('/')
    return subset or 'full', metric


def _is_face_metric(metric: str) -> bool:
    return metric in ('NME',) + POINT_GROUP_KEYS or metric.startswith(
        ('FR@', 'AUC@')
    )


def _column_sort_key(metric: str):
    name, _, threshold = metric.partition('@')
    return (float(threshold or 0), _METRIC_ORDER.index(name))


def face_metric_rows(
    metrics: Mapping[str, float],
) -> Tuple[List[str], Dict[str, dict]]:
    """Groups face metrics by subset.

    Args:
        metrics: Keys like ``NME``, ``NME_along``, ``FR@0.1``,
            ``blur/AUC@0.1``; other keys are ignored.

    Returns:
        The metric columns in table order and ``{subset: {metric: value}}``
        with the full set (``'full'``) first.
    """
    rows: Dict[str, dict] = {}
    for key, value in metrics.items():
        subset, metric = _split_key(key)
        if _is_face_metric(metric):
            rows.setdefault(subset, {})[metric] = value
    columns = sorted(
        {m for row in rows.values() for m in row}, key=_column_sort_key
    )
    ordered = {k: rows[k] for k in sorted(rows, key=lambda k: k != 'full')}
    return columns, ordered


def _fmt(value, std: Optional[float] = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    digits = 4 if abs(value) < 1 else 2
    text = f'{value:.{digits}f}'
    if std is not None:
        text += f' ± {std:.{digits}f}'
    return text


def format_face_table(
    metrics: Mapping[str, float],
    title: str = '',
    stds: Optional[Mapping[str, float]] = None,
) -> str:
    """A plain-text table, one row per subset.

    Args:
        metrics: As for :func:`face_metric_rows` (means, for a study).
        title: A line printed above the table.
        stds: Standard deviations under the same keys, shown as ``± s``.

    Returns:
        The table, or an empty string when ``metrics`` has no face metric.
    """
    columns, rows = face_metric_rows(metrics)
    if not rows:
        return ''
    std_rows = face_metric_rows(stds)[1] if stds else {}
    header = ['subset'] + [
        f'{c} (%)' if not c.startswith('AUC') else c for c in columns
    ]
    body = []
    for subset, row in rows.items():
        std_row = std_rows.get(subset, {})
        body.append(
            [subset] + [_fmt(row.get(c), std_row.get(c)) for c in columns]
        )
    widths = [
        max(len(r[i]) for r in [header] + body) for i in range(len(header))
    ]
    lines = [title] if title else []
    for cells in [header, ['-' * w for w in widths]] + body:
        lines.append(
            '  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        )
    return '\n'.join(lines)


def sample_mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of some values.

    .. math:: s = \\sqrt{\\tfrac{1}{n-1} \\sum_i (v_i - \\bar v)^2}

    A single value has standard deviation 0.

    Example:
        >>> sample_mean_std([100, 200])
        (150.0, 70.71067811865476)
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError('no values given: their mean is undefined')
    mean = sum(values) / len(values)
    var = (
        (sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        if len(values) > 1
        else 0.0
    )
    return mean, math.sqrt(var)


def mean_std(runs: Sequence[Mapping[str, float]]) -> Tuple[dict, dict]:
    """Per-key mean and sample standard deviation over runs.

    Keys missing from some runs are averaged over the runs that have them;
    a single run has standard deviation 0.
    """
    keys = sorted({k for run in runs for k in run})
    means, stds = {}, {}
    for key in keys:
        means[key], stds[key] = sample_mean_std(
            [run[key] for run in runs if key in run]
        )
    return means, stds
