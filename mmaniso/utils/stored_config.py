"""The config text a checkpoint carries must be plain data.

MMEngine's runner stores the config's ``pretty_text`` in every checkpoint
(``meta.cfg`` and ``message_hub.runtime_info.cfg``), and MMEngine *runs*
such text as a Python config file (``Config.fromstring(text, '.py')``):
``Runner.resume`` for ``meta.config`` (MMCV 1.x's name) and
``BaseInferencer`` (MMPose's ``Pose2DInferencer`` / ``MMPoseInferencer``
given weights but no config) for the other two. A checkpoint whose
weights pass every check could therefore still run code through its
config text. What MMEngine writes is only assignments of literals and
``dict(...)`` calls, so that is all that is accepted here; a ``_base_``
(which makes MMEngine run another file from disk) is refused too.

``custom_imports`` in the text is plain data and is accepted: it names
modules that are already installed, as the user's own configs do.
"""

import ast
import re
from typing import Any, Iterator, Optional, Tuple

# Where MMEngine looks for config text in a loaded checkpoint.
CONFIG_FIELDS: Tuple[Tuple[str, ...], ...] = (
    ('meta', 'config'),
    ('meta', 'cfg'),
    ('message_hub', 'runtime_info', 'cfg'),
)

# Top-level names MMEngine's Config treats as instructions, not data.
_INSTRUCTIONS = ('_base_', '_deprecation_')

_CONSTANTS = (str, bytes, int, float, complex, bool, type(None))
# How pretty_text writes float('inf') and float('nan'): undefined names,
# so MMEngine fails on them without running anything.
_HARMLESS_NAMES = ('inf', 'nan')
# MMEngine substitutes {{ fileDirname }}, {{ $ENV:default }} and
# {{ _base_.key }} into the text before parsing it, so the text it would
# run is not the text checked here.
_TEMPLATE = re.compile(r'\{\{.*?\}\}', re.S)


def stored_config_texts(checkpoint: Any) -> Iterator[Tuple[str, str]]:
    """Yields ``(dotted field, text)`` for each config text MMEngine reads.

    Fields that are absent or not strings are skipped: MMEngine cannot run
    them (``Config.fromstring`` fails on a non-string before parsing).
    """
    for path in CONFIG_FIELDS:
        node = checkpoint
        for key in path:
            if not isinstance(node, dict) or key not in node:
                node = None
                break
            node = node[key]
        if isinstance(node, str):
            yield '.'.join(path), node


def _is_data(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, _CONSTANTS)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_data(item) for item in node.elts)
    if isinstance(node, ast.Dict):
        # A None key is a ** unpacking.
        return all(
            key is not None and _is_data(key) and _is_data(value)
            for key, value in zip(node.keys, node.values)
        )
    if isinstance(node, ast.Name):
        return node.id in _HARMLESS_NAMES
    if isinstance(node, ast.UnaryOp) and isinstance(
        node.op, (ast.USub, ast.UAdd)
    ):
        operand = node.operand
        return (
            isinstance(operand, ast.Constant)
            and isinstance(operand.value, (int, float, complex))
        ) or (isinstance(operand, ast.Name) and operand.id in _HARMLESS_NAMES)
    if isinstance(node, ast.Call):
        return (
            isinstance(node.func, ast.Name)
            and node.func.id == 'dict'
            # pretty_text writes a dict with non-string keys as dict({...}).
            and all(_is_data(arg) for arg in node.args)
            and all(
                kw.arg is not None and _is_data(kw.value)
                for kw in node.keywords
            )
        )
    return False


def _first_not_data(node: ast.AST) -> ast.AST:
    """The innermost sub-expression of ``node`` that is not plain data."""
    if isinstance(node, ast.Call):
        children = [kw.value for kw in node.keywords] + list(node.args)
    else:
        children = [
            child
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.expr)
        ]
    for child in children:
        if not _is_data(child):
            return _first_not_data(child)
    return node


def _describe(node: ast.AST, text: str) -> str:
    segment = ast.get_source_segment(text, node) or type(node).__name__
    segment = ' '.join(segment.split())
    if len(segment) > 80:
        segment = segment[:77] + '...'
    return f'line {getattr(node, "lineno", "?")}: {segment!r}'


def config_text_problem(text: str) -> Optional[str]:
    """Why ``text`` is not a plain-data config, or None if it is.

    Args:
        text: Config text as MMEngine stores it in a checkpoint.

    Returns:
        A short description naming the line, or None.
    """
    template = _TEMPLATE.search(text)
    if template is not None:
        line = text.count('\n', 0, template.start()) + 1
        snippet = ' '.join(template.group(0).split())[:80]
        return (
            f'a template MMEngine fills in before running the text at line '
            f'{line}: {snippet!r}'
        )
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        # MMEngine parses the same text before running it and fails too
        # (pretty_text of a config holding a function object, say).
        return None
    for statement in tree.body:
        if not isinstance(statement, ast.Assign):
            kind = type(statement).__name__.lower()
            return f'a statement ({kind}) at {_describe(statement, text)}'
        for target in statement.targets:
            if not isinstance(target, ast.Name):
                return f'an assignment to {_describe(target, text)}'
            if target.id in _INSTRUCTIONS:
                return (
                    f'{target.id} (MMEngine would read and run another '
                    f'file) at {_describe(statement, text)}'
                )
        if not _is_data(statement.value):
            bad = _first_not_data(statement.value)
            return f'code at {_describe(bad, text)}'
    return None
