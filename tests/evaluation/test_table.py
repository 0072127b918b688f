import math

import pytest

from mmaniso.evaluation.table import (
    face_metric_rows,
    format_face_table,
    mean_std,
)


def test_rows_group_subsets_full_first_and_columns_by_threshold():
    metrics = {
        'blur/NME': 5.0,
        'AUC@0.1': 0.55,
        'NME': 4.0,
        'FR@0.1': 3.0,
        'FR@0.08': 7.0,
        'AUC@0.08': 0.4,
        'blur/FR@0.1': 6.0,
        'data_time': 0.1,
    }
    columns, rows = face_metric_rows(metrics)
    assert columns == ['NME', 'FR@0.08', 'AUC@0.08', 'FR@0.1', 'AUC@0.1']
    assert list(rows) == ['full', 'blur']
    assert rows['blur'] == {'NME': 5.0, 'FR@0.1': 6.0}


def test_point_group_columns_follow_the_nme():
    metrics = {
        'FR@0.1': 3.0,
        'NME_corners': 3.5,
        'NME_across': 2.0,
        'NME_along': 3.0,
        'NME_curve': 4.1,
        'NME': 4.0,
        'blur/NME_along': 3.3,
        'blur/NME': 5.0,
    }
    columns, rows = face_metric_rows(metrics)
    assert columns == [
        'NME',
        'NME_curve',
        'NME_along',
        'NME_across',
        'NME_corners',
        'FR@0.1',
    ]
    assert rows['blur'] == {'NME': 5.0, 'NME_along': 3.3}
    lines = format_face_table(metrics).splitlines()
    assert 'NME_along (%)' in lines[0] and 'NME_across (%)' in lines[0]
    assert lines[3].split()[:5] == ['blur', '5.00', '-', '3.30', '-']


def test_table_shows_values_and_std():
    table = format_face_table(
        {'NME': 4.0123, 'AUC@0.1': 0.58951}, title='T', stds={'NME': 0.05}
    )
    lines = table.splitlines()
    assert lines[0] == 'T'
    assert lines[1].split() == ['subset', 'NME', '(%)', 'AUC@0.1']
    assert '4.01 ± 0.05' in lines[3] and '0.5895' in lines[3]


def test_table_is_empty_without_face_metrics():
    assert format_face_table({'loss': 1.0}) == ''


def test_mean_std_matches_sample_statistics():
    means, stds = mean_std(
        [{'NME': 4.0, 'x': 1.0}, {'NME': 5.0}, {'NME': 6.0}]
    )
    assert means['NME'] == pytest.approx(5.0)
    assert stds['NME'] == pytest.approx(1.0)  # sample (n-1) std
    assert means['x'] == 1.0 and stds['x'] == 0.0
    assert not math.isnan(stds['x'])
