"""Operating ragstream: backup and restore of a whole deployment (``python -m ragstream_ops``)."""

from ragstream_ops.backup import backup, restore
from ragstream_ops.manifest import BackupError, Manifest

__all__ = ["BackupError", "Manifest", "backup", "restore"]
