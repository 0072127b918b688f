"""tools/analysis_tools/plot_ced.py draws CED curves of per-image NME files."""

import json
import os.path as osp

import numpy as np
import pytest
from conftest import REPO, load_tool, run_tool

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'plot_ced.py')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture
def nme_files(tmp_path):
    rng = np.random.default_rng(0)
    a = tmp_path / 'a.nme.json'
    entries = [
        dict(
            id=i, img_path=f'{i}.jpg', nme=float(e), subsets=['blur'] * (i % 2)
        )
        for i, e in enumerate(np.abs(rng.normal(0.04, 0.02, 50)))
    ]
    a.write_text(json.dumps(entries))
    b = tmp_path / 'b.json'
    b.write_text(json.dumps(np.abs(rng.normal(0.05, 0.03, 40)).tolist()))
    return a, b


def test_plot_ced_writes_png(nme_files, tmp_path):
    a, b = nme_files
    out = tmp_path / 'plots' / 'ced.png'
    tool = load_tool(TOOL)
    tool.main(
        [str(a), str(b), '--labels', 'A', 'B', '--max-nme', '0.1']
        + ['--thresholds', '0.08', '0.1', '--out', str(out)]
    )
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert len(tool.load_nmes(str(a), 'blur')) == 25


def test_plot_ced_errors(nme_files, tmp_path):
    a, b = nme_files
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):  # argparse: one label for two files
        tool.main([str(a), str(b), '--labels', 'A'])
    with pytest.raises(SystemExit, match='NME file not found'):
        tool.main([str(tmp_path / 'missing.json')])
    with pytest.raises(SystemExit, match="no image in subset 'pose'"):
        tool.main([str(a), '--subset', 'pose'])


def test_plot_ced_runs_from_repo_root(nme_files, tmp_path):
    a, _ = nme_files
    out = tmp_path / 'ced.png'
    proc = run_tool([TOOL, a, '--out', out], timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == PNG_MAGIC
