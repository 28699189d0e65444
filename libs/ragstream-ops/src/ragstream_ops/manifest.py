"""The manifest of a backup directory: what each part holds, with counts and checksums.

``manifest.json`` is written last, so a directory without one is an unfinished backup. Restore
reads it first and checks every file it names against its SHA-256 before changing anything.

Errors (all ``ragstream_core.errors`` classes, so callers map them like any other):

- ``BackupError`` (base)
  - ``CorruptBackup``: the manifest is missing, unreadable, of an unknown version, or a file
    does not match its checksum;
  - ``DeploymentNotEmpty``: restore would overwrite data (``force`` allows it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragstream_core.errors import Conflict, InvalidInput, RagstreamError
from ragstream_core.hashing import sha256_file

FORMAT = "ragstream-backup"
VERSION = 1
MANIFEST = "manifest.json"


class BackupError(RagstreamError):
    """Base of the errors of backup and restore."""


class CorruptBackup(BackupError, InvalidInput):
    """The backup directory cannot be restored as it is."""


class DeploymentNotEmpty(BackupError, Conflict):
    """The deployment holds data that a restore would overwrite."""


@dataclass
class Manifest:
    """``version``, ``created_at`` and one entry per part (``postgres``, ``streams``, ``index``,
    ``objects``), each with its files (relative path → SHA-256) and counts."""

    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    version: int = VERSION
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: seconds each part took to restore (filled by ``restore``; not written)
    restore_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": self.version, "created_at": self.created_at, "parts": self.parts}

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """The manifest of ``directory``; raises ``CorruptBackup`` saying what is wrong."""
        path = directory / MANIFEST
        if not directory.is_dir():
            raise CorruptBackup(f"backup directory {directory} does not exist")
        if not path.is_file():
            raise CorruptBackup(
                f"{path} is missing: {directory} is not a finished ragstream backup "
                "(the manifest is written last, by `python -m ragstream_ops backup DIR`)"
            )
        try:
            raw = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptBackup(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise CorruptBackup(f'{path} is not a ragstream backup manifest (expected "format": "{FORMAT}")')
        if raw.get("version") != VERSION:
            raise CorruptBackup(f"{path} has version {raw.get('version')!r}; this release reads version {VERSION}")
        parts = raw.get("parts")
        if not isinstance(parts, dict) or not all(isinstance(p, dict) for p in parts.values()):
            raise CorruptBackup(f'{path} has no valid "parts" object')
        return cls(created_at=str(raw.get("created_at", "")), version=VERSION, parts=parts)

    def verify(self, directory: Path) -> None:
        """Check every file a part names against its SHA-256; raise ``CorruptBackup`` on the first
        missing or changed one."""
        for name, part in self.parts.items():
            files = part.get("files", {})
            if not isinstance(files, dict):
                raise CorruptBackup(f'part {name!r} of the manifest has no valid "files" object')
            for relative, expected in files.items():
                path = directory / relative
                if not path.is_file():
                    raise CorruptBackup(f"{path} (part {name}) is missing from the backup")
                found = sha256_file(path)
                if found != expected:
                    raise CorruptBackup(
                        f"{path} (part {name}) does not match its checksum: expected sha256 {expected}, found {found}"
                    )
