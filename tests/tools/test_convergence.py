import json

import pytest
from conftest import load_tool


def _tool():
    return load_tool('tools', 'misc', 'convergence.py')


def _write_run(folder, curve):
    vis = folder / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    lines = []
    for step, nme in curve:
        lines.append(json.dumps(dict(loss=1.0, step=step)))  # train record
        lines.append(json.dumps(dict(NME=nme, step=step)))
    (vis / 'scalars.json').write_text('\n'.join(lines) + '\n')


def test_first_step_below_threshold_per_config(tmp_path, capsys):
    _write_run(tmp_path / 'fast' / 'seed0', [(100, 12.0), (200, 9.0)])
    _write_run(tmp_path / 'fast' / 'seed1', [(100, 9.5), (200, 8.0)])
    _write_run(tmp_path / 'slow' / 'seed0', [(100, 15.0), (200, 11.0)])
    runs = _tool().main(
        [str(tmp_path), '--threshold', '10', '--out', str(tmp_path / 'c.png')]
    )
    assert runs['fast']['seed0'] == [(100, 12.0), (200, 9.0)]
    out = capsys.readouterr().out
    fast = next(line for line in out.splitlines() if line.startswith('fast'))
    slow = next(line for line in out.splitlines() if line.startswith('slow'))
    # fast: steps 200 and 100 -> 150 ± 70.7; slow never got there.
    assert '2/2' in fast and '150.0 ± 70.7' in fast
    assert '0/1' in slow and ' - ' in slow
    assert (tmp_path / 'c.png').stat().st_size > 0


def test_study_without_validation_is_explained(tmp_path):
    (tmp_path / 'cfg' / 'seed0').mkdir(parents=True)
    with pytest.raises(SystemExit, match='val_interval'):
        _tool().main([str(tmp_path), '--threshold', '10'])
