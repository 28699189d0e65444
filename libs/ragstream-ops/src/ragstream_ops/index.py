"""Index part: a snapshot of the embedded index (Qdrant Edge, in the embedder's process).

Backup asks the running embedder over NATS (``ragstream.rpc.index.snapshot``): it copies both
shards under its index lock (flushed, no write halfway) into a tar archive in the object store,
which is read from there into ``index.tar`` and deleted. With the embedder stopped (no
responder), the files under ``<data dir>/edge/<name>`` are archived directly: nothing writes them
then. Restore unpacks the archive to the same place under the data dir, with the embedder
stopped; the embedder loads it at its next start and recounts its keyword statistics.

A Qdrant server (production) is not covered: use its collection snapshots
(deploy/k8s/README.md#backup-and-restore).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient

from ragstream_core.errors import DependencyUnavailable
from ragstream_core.events import INDEX_SNAPSHOT_SUBJECT
from ragstream_core.hashing import sha256_file
from ragstream_core.proto.ragstream.v1.ops_pb2 import IndexSnapshotReply, IndexSnapshotRequest
from ragstream_core.storage import ObjectStore
from ragstream_ops.manifest import BackupError, CorruptBackup, DeploymentNotEmpty
from ragstream_ops.objects import SCRATCH

ARCHIVE = "index.tar"
EDGE_DIR = "edge"


def _tar(*args: str) -> None:
    """GNU tar with ``--sparse``: the index's files are mostly holes, kept as holes both ways."""
    try:
        subprocess.run(["tar", "--sparse", *args], check=True, capture_output=True)
    except FileNotFoundError:
        raise DependencyUnavailable("GNU tar is not installed (Debian package tar)") from None
    except subprocess.CalledProcessError as exc:
        raise BackupError(f"tar {args[0]} failed: {exc.stderr.decode(errors='replace').strip()}") from None


def _archive_dir(directory: Path, archive: Path) -> None:
    _tar("--create", f"--file={archive}", f"--directory={directory}", ".")


async def _offline_snapshot(data_dir: Path, archive: Path) -> dict[str, Any]:
    """The embedder is not running: archive its edge directory as it is on disk."""
    edge = data_dir / EDGE_DIR
    found = sorted(p for p in edge.iterdir() if p.is_dir()) if edge.is_dir() else []
    if len(found) != 1:
        raise DependencyUnavailable(
            f"no embedder answers on {INDEX_SNAPSHOT_SUBJECT} and {edge} holds {len(found)} index directories "
            "(expected one): start the embedder, or set RAGSTREAM_DATA_DIR to the embedder's data dir"
        )
    await asyncio.to_thread(_archive_dir, found[0], archive)
    return {"path": found[0].relative_to(data_dir).as_posix(), "points": None, "taken_by": "files (embedder stopped)"}


async def backup_index(
    nc: NatsClient, objects: ObjectStore, target: Path, *, data_dir: Path, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Snapshot the index into ``target/index.tar``; returns the manifest part."""
    archive = target / ARCHIVE
    key = f"{SCRATCH}index-snapshots/{uuid.uuid4().hex}.tar"
    request = IndexSnapshotRequest(object_key=key)
    try:
        message = await nc.request(INDEX_SNAPSHOT_SUBJECT, request.SerializeToString(), timeout=timeout_s)
    except nats.errors.NoRespondersError:
        part = await _offline_snapshot(data_dir, archive)
    except nats.errors.TimeoutError as exc:
        raise DependencyUnavailable(f"the embedder did not answer the index snapshot within {timeout_s} s") from exc
    else:
        reply = IndexSnapshotReply.FromString(message.data)
        if reply.error:
            raise BackupError(f"the embedder could not snapshot its index: {reply.error}")
        try:
            with archive.open("wb") as f:
                await objects.read_into(key, f)
        finally:
            await objects.delete(key)
        if sha256_file(archive) != reply.sha256:
            raise BackupError(f"the index snapshot read from the object store ({key}) does not match its checksum")
        part = {"path": reply.path, "points": reply.points, "taken_by": "embedder"}
    part.update({"engine": "edge", "bytes": archive.stat().st_size, "files": {ARCHIVE: sha256_file(archive)}})
    return part


def index_dir(data_dir: Path, part: dict[str, Any]) -> Path:
    relative = str(part.get("path", ""))
    destination = (data_dir / relative).resolve()
    if not relative or not destination.is_relative_to(data_dir.resolve()) or destination == data_dir.resolve():
        raise CorruptBackup(f"the index part names path {relative!r}, which is not a directory under the data dir")
    return destination


def index_holds_data(data_dir: Path, part: dict[str, Any]) -> bool:
    destination = index_dir(data_dir, part)
    return destination.is_dir() and any(destination.iterdir())


def _unpack(archive: Path, destination: Path, replace: bool) -> None:
    if destination.exists():
        if any(destination.iterdir()) and not replace:
            raise DeploymentNotEmpty(f"{destination} already holds an index; restore with force to replace it")
        shutil.rmtree(destination)
    staging = destination.with_name(destination.name + ".restoring")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    _tar("--extract", f"--file={archive}", f"--directory={staging}", "--no-same-owner")
    staging.rename(destination)


async def restore_index(source: Path, part: dict[str, Any], *, data_dir: Path, replace: bool) -> Path:
    """Unpack the snapshot where the embedder of ``data_dir`` loads it (embedder stopped)."""
    destination = index_dir(data_dir, part)
    await asyncio.to_thread(_unpack, source / ARCHIVE, destination, replace)
    return destination
