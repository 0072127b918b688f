"""mmaniso/ops is pure torch/numpy: no mmengine or mmpose import."""

import ast
import glob
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FORBIDDEN = ('mmengine', 'mmpose', 'mmcv', 'mmdet')


def imported_modules(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or ''
            elif node.level > 1:
                # ``from ..x import`` leaves ops/ for the rest of mmaniso.
                yield 'mmaniso.' + (node.module or '')


def test_ops_import_no_framework():
    files = sorted(glob.glob(osp.join(REPO, 'mmaniso', 'ops', '*.py')))
    assert any(f.endswith('tangents.py') for f in files)
    offending = []
    for path in files:
        for name in imported_modules(path):
            top = name.split('.')[0]
            inside = name.startswith('mmaniso.') and not name.startswith(
                'mmaniso.ops'
            )
            if top in FORBIDDEN or inside:
                offending.append(f'{osp.basename(path)} imports {name}')
    assert not offending, offending


# The binning and alignment maths needs nothing but these (and each other).
@pytest.mark.parametrize(
    'module, allowed',
    [
        ('procrustes.py', {'warnings', 'typing', 'numpy', 'torch'}),
        (
            'pose.py',
            {'math', 'warnings', 'typing', 'numpy', 'torch', 'procrustes'},
        ),
    ],
)
def test_alignment_and_binning_import_only_numerics(module, allowed):
    path = osp.join(REPO, 'mmaniso', 'ops', module)
    tree = ast.parse(open(path).read(), path)
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or '').split('.')[0])
    assert roots <= allowed, roots


def test_checker_sees_forbidden_imports(tmp_path):
    path = tmp_path / 'bad.py'
    path.write_text('import mmpose.models\nfrom mmengine import Config\n')
    assert set(imported_modules(str(path))) == {'mmpose.models', 'mmengine'}
