"""The scripts in tools/ import mmaniso as the installed package: none edits
sys.path or loads another script through importlib."""

import ast
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO

TOOLS = sorted(
    glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True)
)


def _path_hacks(source: str) -> list:
    """Line and text of each sys.path use or importlib import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == 'path':
            if isinstance(node.value, ast.Name) and node.value.id == 'sys':
                found.append((node.lineno, 'sys.path'))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] == 'importlib':
                    found.append((node.lineno, f'import {alias.name}'))
        elif isinstance(node, ast.ImportFrom):
            if (node.module or '').split('.')[0] == 'importlib':
                found.append((node.lineno, f'from {node.module} import'))
    return found


def test_the_check_finds_both_kinds_of_hack():
    source = 'import sys\nimport importlib.util\nsys.path.insert(0, "x")\n'
    assert _path_hacks(source) == [
        (2, 'import importlib.util'),
        (3, 'sys.path'),
    ]


@pytest.mark.parametrize('path', TOOLS, ids=lambda p: osp.relpath(p, REPO))
def test_tool_neither_edits_sys_path_nor_uses_importlib(path):
    with open(path) as f:
        found = _path_hacks(f.read())
    assert not found, (
        f'{osp.relpath(path, REPO)}: {found}; import mmaniso as the installed '
        'package (pip install -e .) and move code that tools share into it'
    )


def test_a_tool_runs_from_the_repo_without_pythonpath():
    # What `python tools/x.py` does in a checkout: mmaniso is found as the
    # installed package, not through PYTHONPATH or the working directory.
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run(
        [sys.executable, 'tools/misc/convergence.py', '--help'],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '--threshold' in proc.stdout
