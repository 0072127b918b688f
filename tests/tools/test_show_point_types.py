"""tools/analysis_tools/show_point_types.py: JSON, text and PNG output."""

import json
import os.path as osp

import numpy as np
import pytest
from conftest import REPO, load_tool, run_tool

SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'show_point_types.py')


@pytest.fixture(scope='module')
def tool():
    return load_tool(SCRIPT)


@pytest.mark.parametrize(
    'name, num, corner',
    [('300w', 68, 36), ('wflw', 98, 60), ('aflw', 19, 6), ('cofw', 29, 8)],
)
def test_json(tool, capsys, name, num, corner):
    assert tool.main([name, '--json']) == 0
    data = json.loads(capsys.readouterr().out)
    assert data['dataset'] == name and data['num_keypoints'] == num
    assert corner in data['corners']
    for curve in data['curves']:
        assert set(curve) == {'name', 'indices', 'closed'}
        assert all(0 <= i < num for i in curve['indices'])


def test_text_summary_and_errors(tool, capsys):
    tool.main(['cofw'])
    out = capsys.readouterr().out
    assert 'nose_base' in out and 'isolated (W = I): [16, 17, 20, 28]' in out
    with pytest.raises(SystemExit, match="unknown point types 'wlfw'"):
        tool.main(['wlfw', '--json'])
    with pytest.raises(SystemExit):
        tool.main(['wflw', '--ann', 'x.json'])  # no --img-dir / --out


@pytest.mark.slow  # a fresh interpreter imports MMPose: seconds
def test_script_runs_from_any_directory(tmp_path):
    proc = run_tool([SCRIPT, 'aflw', '--json'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)['num_keypoints'] == 19


@pytest.mark.parametrize('num, name', [(98, 'wflw'), (68, '300w')])
def test_png_over_a_fixture_face(tool, tmp_path, num, name):
    import cv2

    from mmaniso.testing import write_face_fixture

    paths = write_face_fixture(
        str(tmp_path / 'data'), dict(train=2), num_keypoints=num
    )
    out = tmp_path / f'{name}.png'
    tool.main(
        [
            name,
            '--ann',
            paths['train'],
            '--img-dir',
            str(tmp_path / 'data' / 'images'),
            '--index',
            '1',
            '--out',
            str(out),
        ]
    )
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    img = cv2.imread(str(out))
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert np.unique(img.reshape(-1, 3), axis=0).shape[0] > 50
    # The wrong layout is refused with both counts.
    other = '300w' if num == 98 else 'wflw'
    with pytest.raises(SystemExit, match=f'annotation has {num} keypoints'):
        tool.main(
            [
                other,
                '--ann',
                paths['train'],
                '--img-dir',
                str(tmp_path / 'data' / 'images'),
                '--out',
                str(tmp_path / 'x.png'),
            ]
        )
