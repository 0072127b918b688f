"""Files written whole or not at all: a temporary name, then a rename.

A result file written in place is half-written when the writer is killed or
the disk fills up, and the next reader takes it for a finished one. Every
helper here writes under a temporary name in the destination's own folder
(so that the rename never crosses a file system), flushes it to disk and
renames it over the destination with :func:`os.replace`, which readers see
as one step: the old file or the new one, never a mix. On an error the
temporary file is removed and the destination is left as it was.

Example:
    >>> import os.path as osp, tempfile
    >>> out = osp.join(tempfile.mkdtemp(), 'metrics.json')
    >>> atomic_write_json(out, {'NME': 4.5})
    >>> open(out).read()
    '{\\n "NME": 4.5\\n}'
"""

import json
import os
import os.path as osp
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def replacing(path: str) -> Iterator[str]:
    """A temporary path to write ``path``'s new content to.

    On leaving the block without an error the temporary file replaces
    ``path``; on an error it is removed and ``path`` is untouched. Its
    folder is made if missing.

    Args:
        path: The file to write.

    Yields:
        The temporary file's path, in ``path``'s folder, with ``path``'s
        extension.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The destination's extension last, for writers that go by it
    # (matplotlib's savefig, numpy's save).
    fd, tmp = tempfile.mkstemp(
        dir=folder,
        prefix=f'.{osp.basename(path)}.',
        suffix='.tmp' + osp.splitext(path)[1],
    )
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain
        # open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` (UTF-8) through a temporary file."""
    with replacing(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)


def atomic_write_json(path: str, obj: Any, **dump_kwargs) -> None:
    """Writes ``obj`` as JSON to ``path`` through a temporary file.

    Args:
        path: The file to write.
        obj: What to write; it is serialised before anything is written,
            so an object JSON cannot hold leaves ``path`` untouched.
        **dump_kwargs: Passed to :func:`json.dumps`; ``indent`` defaults
            to 1.
    """
    dump_kwargs.setdefault('indent', 1)
    atomic_write_text(path, json.dumps(obj, **dump_kwargs))


def atomic_copy(src: str, dst: str) -> None:
    """Copies the file ``src`` to ``dst`` through a temporary file."""
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)
