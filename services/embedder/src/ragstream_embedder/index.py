"""The vector index: Qdrant, embedded (local mode, on disk) or a server, behind one small class.

Versions swap atomically for readers. A new version's points are written with
``active=False`` (invisible to search), then one payload update activates them all, then the
previously active version's points are deleted. A small registry collection keeps each
document's active version and chunk count, so every step addresses points by id. Search reads
only active points and, in the short window where two active versions of a document exist,
keeps only the newest: a reader sees the old version or the new one, never a mix and never
neither.

Point ids derive from (document_id, version, chunk_index): rewriting a chunk is idempotent.

A deleted document leaves a tombstone in the registry (its last version, ``deleted``): every
point of it is removed, and an activation of any version up to the tombstone's (a job that was
still running when the delete came) removes its points instead, so a deleted document never
comes back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from ragstream_core.events import point_id

_REGISTRY_NAMESPACE = uuid.UUID("0b7e4c1a-58f2-4d8e-9c3b-2a6f1e9d7c55")


def registry_id(tenant_id: str, document_id: str) -> str:
    """The id of a document's entry in the registry of active versions."""
    return str(uuid.uuid5(_REGISTRY_NAMESPACE, f"{tenant_id}:{document_id}"))


class DocumentDeleted(Exception):
    """The version belongs to a deleted document: it was not (and will not be) indexed."""


@dataclass(frozen=True)
class ChunkPoint:
    tenant_id: str
    collection_id: str
    document_id: str
    version: int
    chunk_index: int
    text: str
    file_name: str
    media_type: str
    heading_path: list[str] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Hit:
    score: float
    payload: dict[str, Any]


def _match(key: str, value: Any) -> qm.FieldCondition:
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


class VectorIndex:
    """All chunks of all tenants in one Qdrant collection; every read is filtered by tenant.

    Not thread-safe in local mode: call it from one thread.
    """

    def __init__(
        self, *, path: Path | None = None, url: str = "", api_key: str = "", collection: str, dimensions: int
    ) -> None:
        if url:
            self.client = QdrantClient(url=url, api_key=api_key or None)
        else:
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            self.client = QdrantClient(path=str(path))
        self.collection = collection
        self.registry = f"{collection}_documents"
        self.dimensions = dimensions
        if not self.client.collection_exists(self.registry):
            # one point per document: its active version and chunk count
            self.client.create_collection(self.registry, vectors_config={})
        if not self.client.collection_exists(collection):
            self.client.create_collection(
                collection, vectors_config=qm.VectorParams(size=dimensions, distance=qm.Distance.COSINE)
            )
            if url:  # embedded Qdrant ignores payload indexes (and warns)
                for key in ("tenant_id", "collection_id", "document_id"):
                    self.client.create_payload_index(collection, key, qm.PayloadSchemaType.KEYWORD)

    def upsert(self, points: list[ChunkPoint], vectors: NDArray[np.float32]) -> None:
        """Write (inactive) points; rewriting the same chunk overwrites it."""
        self.client.upsert(
            self.collection,
            points=[
                qm.PointStruct(
                    id=point_id(p.document_id, p.version, p.chunk_index),
                    vector=vector.tolist(),
                    payload={
                        "tenant_id": p.tenant_id,
                        "collection_id": p.collection_id,
                        "document_id": p.document_id,
                        "version": p.version,
                        "chunk_index": p.chunk_index,
                        "text": p.text,
                        "file_name": p.file_name,
                        "media_type": p.media_type,
                        "heading_path": p.heading_path,
                        "pages": p.pages,
                        "active": False,
                    },
                )
                for p, vector in zip(points, vectors, strict=True)
            ],
            wait=True,
        )

    def _entry(self, tenant_id: str, document_id: str) -> dict[str, Any] | None:
        entries = self.client.retrieve(self.registry, [registry_id(tenant_id, document_id)], with_payload=True)
        return dict(entries[0].payload or {}) if entries else None

    def is_deleted(self, tenant_id: str, document_id: str, version: int) -> bool:
        """Whether ``version`` of the document was deleted (it must not be indexed)."""
        entry = self._entry(tenant_id, document_id)
        return entry is not None and bool(entry.get("deleted")) and version <= int(entry["version"])

    def delete_document(self, tenant_id: str, document_id: str, up_to_version: int) -> int:
        """Remove every point of a document and leave a tombstone; returns the points removed."""
        document = qm.Filter(must=[_match("tenant_id", tenant_id), _match("document_id", document_id)])
        removed = self.client.count(self.collection, count_filter=document, exact=True).count
        if removed:
            self.client.delete(self.collection, points_selector=qm.FilterSelector(filter=document), wait=True)
        entry = self._entry(tenant_id, document_id)
        version = max(up_to_version, int(entry["version"]) if entry else 0)
        self.client.upsert(
            self.registry,
            points=[
                qm.PointStruct(
                    id=registry_id(tenant_id, document_id),
                    vector={},
                    payload={
                        "tenant_id": tenant_id,
                        "document_id": document_id,
                        "version": version,
                        "chunk_count": 0,
                        "deleted": True,
                    },
                )
            ],
            wait=True,
        )
        return int(removed)

    def discard(self, tenant_id: str, document_id: str, version: int, chunk_count: int) -> None:
        """Remove the inactive points written for ``version`` (a run that was cancelled or paused).

        The active version is never touched.
        """
        entry = self._entry(tenant_id, document_id)
        if entry is not None and not entry.get("deleted") and int(entry["version"]) == version:
            return
        ids: list[qm.ExtendedPointId] = [point_id(document_id, version, i) for i in range(chunk_count)]
        if ids:
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=ids), wait=True)

    def activate(self, tenant_id: str, document_id: str, version: int, chunk_count: int) -> int:
        """Make ``version`` the searchable one and delete the previously active version.

        Every step addresses points by id (no filter scans, which embedded Qdrant runs in
        Python over every point). Idempotent; a version older than the active one is not
        activated but deleted, so a late redelivery never rolls a document back. Returns the
        number of points removed.
        """
        new_ids: list[qm.ExtendedPointId] = [point_id(document_id, version, i) for i in range(chunk_count)]
        entry_id = registry_id(tenant_id, document_id)
        active = self._entry(tenant_id, document_id)
        if active is not None and active.get("deleted") and int(active["version"]) >= version:
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=new_ids), wait=True)
            raise DocumentDeleted(f"document {document_id} was deleted; version {version} is not indexed")
        if active is not None and int(active["version"]) > version:
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=new_ids), wait=True)
            return len(new_ids)
        if new_ids:
            self.client.set_payload(
                self.collection, payload={"active": True}, points=qm.PointIdsList(points=new_ids), wait=True
            )
        stale: list[qm.ExtendedPointId] = []
        if active is not None and int(active["version"]) != version and not active.get("deleted"):
            stale = [point_id(document_id, int(active["version"]), i) for i in range(int(active["chunk_count"]))]
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=stale), wait=True)
        self.client.upsert(
            self.registry,
            points=[
                qm.PointStruct(
                    id=entry_id,
                    vector={},
                    payload={
                        "tenant_id": tenant_id,
                        "document_id": document_id,
                        "version": version,
                        "chunk_count": chunk_count,
                    },
                )
            ],
            wait=True,
        )
        return len(stale)

    def count(self, tenant_id: str, document_id: str) -> dict[int, int]:
        """Points per version of one document (active or not)."""
        counts: dict[int, int] = {}
        offset: Any = None
        document = qm.Filter(must=[_match("tenant_id", tenant_id), _match("document_id", document_id)])
        while True:
            records, offset = self.client.scroll(
                self.collection, scroll_filter=document, limit=1000, offset=offset, with_payload=["version"]
            )
            for record in records:
                version = int((record.payload or {})["version"])
                counts[version] = counts.get(version, 0) + 1
            if offset is None:
                return counts

    def search(
        self,
        vector: NDArray[np.float32],
        *,
        tenant_id: str,
        collection_id: str,
        top_k: int,
        document_ids: list[str] | None = None,
    ) -> list[Hit]:
        """The best active chunks of one collection, newest version per document only."""
        must: list[Any] = [
            _match("tenant_id", tenant_id),
            _match("collection_id", collection_id),
            _match("active", True),
        ]
        if document_ids:
            must.append(qm.FieldCondition(key="document_id", match=qm.MatchAny(any=document_ids)))
        response = self.client.query_points(
            self.collection,
            query=vector.tolist(),
            query_filter=qm.Filter(must=must),
            limit=top_k * 2,
            with_payload=True,
        )
        points = response.points
        newest: dict[str, int] = {}
        for p in points:
            payload = p.payload or {}
            newest[payload["document_id"]] = max(newest.get(payload["document_id"], 0), int(payload["version"]))
        hits = [
            Hit(score=float(p.score), payload=dict(p.payload or {}))
            for p in points
            if int((p.payload or {})["version"]) == newest[(p.payload or {})["document_id"]]
        ]
        return hits[:top_k]

    def close(self) -> None:
        self.client.close()
