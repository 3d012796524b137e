"""SHA-256 of files, read in blocks: the one loop that hashes what is on disk."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_BLOCK = 1 << 20


def sha256_of_files(paths: Iterable[Path]) -> str:
    """Hex SHA-256 of the files' bytes one after the other, in the order given.

    Raises:
        OSError: when a file cannot be read.
    """
    digest = hashlib.sha256()
    for path in paths:
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                digest.update(block)
    return digest.hexdigest()
