"""Result files are written whole or not at all (mmaniso.utils.atomic_files,
and tools/test.py --metrics-out through it)."""

import json
import os
import os.path as osp

import pytest
from conftest import load_tool

from mmaniso.utils.atomic_files import (
    atomic_copy,
    atomic_write_json,
    atomic_write_text,
    replacing,
)


class _FullDisk(json.JSONEncoder):
    """Encodes a few chunks, then fails as a full disk would."""

    def iterencode(self, o, _one_shot=False):
        for i, chunk in enumerate(super().iterencode(o, _one_shot)):
            if i == 3:
                raise OSError(28, 'No space left on device')
            yield chunk


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / 'metrics.json'
    out.write_text('{"NME": 1.0}')
    with pytest.raises(OSError, match='No space'):
        atomic_write_json(str(out), {'NME': 4.5, 'FR': 2.0}, cls=_FullDisk)
    with pytest.raises(RuntimeError):
        with replacing(str(out)) as tmp:
            with open(tmp, 'w') as f:
                f.write('{"NME": ')
            raise RuntimeError('killed half-way')
    assert json.loads(out.read_text()) == {'NME': 1.0}
    assert os.listdir(tmp_path) == ['metrics.json']


def test_written_files_are_whole_and_have_the_usual_mode(tmp_path):
    out = tmp_path / 'sub' / 'a.json'
    atomic_write_json(str(out), {'NME': 4.5})
    assert json.loads(out.read_text()) == {'NME': 4.5}
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    atomic_write_text(str(tmp_path / 'b.md'), 'é\n')
    assert (tmp_path / 'b.md').read_text(encoding='utf-8') == 'é\n'
    atomic_copy(str(out), str(tmp_path / 'c.json'))
    assert (tmp_path / 'c.json').read_text() == out.read_text()
    with replacing(str(tmp_path / 'fig.png')) as tmp:
        # Writers that go by the extension see the destination's.
        assert tmp.endswith('.png') and osp.dirname(tmp) == str(tmp_path)


def test_test_tool_metrics_out_is_never_half_written(tmp_path, monkeypatch):
    tool = load_tool('tools', 'test.py')
    out = tmp_path / 'test_metrics.json'
    out.write_text('{"NME": 1.0}')  # an earlier run's, with --overwrite
    # The disk fills up while the new metrics are written.
    real_dumps = json.dumps
    monkeypatch.setattr(
        json, 'dumps', lambda o, **kw: real_dumps(o, cls=_FullDisk, **kw)
    )
    real_dump = json.dump
    monkeypatch.setattr(
        json, 'dump', lambda o, f, **kw: real_dump(o, f, cls=_FullDisk, **kw)
    )
    metrics = {'NME': 4.5, 'FR@0.1': 1.0, 'AUC@0.1': 0.5}
    with pytest.raises(OSError, match='No space'):
        tool.report(metrics, 'cfg.py', str(out))
    assert json.loads(out.read_text()) == {'NME': 1.0}
    assert os.listdir(tmp_path) == ['test_metrics.json']
