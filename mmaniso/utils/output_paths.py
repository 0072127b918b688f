"""The tools never write onto their own inputs, whatever the flags.

``--overwrite`` lets a tool replace its own earlier outputs
(:func:`mmaniso.utils.launch.refuse_existing_files`); it never lets it
replace a file it reads: an input photograph, the config, the checkpoint,
an ONNX graph, a boxes or annotation file. An output path is the same file
as an input when both resolve to one path (``os.path.realpath``: symbolic
links, ``..``, relative spellings) or, where both exist, to one inode
(``os.stat``: hard links, case-insensitive file systems).
"""

import os
import os.path as osp
from typing import Iterable, List, Optional, Tuple

PathPair = Tuple[str, Optional[str]]


def _identity(path: str) -> Tuple[str, Optional[Tuple[int, int]]]:
    """The resolved path and, when the file exists, its (device, inode)."""
    real = osp.realpath(path)
    try:
        stat = os.stat(path)
    except OSError:
        return real, None
    return real, (stat.st_dev, stat.st_ino)


def is_same_file(a: str, b: str) -> bool:
    """Whether writing ``a`` would write the file ``b`` (one resolved path,
    or one inode where both exist)."""
    real_a, inode_a = _identity(a)
    real_b, inode_b = _identity(b)
    return real_a == real_b or (inode_a is not None and inode_a == inode_b)


def inputs_written_by(
    outputs: Iterable[PathPair], inputs: Iterable[PathPair]
) -> List[Tuple[PathPair, PathPair]]:
    """The ``(output, input)`` pairs that are one file.

    Args:
        outputs: ``(what, path)`` of every file a tool would write, e.g.
            ``('--out', 'model.onnx')``; a ``None`` path is skipped.
        inputs: ``(what, path)`` of every file it reads, e.g.
            ``('the checkpoint', 'epoch_60.pth')``; ``None`` skipped.

    Returns:
        Every clash, in the order of ``outputs``.
    """
    known = [
        (what, path, _identity(path))
        for what, path in inputs
        if path is not None
    ]
    clashes = []
    for out_what, out_path in outputs:
        if out_path is None:
            continue
        real, inode = _identity(out_path)
        for in_what, in_path, (in_real, in_inode) in known:
            if real == in_real or (inode is not None and inode == in_inode):
                clashes.append(((out_what, out_path), (in_what, in_path)))
    return clashes


def refuse_writing_inputs(
    outputs: Iterable[PathPair],
    inputs: Iterable[PathPair],
    fix: str = 'choose another output file or folder',
) -> None:
    """Stops a tool before it writes any output that is one of its inputs.

    Call it before anything is written, and before the check for existing
    outputs (whose refusal offers ``--overwrite``, which must not be
    offered here).

    Args:
        outputs: ``(what, path)`` of every file the tool would write.
        inputs: ``(what, path)`` of every file it reads.
        fix: What the user should do, in the tool's words (which option
            to change).

    Raises:
        SystemExit: Naming the output, the input it would replace (and that
            they are one file through a link when spelled apart), and the
            fix: another output name.
    """
    clashes = inputs_written_by(outputs, inputs)
    if not clashes:
        return
    said = []
    for (out_what, out_path), (in_what, in_path) in clashes[:3]:
        same = (
            ''
            if osp.abspath(out_path) == osp.abspath(in_path)
            else ' (the same file through a link or another spelling)'
        )
        said.append(f'{out_what} {out_path} is {in_what} {in_path}{same}')
    more = f' and {len(clashes) - 3} more' if len(clashes) > 3 else ''
    raise SystemExit(
        f'{"; ".join(said)}{more}: writing it would destroy an input of '
        f'this run. No option replaces an input; {fix}'
    )
