"""The vector index: Qdrant, embedded (local mode, on disk) or a server, behind one small class.

Versions swap atomically for readers. A new version's points are written with
``active=False`` (invisible to search), then one payload update activates them all, then the
previously active version's points are deleted. A small registry collection keeps each
document's active version and chunk count, so every step addresses points by id. Search reads
only active points and, in the short window where two active versions of a document exist,
keeps only the newest: a reader sees the old version or the new one, never a mix and never
neither.

Point ids derive from (document_id, version, chunk_index): rewriting a chunk is idempotent.

Each point carries two vectors that can never disagree about which chunks exist: ``dense``
(the embedding model's) and ``sparse`` (BM25-style keyword weights, ``sparse.SparseEncoder``,
with Qdrant's IDF modifier). Search runs either alone or both fused by reciprocal rank fusion.

A deleted document leaves a tombstone in the registry (its last version, ``deleted``): every
point of it is removed, and an activation of any version up to the tombstone's (a job that was
still running when the delete came) removes its points instead, so a deleted document never
comes back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
from numpy.typing import NDArray
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from ragstream_core.events import point_id
from ragstream_embedder.sparse import SparseEncoder, SparseVector

log = structlog.get_logger(__name__)

DENSE = "dense"
SPARSE = "sparse"
# Points live in "<collection>_v2": named dense + sparse vectors. "<collection>" itself held the
# first schema (one unnamed dense vector); it is migrated on open and then dropped.
SCHEMA_SUFFIX = "_v2"
Mode = Literal["hybrid", "dense", "sparse"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "sparse")

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
    """One chunk found.

    ``score`` is the cosine similarity of chunk and query in the dense and hybrid modes (so a
    relevance threshold keeps its meaning whatever the fusion), the BM25 score in the sparse
    mode; ``rank_score`` is what the hits are ordered by (RRF in the hybrid mode).
    """

    score: float
    payload: dict[str, Any]
    rank_score: float = 0.0


def sparse_text(payload: dict[str, Any]) -> str:
    """The text a chunk's keywords come from: its heading path and its text."""
    return "\n".join([*(payload.get("heading_path") or []), payload.get("text", "")])


def _sparse(vector: SparseVector) -> qm.SparseVector:
    return qm.SparseVector(indices=vector.indices, values=vector.values)


def _cosine(query: NDArray[np.float32], vectors: Any) -> float:
    """Cosine of a unit query and a point's stored (unit) dense vector."""
    stored = vectors[DENSE] if isinstance(vectors, dict) else vectors
    return float(np.dot(query, np.asarray(stored, dtype=np.float32)))


def _match(key: str, value: Any) -> qm.FieldCondition:
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


class VectorIndex:
    """All chunks of all tenants in one Qdrant collection; every read is filtered by tenant.

    Not thread-safe in local mode: call it from one thread.

    ``idf_per_collection``: the sparse IDF counts only the active chunks of the searched
    collection (right for ranking, and no tenant's terms shape another's results); off, it
    counts every point in Qdrant (cheaper in embedded mode, which counts per query).
    """

    def __init__(
        self,
        *,
        path: Path | None = None,
        url: str = "",
        api_key: str = "",
        collection: str,
        dimensions: int,
        sparse: SparseEncoder | None = None,
        idf_per_collection: bool = True,
    ) -> None:
        if url:
            self.client = QdrantClient(url=url, api_key=api_key or None)
        else:
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            self.client = QdrantClient(path=str(path))
        self.collection = f"{collection}{SCHEMA_SUFFIX}"
        self.registry = f"{collection}_documents"
        self.dimensions = dimensions
        self.sparse = sparse or SparseEncoder()
        self.idf_per_collection = idf_per_collection
        if not self.client.collection_exists(self.registry):
            # one point per document: its active version and chunk count
            self.client.create_collection(self.registry, vectors_config={})
        if not self.client.collection_exists(self.collection):
            self.client.create_collection(
                self.collection,
                vectors_config={DENSE: qm.VectorParams(size=dimensions, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            )
            if url:  # embedded Qdrant ignores payload indexes (and warns)
                for key in ("tenant_id", "collection_id", "document_id", "media_type", "file_name"):
                    self.client.create_payload_index(self.collection, key, qm.PayloadSchemaType.KEYWORD)
                self.client.create_payload_index(self.collection, "active", qm.PayloadSchemaType.BOOL)
        if self.client.collection_exists(collection):
            self._migrate(collection)

    def _vectors(self, dense: list[float], payload: dict[str, Any]) -> dict[str, Any]:
        vectors: dict[str, Any] = {DENSE: dense}
        keywords = self.sparse.document(sparse_text(payload))
        if keywords.indices:  # a chunk of no words has no sparse vector (nothing to match)
            vectors[SPARSE] = _sparse(keywords)
        return vectors

    def _migrate(self, legacy: str) -> None:
        """Copy every point of the first schema (dense only) here, adding its sparse vector.

        Crash-safe: copies are idempotent (same ids) and the old collection is dropped last, so
        an interrupted migration simply runs again on the next open. Registry entries stay valid.
        """
        copied = 0
        offset: Any = None
        while True:
            records, offset = self.client.scroll(legacy, limit=256, offset=offset, with_payload=True, with_vectors=True)
            points = []
            for record in records:
                payload = dict(record.payload or {})
                dense = record.vector[DENSE] if isinstance(record.vector, dict) else record.vector
                points.append(qm.PointStruct(id=record.id, vector=self._vectors(list(dense), payload), payload=payload))  # type: ignore[arg-type]
            if points:
                self.client.upsert(self.collection, points=points, wait=True)
                copied += len(points)
            if offset is None:
                break
        self.client.delete_collection(legacy)
        log.info("index.migrated", source=legacy, target=self.collection, points=copied)

    def upsert(self, points: list[ChunkPoint], vectors: NDArray[np.float32]) -> None:
        """Write (inactive) points; rewriting the same chunk overwrites it."""
        structs = []
        for p, vector in zip(points, vectors, strict=True):
            payload = {
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
            }
            structs.append(
                qm.PointStruct(
                    id=point_id(p.document_id, p.version, p.chunk_index),
                    vector=self._vectors(vector.tolist(), payload),
                    payload=payload,
                )
            )
        self.client.upsert(self.collection, points=structs, wait=True)

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
        query: str = "",
        mode: Mode = "hybrid",
        media_types: list[str] | None = None,
        file_names: list[str] | None = None,
    ) -> list[Hit]:
        """The best active chunks of one collection, newest version per document only.

        ``vector`` is the query's dense vector, ``query`` its text (for the keyword side). The
        hybrid mode fuses the dense and the sparse ranking by RRF; a query of no keywords (stop
        words only, or no ``query``) is answered by the dense side alone. Filters narrow the
        chunks searched, never the IDF statistics (those are the collection's).
        """
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; accepted: {', '.join(MODES)}")
        scope: list[Any] = [
            _match("tenant_id", tenant_id),
            _match("collection_id", collection_id),
            _match("active", True),
        ]
        must = list(scope)
        if document_ids:
            must.append(qm.FieldCondition(key="document_id", match=qm.MatchAny(any=document_ids)))
        if media_types:
            must.append(qm.FieldCondition(key="media_type", match=qm.MatchAny(any=media_types)))
        if file_names:
            must.append(qm.FieldCondition(key="file_name", match=qm.MatchAny(any=file_names)))
        keywords = _sparse(self.sparse.query(query))
        if mode == "hybrid" and not keywords.indices:
            mode = "dense"
        idf = qm.SearchParams(idf=qm.IdfCorpusParams(corpus=qm.Filter(must=scope))) if self.idf_per_collection else None
        dense = vector.tolist()
        limit = top_k * 2  # room for the stale version dropped below
        if mode == "sparse":
            if not keywords.indices:
                return []
            response = self.client.query_points(
                self.collection,
                query=keywords,
                using=SPARSE,
                query_filter=qm.Filter(must=must),
                search_params=idf,
                limit=limit,
                with_payload=True,
            )
            scored = [(float(p.score), float(p.score), p) for p in response.points]
        else:
            if mode == "dense":
                response = self.client.query_points(
                    self.collection,
                    query=dense,
                    using=DENSE,
                    query_filter=qm.Filter(must=must),
                    limit=limit,
                    with_payload=True,
                )
            else:
                candidates = max(limit * 3, 30)
                response = self.client.query_points(
                    self.collection,
                    prefetch=[
                        qm.Prefetch(query=dense, using=DENSE, limit=candidates),
                        qm.Prefetch(query=keywords, using=SPARSE, params=idf, limit=candidates),
                    ],
                    query=qm.FusionQuery(fusion=qm.Fusion.RRF),
                    query_filter=qm.Filter(must=must),
                    limit=limit,
                    with_payload=True,
                    with_vectors=[DENSE],
                )
            query_unit = np.asarray(dense, dtype=np.float32)
            scored = [
                (_cosine(query_unit, p.vector) if mode == "hybrid" else float(p.score), float(p.score), p)
                for p in response.points
            ]
        newest: dict[str, int] = {}
        for _, _, p in scored:
            payload = p.payload or {}
            newest[payload["document_id"]] = max(newest.get(payload["document_id"], 0), int(payload["version"]))
        hits = [
            Hit(score=score, payload=dict(p.payload or {}), rank_score=rank)
            for score, rank, p in scored
            if int((p.payload or {})["version"]) == newest[(p.payload or {})["document_id"]]
        ]
        return hits[:top_k]

    def close(self) -> None:
        self.client.close()
