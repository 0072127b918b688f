"""The SHA-256 of a file's bytes, the one code path every record of a file
(crop cache, checkpoint meta, inference JSON) goes through."""

import hashlib
import os.path as osp
from typing import Optional


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks.

    Args:
        path: A local file.

    Returns:
        The 64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def local_file_sha256(path: str) -> Optional[str]:
    """:func:`file_sha256` of a local file; None for a path that is not
    one (a URL, a remote backend)."""
    return file_sha256(path) if osp.isfile(path) else None
