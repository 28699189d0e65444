"""The edge index's registry of active versions: one small edge shard, one payload per document.

An entry holds a document's active version and chunk count, or its tombstone (``deleted``,
the last version) once it was deleted. Entries are addressed by ``index.registry_id``; the
shard keeps its write-ahead log (one small record per activation or deletion).
"""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from ragstream_embedder.index import registry_id

VECTOR = "none"  # entries carry payloads only; an edge shard wants a vector declared
CONFIG = qe.EdgeConfig(sparse_vectors={VECTOR: qe.EdgeSparseVectorParams()})


class EdgeRegistry:
    """Get and put entries; not locked (the index calls it under its own lock)."""

    def __init__(self, shard: qe.EdgeShard) -> None:
        self.shard = shard

    def get(self, tenant_id: str, document_id: str) -> dict[str, Any] | None:
        found = self.shard.retrieve([registry_id(tenant_id, document_id)], with_payload=True, with_vector=False)
        return dict(found[0].payload or {}) if found else None

    def put(self, tenant_id: str, document_id: str, fields: dict[str, Any]) -> None:
        payload = {"tenant_id": tenant_id, "document_id": document_id} | fields
        self.shard.update(
            qe.UpdateOperation.upsert_points([qe.Point(registry_id(tenant_id, document_id), {}, payload)])
        )

    def import_entries(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        """Write entries as they are, ids included: a migration's copy."""
        if entries:
            self.shard.update(qe.UpdateOperation.upsert_points([qe.Point(i, {}, p) for i, p in entries]))

    def flush(self) -> None:
        self.shard.flush()

    def close(self) -> None:
        self.shard.close()
