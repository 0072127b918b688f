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

Plain data can still call code: when a registry does not know a ``type``
name, MMEngine's ``Registry.get`` imports it as a dotted path and
``build_from_cfg`` calls it with the dict's other keys, so
``dict(type='subprocess.getoutput', cmd='...')`` runs a shell command when
the inferencer builds the model. A dotted ``type`` is accepted only when
it starts with an OpenMMLab package (or ``torch``) and what MMEngine's
fallback would reach is nothing (``mmdet.YOLOXHSVRandomAug`` in RTMPose's
configs: a registry name, not an attribute of ``mmdet``) or a class some
registry holds (``mmpose.models.RegressionHead``, as MMEngine's lazy-import
configs store their types). ``mmengine.dump``, a function that writes any
file, is refused. (A name with no dot that no registry knows is imported as
a module and fails to build: importing an installed module is what
``custom_imports`` does too.)

``custom_imports`` in the text is plain data and is accepted: it names
modules that are already installed, as the user's own configs do.
"""

import ast
import importlib.util
import inspect
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
# Scopes of OpenMMLab registries: `type='mmdet.Name'` is how a config names
# a class registered by another of them.
_OPENMMLAB_SCOPES = (
    'mmengine', 'mmcv', 'mmpose', 'mmdet', 'mmpretrain', 'mmcls', 'mmseg',
    'mmyolo', 'mmaniso', 'mmdet3d', 'mmocr', 'mmaction', 'mmrotate',
    'mmtrack', 'mmagic', 'mmedit', 'mmflow', 'mmrazor', 'mmselfsup',
    'mmhuman3d', 'mmfewshot',
)  # fmt: skip


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


def _registered(obj: object) -> bool:
    """Whether ``obj`` is a class held by an MMEngine registry (searched
    from MMEngine's root registries through every child scope)."""
    from mmengine.registry import Registry

    if not inspect.isclass(obj):
        return False
    import mmengine.registry.root as root

    todo = [r for r in vars(root).values() if isinstance(r, Registry)]
    # The visit-once loop of safe_loader's walk, over registries here.
    seen = set()
    while todo:
        registry = todo.pop()
        if id(registry) in seen:
            continue
        seen.add(id(registry))
        if any(value is obj for value in registry.module_dict.values()):
            return True
        todo.extend(registry.children.values())
    return False


def _reaches_code(name: str) -> bool:
    """Whether MMEngine's fallback for a dotted ``type`` no registry
    resolves (import the path, call what it finds) could reach something
    that is not a registered class."""
    package = name.partition('.')[0]
    if package not in _OPENMMLAB_SCOPES + ('torch',):
        return True
    if importlib.util.find_spec(package) is None:
        return False
    from mmengine.utils import get_object_from_string

    try:
        found = get_object_from_string(name)
    except Exception:  # the fallback fails the same way
        return False
    return found is not None and not _registered(found)


def _dotted_type(node: ast.AST) -> Optional[ast.AST]:
    """The first ``type`` value in a plain-data ``node`` that is a dotted
    path MMEngine's registries could import and call, or None."""
    pairs = []
    if isinstance(node, ast.Dict):
        pairs = list(zip(node.keys, node.values))
    elif isinstance(node, ast.Call):
        pairs = [(None, arg) for arg in node.args] + [
            (ast.Constant(kw.arg), kw.value) for kw in node.keywords
        ]
    elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        pairs = [(None, item) for item in node.elts]
    for key, value in pairs:
        if (
            isinstance(key, ast.Constant)
            and key.value == 'type'
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
            and '.' in value.value
            and _reaches_code(value.value)
        ):
            return value
        found = _dotted_type(value)
        if found is not None:
            return found
    return None


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
        dotted = _dotted_type(statement.value)
        if dotted is not None:
            return (
                f'a type given as a dotted path, which MMEngine imports '
                f'and calls, at {_describe(dotted, text)}'
            )
    return None
