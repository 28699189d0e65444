"""Which index engine the embedder runs, and how an older embedded store moves into it.

- ``qdrant_url`` set (production): a Qdrant server through qdrant-client (``QdrantIndex``).
- Otherwise ``engine``: ``edge``, the default (``EdgeIndex`` under ``<data_dir>/edge/<name>``),
  or ``qdrant-local`` (``QdrantIndex`` in local mode under ``<data_dir>/qdrant``, the embedded
  engine of earlier releases: exact but slow past a few thousand chunks).

Upgrading keeps the index. When the edge engine opens and a local-mode store exists under
``<data_dir>/qdrant``, every chunk point (vectors, payload and ``active`` flag as they are) and
every registry entry (tombstones included) is copied into edge; then the old store is renamed
``qdrant.migrated`` (kept for a way back; delete it at will), or, if it also holds collections
of another name, only ours are dropped from it. Crash-safe: copies are idempotent (same ids) and
edge is flushed before the old store goes, so an interrupted migration simply runs again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import structlog

from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.index import ChunkIndex
from ragstream_embedder.qdrant_index import CollectionLayout, QdrantIndex

log = structlog.get_logger(__name__)

Engine = Literal["edge", "qdrant-local"]
LOCAL_DIR = "qdrant"
EDGE_DIR = "edge"
MIGRATED_SUFFIX = ".migrated"


def open_index(
    *,
    data_dir: Path,
    collection: str,
    dimensions: int,
    engine: Engine = "edge",
    url: str = "",
    api_key: str = "",
    idf_per_collection: bool = True,
    optimize_idle_s: float = 5.0,
    indexing_threads: int = 1,
    build_tail_points: int | None = 20_000,
    layout: CollectionLayout | None = None,
) -> ChunkIndex:
    """The index the settings name, a local-mode store found on disk migrated into edge first.
    ``layout`` (shards, replication) applies to the collections qdrant-client creates."""
    if url:
        return QdrantIndex(
            url=url,
            api_key=api_key,
            collection=collection,
            dimensions=dimensions,
            idf_per_collection=idf_per_collection,
            layout=layout,
        )
    if engine == "qdrant-local":
        return QdrantIndex(
            path=data_dir / LOCAL_DIR,
            collection=collection,
            dimensions=dimensions,
            idf_per_collection=idf_per_collection,
            layout=layout,
        )
    index = EdgeIndex(
        path=data_dir / EDGE_DIR / collection,
        dimensions=dimensions,
        idf_per_collection=idf_per_collection,
        optimize_idle_s=optimize_idle_s,
        indexing_threads=indexing_threads,
        build_tail_points=build_tail_points,
    )
    legacy = data_dir / LOCAL_DIR
    if legacy.is_dir():
        migrate_local_store(legacy, index, collection=collection, dimensions=dimensions)
    return index


def migrate_local_store(source: Path, target: EdgeIndex, *, collection: str, dimensions: int) -> int:
    """Copy the chunk index ``collection`` of the local-mode store at ``source`` into ``target``.

    Returns the points copied. Idempotent; the old store is renamed (or our collections dropped
    from it) only after edge holds everything on disk.
    """
    local = QdrantIndex(path=source, collection=collection, dimensions=dimensions)
    try:
        copied = 0
        for batch in local.export_points():
            target.import_points(batch)
            copied += len(batch)
        entries = list(local.export_registry())
        for start in range(0, len(entries), 1000):
            target.import_registry(entries[start : start + 1000])
        target.chunks.flush()
        target.registry.flush()
        ours = {local.collection, local.registry, collection}
        others = [c.name for c in local.client.get_collections().collections if c.name not in ours]
        if others:
            for name in ours:
                if local.client.collection_exists(name):
                    local.client.delete_collection(name)
    finally:
        local.close()
    if not others:
        moved = source.with_name(source.name + MIGRATED_SUFFIX)
        if moved.exists():
            shutil.rmtree(moved)
        source.rename(moved)
    log.info(
        "index.migrated",
        source=str(source),
        target=str(target.path),
        points=copied,
        registry_entries=len(entries),
        kept_other_collections=others,
    )
    return copied
