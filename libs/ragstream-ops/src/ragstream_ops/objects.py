"""Object store part: every object (uploads, parsed chunks, staged direct uploads) copied to
``objects/<key>`` with its size and SHA-256 in ``objects.jsonl``.

The listing lives here (``list_keys``) for both stores of ``ragstream_core.storage``: the files
under the local root (write temporaries ``.tmp-*`` excluded), or the bucket's keys on S3.
Keys under ``ops/`` are this tool's own scratch (index snapshots in transit) and are skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragstream_core.hashing import HashingWriter, sha256_file
from ragstream_core.storage import LocalObjectStore, ObjectStore, S3ObjectStore
from ragstream_ops.manifest import CorruptBackup

DIRECTORY = "objects"
LISTING = "objects.jsonl"
SCRATCH = "ops/"


def _local_keys(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".tmp-")
    )


def _s3_keys(store: S3ObjectStore) -> list[str]:
    store._ensure_bucket()
    return sorted(str(o.object_name) for o in store.client.list_objects(store.bucket, recursive=True) if o.object_name)


async def list_keys(store: ObjectStore) -> list[str]:
    """Every key in the store, sorted, without this tool's scratch keys."""
    if isinstance(store, LocalObjectStore):
        keys = await asyncio.to_thread(_local_keys, store.root)
    elif isinstance(store, S3ObjectStore):
        keys = await asyncio.to_thread(_s3_keys, store)
    else:
        raise TypeError(f"cannot list a {type(store).__name__}; known: LocalObjectStore, S3ObjectStore")
    return [k for k in keys if not k.startswith(SCRATCH)]


def _path(base: Path, key: str) -> Path:
    path = (base / key).resolve()
    if not path.is_relative_to(base.resolve()):
        raise CorruptBackup(f"object key {key!r} leaves the backup directory")
    return path


async def backup_objects(store: ObjectStore, target: Path) -> dict[str, Any]:
    """Copy every object into ``target/objects``; returns the manifest part."""
    base = target / DIRECTORY
    base.mkdir(parents=True, exist_ok=True)
    listing = target / LISTING
    count = total = 0
    with listing.open("w") as index:
        for key in await list_keys(store):
            path = _path(base, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f:
                sink = HashingWriter(f)
                size = await store.read_into(key, sink)  # type: ignore[arg-type]
            index.write(json.dumps({"key": key, "size": size, "sha256": sink.digest.hexdigest()}) + "\n")
            count += 1
            total += size
    return {"files": {LISTING: sha256_file(listing)}, "objects": count, "bytes": total}


def _entries(source: Path) -> Iterator[dict[str, Any]]:
    with (source / LISTING).open() as f:
        for line in f:
            yield json.loads(line)


def verify_objects(source: Path) -> None:
    """Check every object file against its size and SHA-256 before anything is written."""
    base = source / DIRECTORY
    for entry in _entries(source):
        path = _path(base, entry["key"])
        if not path.is_file():
            raise CorruptBackup(f"object {entry['key']!r} is missing from {base}")
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise CorruptBackup(f"object {entry['key']!r} in {base} does not match its size and checksum")


async def restore_objects(store: ObjectStore, source: Path, *, replace: bool) -> int:
    """Write every object of the backup; with ``replace`` delete the store's other objects."""
    base = source / DIRECTORY
    keep: set[str] = set()
    for entry in _entries(source):
        key = entry["key"]
        with _path(base, key).open("rb") as f:
            await store.put_file(key, f, int(entry["size"]))
        keep.add(key)
    if replace:
        for key in await list_keys(store):
            if key not in keep:
                await store.delete(key)
    return len(keep)
