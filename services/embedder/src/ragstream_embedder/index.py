"""The vector index: one contract (``ChunkIndex``), two engines.

- ``edge_index.EdgeIndex``: Qdrant Edge (``qdrant-edge-py``) embedded in the embedder, the
  default of ``make run``: HNSW, payload indexes and a sparse inverted index in-process; the
  HNSW graph is built in the background, never on the request path.
- ``qdrant_index.QdrantIndex``: ``qdrant-client``, against a Qdrant server (production) or in
  its local mode (the embedded engine of earlier releases).

Both keep the same guarantees, which the tests check on both:

Versions swap atomically for readers. A new version's points are written with
``active=False`` (invisible to search), then one payload update activates them all, then the
previously active version's points are deleted. A small registry keeps each document's active
version and chunk count, so every step addresses points by id. Search reads only active points
and, in the short window where two active versions of a document exist, keeps only the newest:
a reader sees the old version or the new one, never a mix and never neither.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from ragstream_embedder.sparse import SparseEncoder

DENSE = "dense"
SPARSE = "sparse"
Mode = Literal["hybrid", "dense", "sparse"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "sparse")
# Qdrant's reciprocal rank fusion constant (server, local mode and edge): score = sum 1 / (k + rank)
RRF_K = 2
# Payload fields searches filter on (payload indexes where the engine has them)
KEYWORD_FIELDS = ("tenant_id", "collection_id", "document_id", "media_type", "file_name")
# Retrieval filters on document tags (keyword, any-of) and the version's date (unix seconds, range)
TAGS = "tags"
CREATED_AT = "created_at"

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
    #: the document's tags when the version was uploaded (a later DocTagged updates them in place)
    tags: list[str] = field(default_factory=list)
    #: when the version was created, unix seconds (0: unknown, never matches a date filter)
    created_at: int = 0


@dataclass
class VersionInventory:
    """What the index holds of one version of one document (consistency checks).

    ``missing_sparse`` counts only points whose text has keywords: a chunk of no words rightly
    has no sparse vector. ``active``: the registry names this version the document's active one.
    """

    collection_id: str
    document_id: str
    version: int
    points: int = 0
    active_points: int = 0
    missing_dense: int = 0
    missing_sparse: int = 0
    active: bool = False


class InventoryBuilder:
    """Counts points into ``VersionInventory`` entries, ordered by document and version."""

    def __init__(self, sparse: SparseEncoder) -> None:
        self.sparse = sparse
        self.groups: dict[tuple[str, int], VersionInventory] = {}

    def _group(self, payload: dict[str, Any]) -> VersionInventory:
        key = (str(payload["document_id"]), int(payload["version"]))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = VersionInventory(str(payload.get("collection_id", "")), *key)
        return group

    def point(self, payload: dict[str, Any]) -> None:
        group = self._group(payload)
        group.points += 1
        group.active_points += int(bool(payload.get("active")))

    def without_dense(self, payload: dict[str, Any]) -> None:
        self._group(payload).missing_dense += 1

    def without_sparse(self, payload: dict[str, Any]) -> None:
        if self.sparse.document(sparse_text(payload)).indices:
            self._group(payload).missing_sparse += 1

    def result(self, registry: Callable[[str], dict[str, Any] | None]) -> list[VersionInventory]:
        """The entries in order, each marked active if ``registry(document_id)`` names its version."""
        entries: dict[str, dict[str, Any] | None] = {}
        out = []
        for (document_id, version), group in sorted(self.groups.items()):
            if document_id not in entries:
                entries[document_id] = registry(document_id)
            entry = entries[document_id]
            group.active = entry is not None and not entry.get("deleted") and int(entry["version"]) == version
            out.append(group)
        return out


#: payload fields an inventory reads (the sparse check also reads the text)
INVENTORY_FIELDS = ["collection_id", "document_id", "version", "active"]
TEXT_FIELDS = ["text", "heading_path"]


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


class ChunkIndex(Protocol):
    """What the embedder needs of an index engine. Calls come from one thread at a time.

    ``idf_per_collection``: the sparse IDF counts only the active chunks of the searched
    collection (right for ranking, and no tenant's terms shape another's results); off, it
    counts every point of the index.
    """

    idf_per_collection: bool

    def upsert(self, points: list[ChunkPoint], vectors: NDArray[np.float32]) -> None:
        """Write (inactive) points; rewriting the same chunk overwrites it."""
        ...

    def is_deleted(self, tenant_id: str, document_id: str, version: int) -> bool:
        """Whether ``version`` of the document was deleted (it must not be indexed)."""
        ...

    def delete_document(self, tenant_id: str, document_id: str, up_to_version: int) -> int:
        """Remove every point of a document and leave a tombstone; returns the points removed."""
        ...

    def discard(self, tenant_id: str, document_id: str, version: int, chunk_count: int) -> None:
        """Remove the inactive points written for ``version``; the active version is never touched."""
        ...

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
        """Make ``version`` the searchable one, delete the previously active one; returns points removed.

        Idempotent; an older version than the active one is deleted instead, never activated;
        raises ``DocumentDeleted`` for a version up to a tombstone's. ``tags`` (of revision
        ``tags_revision``) are the ones the points were written with: if the registry knows
        newer ones (a ``set_tags`` while the version was embedded), the points get those.
        """
        ...

    def set_tags(self, tenant_id: str, document_id: str, tags: list[str], revision: int) -> int:
        """Replace the tags of every point of a document in place (no re-embedding), unless the
        registry already holds a newer revision; returns the points updated."""
        ...

    def count(self, tenant_id: str, document_id: str) -> dict[int, int]:
        """Points per version of one document (active or not)."""
        ...

    def inventory(self, tenant_id: str, collection_id: str | None = None) -> list[VersionInventory]:
        """Per document version of the tenant (of one collection, if given): points, active
        points, points missing their dense or their (expected) sparse vector, and whether the
        registry names the version active. Ordered by document id, then version.
        """
        ...

    def delete_versions(self, tenant_id: str, document_id: str, versions: list[int]) -> int:
        """Remove every point of these versions of a document (a repair); returns the points removed.

        The registry is not touched: removing a document for good is ``delete_document``.
        """
        ...

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
        """The best active chunks of one collection, newest version per document only.

        ``tags``: only documents with any of them; ``date_from``/``date_to``: only versions
        created in that range (unix seconds, inclusive, either may be None).

        ``vector`` is the query's dense vector, ``query`` its text (for the keyword side). The
        hybrid mode fuses the dense and the sparse ranking by RRF; a query of no keywords (stop
        words only, or no ``query``) is answered by the dense side alone. Filters narrow the
        chunks searched, never the IDF statistics (those are the collection's). Raises
        ``ValueError`` for an unknown mode.
        """
        ...

    def close(self) -> None: ...


def sparse_text(payload: dict[str, Any]) -> str:
    """The text a chunk's keywords come from: its heading path and its text."""
    return "\n".join([*(payload.get("heading_path") or []), payload.get("text", "")])


def chunk_payload(point: ChunkPoint) -> dict[str, Any]:
    """The payload of a freshly written (inactive) chunk point."""
    return {
        "tenant_id": point.tenant_id,
        "collection_id": point.collection_id,
        "document_id": point.document_id,
        "version": point.version,
        "chunk_index": point.chunk_index,
        "text": point.text,
        "file_name": point.file_name,
        "media_type": point.media_type,
        "heading_path": point.heading_path,
        "pages": point.pages,
        TAGS: list(point.tags),
        CREATED_AT: point.created_at,
        "active": False,
    }


def tag_fields(entry: dict[str, Any] | None, tags: list[str] | None, revision: int) -> dict[str, Any]:
    """The tag fields a registry entry keeps: the newer of the entry's and the given ones."""
    if entry is not None and int(entry.get("tags_revision", 0)) >= revision and "tags" in entry:
        return {"tags": list(entry["tags"]), "tags_revision": int(entry.get("tags_revision", 0))}
    return {"tags": list(tags or []), "tags_revision": revision}


def newer_tags(entry: dict[str, Any] | None, revision: int) -> list[str] | None:
    """The registry's tags if they are newer than ``revision`` (the points need them), else None."""
    if entry is not None and "tags" in entry and int(entry.get("tags_revision", 0)) > revision:
        return list(entry["tags"])
    return None


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; accepted: {', '.join(MODES)}")


def newest_only(scored: list[tuple[float, float, dict[str, Any]]], top_k: int) -> list[Hit]:
    """``(score, rank_score, payload)`` in rank order to hits, dropping any older active version.

    Two active versions of a document coexist only between an activation and the deletion of
    the previous version; a reader then gets the newer one only.
    """
    newest: dict[str, int] = {}
    for _, _, payload in scored:
        newest[payload["document_id"]] = max(newest.get(payload["document_id"], 0), int(payload["version"]))
    hits = [
        Hit(score=score, payload=payload, rank_score=rank)
        for score, rank, payload in scored
        if int(payload["version"]) == newest[payload["document_id"]]
    ]
    return hits[:top_k]
