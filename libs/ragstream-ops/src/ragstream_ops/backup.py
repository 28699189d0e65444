"""Backup and restore of a whole deployment: JetStream, the index, PostgreSQL, the object store.

``backup(target, settings)`` writes one directory::

    manifest.json          version, created_at, per part: files with SHA-256, counts, seconds
    streams/<name>.json    stream configuration, first/last sequence, durable consumers and positions
    streams/<name>.jsonl   its messages (sequence, subject, headers, data, time)
    index.tar              the embedded index (Qdrant Edge), taken by the embedder under its lock
    postgres.dump          pg_dump custom format of every schema
    objects.jsonl          key, size and SHA-256 of every object; the objects under objects/

Consistency: the backup runs while the system runs. Parts are taken in the order their data
depends on each other: consumer positions, then stream messages, then the index, then
PostgreSQL, then the objects. So every restored consumer points at or before what the other
parts already reflect, and every stored event finds the objects it names: after a restore,
work that was in flight is delivered again and applied once (every stage is idempotent), the
same as after a crash of every service at that moment. Uploads accepted while the backup runs
may be missing from it; for a point-in-time copy, stop (or stop using) the gateway first.

``restore(source, settings)`` runs with the servers up (NATS, PostgreSQL, S3 if used) and the
five services stopped; start them afterwards. It reads and checks the manifest and every
checksum before it changes anything, refuses a deployment that holds data unless ``force``
(which replaces it), then restores streams (same sequences, consumers after what they had
acknowledged), the index, PostgreSQL and the objects.
"""

from __future__ import annotations

import time
from pathlib import Path

import nats
import structlog

from ragstream_core.errors import Conflict
from ragstream_core.settings import CoreSettings
from ragstream_core.storage import open_object_store
from ragstream_ops.index import backup_index, index_holds_data, restore_index
from ragstream_ops.manifest import MANIFEST, BackupError, CorruptBackup, DeploymentNotEmpty, Manifest
from ragstream_ops.objects import backup_objects, list_keys, restore_objects, verify_objects
from ragstream_ops.postgres import backup_postgres, database_url, holds_data, restore_postgres
from ragstream_ops.streams import backup_streams, message_count, pulling_consumers, restore_streams

log = structlog.get_logger(__name__)

PARTS = ("streams", "index", "postgres", "objects")


class TargetNotEmpty(BackupError, Conflict):
    """The backup directory is not empty: a backup never overwrites files."""


class ServicesRunning(BackupError, Conflict):
    """A restore was started while services consume from the deployment."""


def _prepare_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise TargetNotEmpty(f"{target} is a file; name a new or empty directory")
    if target.is_dir() and any(target.iterdir()):
        what = "a backup" if (target / MANIFEST).exists() else "files"
        raise TargetNotEmpty(f"{target} already holds {what}; name a new or empty directory")
    target.mkdir(parents=True, exist_ok=True)


async def backup(
    target: Path,
    settings: CoreSettings,
    *,
    snapshot_timeout_s: float = 600.0,
    pg_bin_dir: Path | None = None,
    skip_index: bool = False,
) -> Manifest:
    """Write a backup of the deployment ``settings`` names into ``target`` (new or empty).

    ``skip_index`` leaves the index out (a Qdrant server, backed up with its own snapshots).
    """
    _prepare_target(target)
    manifest = Manifest()
    objects = open_object_store(settings)
    url = database_url(settings.postgres_url, settings.data_dir)
    nc = await nats.connect(settings.nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        started = time.perf_counter()
        manifest.parts["streams"] = await backup_streams(nc.jetstream(), target)
        manifest.parts["streams"]["seconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        if skip_index:
            manifest.parts["index"] = {"skipped": True, "files": {}}
        else:
            manifest.parts["index"] = await backup_index(
                nc, objects, target, data_dir=settings.data_dir, timeout_s=snapshot_timeout_s
            )
        manifest.parts["index"]["seconds"] = round(time.perf_counter() - started, 3)
    finally:
        await nc.close()
    started = time.perf_counter()
    manifest.parts["postgres"] = await backup_postgres(url, target, bin_dir=pg_bin_dir)
    manifest.parts["postgres"]["seconds"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    manifest.parts["objects"] = await backup_objects(objects, target)
    manifest.parts["objects"]["seconds"] = round(time.perf_counter() - started, 3)
    manifest.write(target)  # last: a directory without it is an unfinished backup
    log.info("backup.done", target=str(target), **{p: manifest.parts[p].get("seconds") for p in PARTS})
    return manifest


async def restore(
    source: Path,
    settings: CoreSettings,
    *,
    force: bool = False,
    pg_bin_dir: Path | None = None,
) -> Manifest:
    """Restore the backup in ``source`` into the deployment ``settings`` names (services stopped).

    Returns the backup's manifest with ``restore_seconds`` filled in per part. Raises
    ``CorruptBackup`` before changing anything if the manifest or a file is wrong, and
    ``DeploymentNotEmpty`` if the deployment holds data and ``force`` is not set.
    """
    manifest = Manifest.read(source)
    missing = [p for p in PARTS if p not in manifest.parts]
    if missing:
        raise CorruptBackup(f"{source / MANIFEST} lacks the parts {missing}")
    manifest.verify(source)
    verify_objects(source)
    index_skipped = bool(manifest.parts["index"].get("skipped"))
    objects = open_object_store(settings)
    url = database_url(settings.postgres_url, settings.data_dir)
    nc = await nats.connect(settings.nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        pulling = await pulling_consumers(js, watch_s=2.0)
        if pulling:
            raise ServicesRunning(
                f"services are consuming from this deployment ({', '.join(pulling)}): stop the five services "
                "(NATS, PostgreSQL and the object store stay up) before a restore, even with force"
            )
        holding = {
            "JetStream streams": await message_count(js) > 0,
            "index": not index_skipped and index_holds_data(settings.data_dir, manifest.parts["index"]),
            "PostgreSQL": await holds_data(url),
            "object store": bool(await list_keys(objects)),
        }
        if any(holding.values()) and not force:
            parts = ", ".join(name for name, held in holding.items() if held)
            raise DeploymentNotEmpty(
                f"the deployment already holds data ({parts}); a restore would replace it: "
                "restore onto an empty deployment, or pass force to replace it"
            )
        started = time.perf_counter()
        await restore_streams(js, source, manifest.parts["streams"])
        manifest.restore_seconds["streams"] = round(time.perf_counter() - started, 3)
    finally:
        await nc.close()
    started = time.perf_counter()
    if not index_skipped:
        await restore_index(source, manifest.parts["index"], data_dir=settings.data_dir, replace=force)
    manifest.restore_seconds["index"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    await restore_postgres(url, source, manifest.parts["postgres"], bin_dir=pg_bin_dir)
    manifest.restore_seconds["postgres"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    await restore_objects(objects, source, replace=force)
    manifest.restore_seconds["objects"] = round(time.perf_counter() - started, 3)
    log.info("restore.done", source=str(source), **manifest.restore_seconds)
    return manifest
