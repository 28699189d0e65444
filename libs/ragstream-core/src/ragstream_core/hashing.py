"""SHA-256 of files and of what is written through a stream: one implementation for the
gateway's uploads, the embedder's index snapshots and the backups."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

_BLOCK = 1024 * 1024


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of the file at ``path``, read a block at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class HashingWriter:
    """A writable file that passes what it is given to ``target`` and hashes it on the way."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.target.write(data)
