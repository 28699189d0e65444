"""The index on ``qdrant-client``: a Qdrant server (production) or its local mode on disk.

The contract and its guarantees are ``index.ChunkIndex``'s. Local mode is the embedded engine
of earlier releases (``RAGSTREAM_EMBEDDER_ENGINE=qdrant-local``): it scans every point in Python
(brute force, filters evaluated per point), so it is slow past a few thousand chunks; a store
of it found on disk is migrated into the edge engine when that is the engine (``engines``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from ragstream_core.events import point_id
from ragstream_embedder.index import (
    CREATED_AT,
    DENSE,
    INVENTORY_FIELDS,
    KEYWORD_FIELDS,
    SPARSE,
    TAGS,
    TEXT_FIELDS,
    ChunkPoint,
    DocumentDeleted,
    Hit,
    InventoryBuilder,
    Mode,
    VersionInventory,
    check_mode,
    chunk_payload,
    newer_tags,
    newest_only,
    registry_id,
    sparse_text,
    tag_fields,
)
from ragstream_embedder.sparse import SparseEncoder, SparseVector

log = structlog.get_logger(__name__)

# Points live in "<collection>_v2": named dense + sparse vectors. "<collection>" itself held the
# first schema (one unnamed dense vector); it is migrated on open and then dropped.
SCHEMA_SUFFIX = "_v2"


def _sparse(vector: SparseVector) -> qm.SparseVector:
    return qm.SparseVector(indices=vector.indices, values=vector.values)


def _dense_of(vectors: Any) -> Any:
    return vectors[DENSE] if isinstance(vectors, dict) else vectors


def _cosine(query: NDArray[np.float32], vectors: Any) -> float:
    """Cosine of a unit query and a point's stored (unit) dense vector."""
    return float(np.dot(query, np.asarray(_dense_of(vectors), dtype=np.float32)))


@dataclass(frozen=True)
class CollectionLayout:
    """How a Qdrant server spreads the collections it creates over its peers (``None``: the
    server's default, ``QDRANT__STORAGE__COLLECTION__*``). Applied when a collection is created;
    an existing collection keeps its layout (change it with Qdrant's collection update API)."""

    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None


def _match(key: str, value: Any) -> qm.FieldCondition:
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


class QdrantIndex:
    """All chunks of all tenants in one Qdrant collection; every read is filtered by tenant.

    A ``index.ChunkIndex``. Not thread-safe in local mode: call it from one thread. With IDF
    over every point (``idf_per_collection=False``) local mode is cheaper (it counts per query).
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
        layout: CollectionLayout | None = None,
    ) -> None:
        self.layout = layout or CollectionLayout()
        if url:
            self.client = QdrantClient(url=url, api_key=api_key or None)
            self.engine = "qdrant-server"
        else:
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            self.client = QdrantClient(path=str(path))
            self.engine = "qdrant-local"
        self.collection = f"{collection}{SCHEMA_SUFFIX}"
        self.registry = f"{collection}_documents"
        self.dimensions = dimensions
        self.sparse = sparse or SparseEncoder()
        self.idf_per_collection = idf_per_collection
        if not self.client.collection_exists(self.registry):
            # one point per document: its active version and chunk count
            self.client.create_collection(
                self.registry,
                vectors_config={},
                shard_number=self.layout.shard_number,
                replication_factor=self.layout.replication_factor,
                write_consistency_factor=self.layout.write_consistency_factor,
            )
        if not self.client.collection_exists(self.collection):
            self.client.create_collection(
                self.collection,
                vectors_config={DENSE: qm.VectorParams(size=dimensions, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                shard_number=self.layout.shard_number,
                replication_factor=self.layout.replication_factor,
                write_consistency_factor=self.layout.write_consistency_factor,
            )
            if url:  # embedded Qdrant ignores payload indexes (and warns)
                for key in KEYWORD_FIELDS:
                    self.client.create_payload_index(self.collection, key, qm.PayloadSchemaType.KEYWORD)
                self.client.create_payload_index(self.collection, "active", qm.PayloadSchemaType.BOOL)
        if url:  # the filter fields added later: indexed on collections created before them too
            schema = self.client.get_collection(self.collection).payload_schema
            for key, kind in ((TAGS, qm.PayloadSchemaType.KEYWORD), (CREATED_AT, qm.PayloadSchemaType.INTEGER)):
                if key not in schema:
                    self.client.create_payload_index(self.collection, key, kind)
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
            payload = chunk_payload(p)
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

    def _put_entry(self, tenant_id: str, document_id: str, fields: dict[str, Any]) -> None:
        payload = {"tenant_id": tenant_id, "document_id": document_id} | fields
        self.client.upsert(
            self.registry,
            points=[qm.PointStruct(id=registry_id(tenant_id, document_id), vector={}, payload=payload)],
            wait=True,
        )

    def activate(
        self,
        tenant_id: str,
        document_id: str,
        version: int,
        chunk_count: int,
        *,
        tags: list[str] | None = None,
        tags_revision: int = 0,
    ) -> int:
        """Make ``version`` the searchable one and delete the previously active version.

        Every step addresses points by id (no filter scans, which embedded Qdrant runs in
        Python over every point). Idempotent; a version older than the active one is not
        activated but deleted, so a late redelivery never rolls a document back. Returns the
        number of points removed.
        """
        new_ids: list[qm.ExtendedPointId] = [point_id(document_id, version, i) for i in range(chunk_count)]
        active = self._entry(tenant_id, document_id)
        if active is not None and active.get("deleted") and int(active["version"]) >= version:
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=new_ids), wait=True)
            raise DocumentDeleted(f"document {document_id} was deleted; version {version} is not indexed")
        if active is not None and int(active["version"]) > version:
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=new_ids), wait=True)
            return len(new_ids)
        if new_ids:
            newer = newer_tags(active, tags_revision)
            self.client.set_payload(
                self.collection,
                payload={"active": True} | ({TAGS: newer} if newer is not None else {}),
                points=qm.PointIdsList(points=new_ids),
                wait=True,
            )
        stale: list[qm.ExtendedPointId] = []
        if active is not None and int(active["version"]) != version and not active.get("deleted"):
            stale = [point_id(document_id, int(active["version"]), i) for i in range(int(active["chunk_count"]))]
        if stale:  # (none when the entry only held tags set before the first version)
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=stale), wait=True)
        fields = {"version": version, "chunk_count": chunk_count} | tag_fields(active, tags, tags_revision)
        self._put_entry(tenant_id, document_id, fields)
        return len(stale)

    def set_tags(self, tenant_id: str, document_id: str, tags: list[str], revision: int) -> int:
        """Replace the tags of every point of a document in place (``index.ChunkIndex.set_tags``):
        one ``set_payload`` by filter, vectors untouched; older revisions are ignored."""
        entry = self._entry(tenant_id, document_id)
        if entry is not None and (entry.get("deleted") or int(entry.get("tags_revision", 0)) >= revision):
            return 0
        document = qm.Filter(must=[_match("tenant_id", tenant_id), _match("document_id", document_id)])
        points = self.client.count(self.collection, count_filter=document, exact=True).count
        if points:
            self.client.set_payload(
                self.collection, payload={TAGS: list(tags)}, points=qm.FilterSelector(filter=document), wait=True
            )
        base = entry if entry is not None else {"version": 0, "chunk_count": 0}
        self._put_entry(tenant_id, document_id, base | {"tags": list(tags), "tags_revision": revision})
        return int(points)

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

    def _scroll(self, selection: qm.Filter, fields: list[str]) -> Iterator[list[qm.Record]]:
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                self.collection, scroll_filter=selection, limit=1000, offset=offset, with_payload=fields
            )
            yield records
            if offset is None:
                return

    def inventory(self, tenant_id: str, collection_id: str | None = None) -> list[VersionInventory]:
        """Points per document version, with missing vectors and activity (``ChunkIndex.inventory``)."""
        must: list[Any] = [_match("tenant_id", tenant_id)]
        if collection_id:
            must.append(_match("collection_id", collection_id))
        counts = InventoryBuilder(self.sparse)
        for batch in self._scroll(qm.Filter(must=must), INVENTORY_FIELDS):
            for record in batch:
                counts.point(dict(record.payload or {}))
        no_dense = qm.Filter(must=must, must_not=[qm.HasVectorCondition(has_vector=DENSE)])
        for batch in self._scroll(no_dense, INVENTORY_FIELDS):
            for record in batch:
                counts.without_dense(dict(record.payload or {}))
        no_sparse = qm.Filter(must=must, must_not=[qm.HasVectorCondition(has_vector=SPARSE)])
        for batch in self._scroll(no_sparse, INVENTORY_FIELDS + TEXT_FIELDS):
            for record in batch:
                counts.without_sparse(dict(record.payload or {}))
        return counts.result(lambda document_id: self._entry(tenant_id, document_id))

    def delete_versions(self, tenant_id: str, document_id: str, versions: list[int]) -> int:
        """Remove every point of these versions of a document (``ChunkIndex.delete_versions``)."""
        if not versions:
            return 0
        selection = qm.Filter(
            must=[
                _match("tenant_id", tenant_id),
                _match("document_id", document_id),
                qm.FieldCondition(key="version", match=qm.MatchAny(any=[int(v) for v in versions])),
            ]
        )
        removed = self.client.count(self.collection, count_filter=selection, exact=True).count
        if removed:
            self.client.delete(self.collection, points_selector=qm.FilterSelector(filter=selection), wait=True)
        return int(removed)

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
        tags: list[str] | None = None,
        date_from: int | None = None,
        date_to: int | None = None,
    ) -> list[Hit]:
        """The best active chunks of one collection (``index.ChunkIndex.search``)."""
        check_mode(mode)
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
        if tags:
            must.append(qm.FieldCondition(key=TAGS, match=qm.MatchAny(any=tags)))
        if date_from is not None or date_to is not None:
            must.append(qm.FieldCondition(key=CREATED_AT, range=qm.Range(gte=date_from, lte=date_to)))
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
        return newest_only([(score, rank, dict(p.payload or {})) for score, rank, p in scored], top_k)

    def export_points(self, *, batch: int = 256) -> Iterator[list[tuple[str, list[float], dict[str, Any]]]]:
        """Every chunk point as ``(id, dense vector, payload)``, in batches (for a migration)."""
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                self.collection, limit=batch, offset=offset, with_payload=True, with_vectors=[DENSE]
            )
            yield [(str(r.id), [float(x) for x in _dense_of(r.vector)], dict(r.payload or {})) for r in records]
            if offset is None:
                return

    def export_registry(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every registry entry (active versions and tombstones) as ``(id, payload)``."""
        offset: Any = None
        while True:
            records, offset = self.client.scroll(self.registry, limit=1000, offset=offset, with_payload=True)
            yield from ((str(r.id), dict(r.payload or {})) for r in records)
            if offset is None:
                return

    def check(self) -> None:
        """Readiness of a Qdrant server: raise if it does not answer for the chunk collection."""
        self.client.get_collection(self.collection)

    def close(self) -> None:
        self.client.close()
