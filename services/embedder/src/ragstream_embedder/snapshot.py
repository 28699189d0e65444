"""The index snapshot a backup asks for (``ragstream.rpc.index.snapshot``, ``ops.proto``).

The edge index is archived under its lock as one tar file (``EdgeIndex.snapshot``) and put into
the object store under the key the request names; the caller (``ragstream_ops``) reads
it from there and deletes it. Failures are answered with ``error``, never left unanswered.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Protocol

import structlog

from ragstream_core.hashing import sha256_file
from ragstream_core.proto.ragstream.v1.ops_pb2 import IndexSnapshotReply, IndexSnapshotRequest
from ragstream_core.storage import ObjectStore

log = structlog.get_logger(__name__)

ENGINE = "edge"


class Snapshottable(Protocol):
    async def snapshot(self, archive: Path) -> tuple[Path, int]: ...


def _relative(path: Path, data_dir: Path) -> str:
    """``path`` relative to the data dir (where a restore puts it back), else as it is."""
    try:
        return path.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


async def snapshot_index(
    request: IndexSnapshotRequest, *, index: Snapshottable, objects: ObjectStore, data_dir: Path
) -> IndexSnapshotReply:
    if not request.object_key:
        return IndexSnapshotReply(error="object_key is empty: name the object store key to put the snapshot at")
    try:
        with tempfile.TemporaryDirectory(prefix="ragstream-snapshot-") as tmp:
            archive = Path(tmp) / "index.tar"
            path, points = await index.snapshot(archive)
            sha256 = await asyncio.to_thread(sha256_file, archive)
            size = archive.stat().st_size
            with archive.open("rb") as f:
                await objects.put_file(request.object_key, f, size)
    except Exception as exc:  # the requester must get a reason, not a timeout
        log.error("index.snapshot_failed", error=str(exc), error_type=type(exc).__name__)
        return IndexSnapshotReply(error=f"index snapshot failed: {exc}")
    relative = _relative(path, data_dir)
    log.info("index.snapshot_taken", key=request.object_key, points=points, size_bytes=size)
    return IndexSnapshotReply(
        object_key=request.object_key, size_bytes=size, sha256=sha256, engine=ENGINE, path=relative, points=points
    )
