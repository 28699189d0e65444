"""The index on Qdrant Edge (``qdrant-edge-py``): the embedded default, in-process, on disk.

Under ``path``: ``chunks/``, one edge shard holding every tenant's chunk points (named ``dense``
vector, cosine; ``sparse`` keyword vector; the payload), and ``registry/``, a small shard with
each document's active version (and the tombstones of deleted ones).

- Filtering: one shard for all tenants, like the Qdrant server path, with payload indexes on
  every filtered field (``tenant_id`` as the tenant key, collection, document, media type, file
  name, ``active``), so the engine's planner uses filtered HNSW for a large collection and an
  index lookup plus exact scoring for a small one; it never scans payloads. ``active`` is
  stored as 1/0 here (and given back as a bool): the 0.9.0 binding turns a bool match value
  into an integer, so a bool field could never match.
- IDF: counted by us (``term_stats.DocumentFrequencies``, per collection over its active
  chunks, kept up to date on every activation and deletion, recounted on open) and put into
  the query's term weights, which scores exactly as Qdrant's IDF modifier; the engine's own
  per-query IDF over a filtered corpus costs tens of milliseconds at 100,000 chunks.
- Fusion: Qdrant's query API in-process, a dense and a sparse prefetch fused by RRF (k=2, as
  the server and local mode).
- HNSW in the background: ``edge_build.BackgroundBuilder`` (a child process; the copy and the
  swap are the only moments that hold this index's lock for long).
- Durability: the chunk shard runs without a write-ahead log (the engine never truncates its
  log: it grew by ~2.7 KB per chunk written, forever) and every write call flushes before it
  returns, so what a call wrote survives a kill -9 (and a power cut). The registry keeps its
  small log.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import qdrant_edge as qe
import structlog
from numpy.typing import NDArray

from ragstream_core.events import point_id
from ragstream_embedder.edge_build import BackgroundBuilder, recover
from ragstream_embedder.edge_registry import CONFIG as REGISTRY_CONFIG
from ragstream_embedder.edge_registry import EdgeRegistry
from ragstream_embedder.index import (
    CREATED_AT,
    DENSE,
    INVENTORY_FIELDS,
    KEYWORD_FIELDS,
    RRF_K,
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
    sparse_text,
    tag_fields,
)
from ragstream_embedder.sparse import SparseEncoder
from ragstream_embedder.term_stats import DocumentFrequencies, Scope

log = structlog.get_logger(__name__)

CHUNKS_DIR = "chunks"
REGISTRY_DIR = "registry"
_SCAN = 1000
_NOT_COPIED = ["temp_segments"]  # a build's scratch space
SEGMENTS = 8

P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with args[0]._lock:  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    return run


def _durable(method: Callable[P, R]) -> Callable[P, R]:
    """Locked, and every change it made to the chunk shard is on disk when it returns."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        index = args[0]
        with index._lock:  # type: ignore[attr-defined]
            try:
                return method(*args, **kwargs)
            finally:
                if index._dirty:  # type: ignore[attr-defined]
                    index.chunks.flush()  # type: ignore[attr-defined]
                    index._dirty = False  # type: ignore[attr-defined]

    return run


def _match(key: str, value: str | int) -> qe.FieldCondition:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def _open_shard(path: Path, config: qe.EdgeConfig) -> qe.EdgeShard:
    """Load the shard at ``path``, or create it there (an empty or missing directory)."""
    if path.is_dir() and any(path.iterdir()):
        return qe.EdgeShard.load(str(path), config)
    path.mkdir(parents=True, exist_ok=True)
    return qe.EdgeShard.create(str(path), config)


def _stored(payload: dict[str, Any]) -> dict[str, Any]:
    return payload | {"active": int(bool(payload.get("active")))}


def _public(payload: dict[str, Any] | None) -> dict[str, Any]:
    public = dict(payload or {})
    public["active"] = bool(public.get("active"))
    return public


def _terms(vectors: Any) -> list[int]:
    """The term ids of a record's sparse vector (none: a chunk of no words)."""
    keywords = vectors.get(SPARSE) if isinstance(vectors, dict) else None
    return list(keywords.indices) if isinstance(keywords, qe.SparseVector) else []


def _cosine(query: NDArray[np.float32], vectors: Any) -> float:
    """Cosine of a unit query and a point's stored (unit) dense vector."""
    return float(np.dot(query, np.asarray(vectors[DENSE], dtype=np.float32)))


class EdgeIndex:
    """All chunks of all tenants in one edge shard; every read is filtered by tenant.

    A ``index.ChunkIndex``. Thread-safe (one lock; the background builder takes it to copy and
    swap). ``optimize_idle_s``: how long writes must pause before a build; ``build_min_points``:
    points written since the last build that make a new one worth it; ``build_tail_points``:
    points written since the last build that start one even while writes go on (None: only
    once they pause); ``indexing_threads``:
    threads of the HNSW build; ``indexing_threshold_kb``: segment size from which a segment
    gets an HNSW graph (the engine's default when None).
    """

    def __init__(
        self,
        *,
        path: Path,
        dimensions: int,
        sparse: SparseEncoder | None = None,
        idf_per_collection: bool = True,
        optimize_idle_s: float = 5.0,
        build_min_points: int = 10_000,
        build_tail_points: int | None = 20_000,
        indexing_threads: int = 1,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        self.path = path
        self.engine = "edge"
        self.dimensions = dimensions
        self.sparse = sparse or SparseEncoder()
        self.idf_per_collection = idf_per_collection
        self._lock = threading.RLock()
        self._journal: list[qe.UpdateOperation] | None = None
        self._dirty = False
        self._config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams()},
            hnsw_config=qe.HnswIndexConfig(
                m=16, ef_construct=100, full_scan_threshold=10_000, max_indexing_threads=indexing_threads
            ),
            # segments: each build indexes the new one and keeps the graphs of the others, merging only
            # past SEGMENTS (the default, one per core, would merge and index everything again)
            optimizers=qe.EdgeOptimizersConfig(
                default_segment_number=SEGMENTS, indexing_threshold=indexing_threshold_kb
            ),
            wal_enabled=False,
        )
        recover(path / CHUNKS_DIR)
        self.chunks = _open_shard(path / CHUNKS_DIR, self._config)
        self.registry = EdgeRegistry(_open_shard(path / REGISTRY_DIR, REGISTRY_CONFIG))
        indexed = set(self.chunks.info().payload_schema)
        for key in (*KEYWORD_FIELDS, "active", TAGS, CREATED_AT):
            if key not in indexed:
                schema: Any = qe.PayloadSchemaType.Keyword
                if key == "tenant_id":
                    schema = qe.KeywordIndexParams(is_tenant=True)
                elif key in ("active", CREATED_AT):
                    schema = qe.PayloadSchemaType.Integer
                self.chunks.update(qe.UpdateOperation.create_field_index(key, schema))
        self.terms = DocumentFrequencies()
        for scope, terms in self._active_terms(qe.Filter(must=[_match("active", 1)])):
            self.terms.add(scope, terms)
        self.builder = BackgroundBuilder(
            self,
            path / CHUNKS_DIR,
            idle_s=optimize_idle_s,
            min_points=build_min_points,
            tail_points=build_tail_points,
        )
        self.builder.notify(self.chunks.count(qe.CountRequest(exact=True)))  # an interrupted build resumes

    # -- writes: every change of the chunk shard goes through _apply (journal, builder, IDF counts)

    def _apply(self, operation: qe.UpdateOperation, points: int) -> None:
        self.chunks.update(operation)
        self._dirty = True
        if self._journal is not None:
            self._journal.append(operation)
        self.builder.notify(points)

    def _active_terms(self, selection: qe.Filter | list[str]) -> Iterable[tuple[Scope, list[int]]]:
        """(collection, terms) of each active point among ``selection`` (ids, or a filter to scroll)."""
        fields = ["tenant_id", "collection_id", "active"]
        if isinstance(selection, list):
            records = self.chunks.retrieve(list(selection), with_payload=fields, with_vector=[SPARSE])
            batches: Iterable[list[Any]] = [records]
        else:
            batches = self._scroll(selection, fields, with_sparse=True)
        for batch in batches:
            for record in batch:
                payload = record.payload or {}
                if payload.get("active") == 1:
                    yield (payload["tenant_id"], payload["collection_id"]), _terms(record.vector)

    def _scroll(self, selection: qe.Filter, fields: list[str], *, with_sparse: bool = False) -> Iterable[list[Any]]:
        offset: Any = None
        while True:
            records, offset = self.chunks.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=_SCAN,
                    filter=selection,
                    with_payload=fields,
                    with_vector=[SPARSE] if with_sparse else False,
                )
            )
            yield records
            if offset is None:
                return

    def _point(self, id_: str, dense: Iterable[float], payload: dict[str, Any]) -> tuple[qe.Point, list[int]]:
        """The point to write, and its terms."""
        vectors: dict[str, Any] = {DENSE: list(dense)}
        keywords = self.sparse.document(sparse_text(payload))
        if keywords.indices:  # a chunk of no words has no sparse vector (nothing to match)
            vectors[SPARSE] = qe.SparseVector(keywords.indices, keywords.values)
        return qe.Point(id_, vectors, _stored(payload)), keywords.indices

    def _put(self, points: list[tuple[str, list[float], dict[str, Any]]]) -> None:
        if not points:
            return
        for scope, terms in self._active_terms([i for i, _, _ in points]):
            self.terms.add(scope, terms, sign=-1)
        built = [self._point(i, dense, payload) for i, dense, payload in points]
        self._apply(qe.UpdateOperation.upsert_points([point for point, _ in built]), len(built))
        for (_, _, payload), (_, terms) in zip(points, built, strict=True):
            if payload.get("active"):
                self.terms.add((payload["tenant_id"], payload["collection_id"]), terms)

    def _delete(self, ids: list[str]) -> None:
        if not ids:
            return
        for scope, terms in self._active_terms(ids):
            self.terms.add(scope, terms, sign=-1)
        self._apply(qe.UpdateOperation.delete_points(list(ids)), len(ids))

    def _activate_points(self, ids: list[str], tags: list[str] | None) -> None:
        for record in self.chunks.retrieve(list(ids), with_payload=True, with_vector=[SPARSE]):
            payload = record.payload or {}
            if payload.get("active") != 1:
                self.terms.add((payload["tenant_id"], payload["collection_id"]), _terms(record.vector))
        fields: dict[str, Any] = {"active": 1} | ({TAGS: tags} if tags is not None else {})
        self._apply(qe.UpdateOperation.set_payload(list(ids), fields), 0)

    @_durable
    def upsert(self, points: list[ChunkPoint], vectors: NDArray[np.float32]) -> None:
        """Write (inactive) points; rewriting the same chunk overwrites it."""
        self._put(
            [
                (point_id(p.document_id, p.version, p.chunk_index), vector.tolist(), chunk_payload(p))
                for p, vector in zip(points, vectors, strict=True)
            ]
        )

    @_durable
    def import_points(self, points: list[tuple[str, list[float], dict[str, Any]]]) -> None:
        """Write points as they are (id, dense vector, payload with its ``active``): a migration's copy."""
        self._put(points)

    @_locked
    def import_registry(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        """Write registry entries as they are: a migration's copy."""
        self.registry.import_entries(entries)

    @_locked
    def is_deleted(self, tenant_id: str, document_id: str, version: int) -> bool:
        """Whether ``version`` of the document was deleted (it must not be indexed)."""
        entry = self.registry.get(tenant_id, document_id)
        return entry is not None and bool(entry.get("deleted")) and version <= int(entry["version"])

    @_durable
    def delete_document(self, tenant_id: str, document_id: str, up_to_version: int) -> int:
        """Remove every point of a document and leave a tombstone; returns the points removed."""
        document = qe.Filter(must=[_match("tenant_id", tenant_id), _match("document_id", document_id)])
        ids = [str(r.id) for batch in self._scroll(document, []) for r in batch]
        self._delete(ids)
        entry = self.registry.get(tenant_id, document_id)
        version = max(up_to_version, int(entry["version"]) if entry else 0)
        self.registry.put(tenant_id, document_id, {"version": version, "chunk_count": 0, "deleted": True})
        return len(ids)

    @_durable
    def discard(self, tenant_id: str, document_id: str, version: int, chunk_count: int) -> None:
        """Remove the inactive points written for ``version``; the active version is never touched."""
        entry = self.registry.get(tenant_id, document_id)
        if entry is not None and not entry.get("deleted") and int(entry["version"]) == version:
            return
        self._delete([point_id(document_id, version, i) for i in range(chunk_count)])

    @_durable
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

        Every step addresses points by id. Idempotent; a version older than the active one is
        not activated but deleted, so a late redelivery never rolls a document back. Returns the
        number of points removed; raises ``DocumentDeleted`` for a version up to a tombstone's.
        """
        new_ids = [point_id(document_id, version, i) for i in range(chunk_count)]
        active = self.registry.get(tenant_id, document_id)
        if active is not None and active.get("deleted") and int(active["version"]) >= version:
            self._delete(new_ids)
            raise DocumentDeleted(f"document {document_id} was deleted; version {version} is not indexed")
        if active is not None and int(active["version"]) > version:
            self._delete(new_ids)
            return len(new_ids)
        if new_ids:
            self._activate_points(new_ids, newer_tags(active, tags_revision))
        stale: list[str] = []
        if active is not None and int(active["version"]) != version and not active.get("deleted"):
            stale = [point_id(document_id, int(active["version"]), i) for i in range(int(active["chunk_count"]))]
            self._delete(stale)
        entry = {"version": version, "chunk_count": chunk_count} | tag_fields(active, tags, tags_revision)
        self.registry.put(tenant_id, document_id, entry)
        return len(stale)

    @_durable
    def set_tags(self, tenant_id: str, document_id: str, tags: list[str], revision: int) -> int:
        """Replace the tags of every point of a document in place (``index.ChunkIndex.set_tags``).

        One payload update by filter (no re-embedding, vectors untouched); the registry keeps
        the revision, so an older change arriving late and a version still being embedded with
        older tags both end with the newest tags.
        """
        entry = self.registry.get(tenant_id, document_id)
        if entry is not None and (entry.get("deleted") or int(entry.get("tags_revision", 0)) >= revision):
            return 0
        document = qe.Filter(must=[_match("tenant_id", tenant_id), _match("document_id", document_id)])
        points = self.chunks.count(qe.CountRequest(filter=document, exact=True))
        if points:
            self._apply(qe.UpdateOperation.set_payload_by_filter(document, {TAGS: list(tags)}), 0)
        base = entry if entry is not None else {"version": 0, "chunk_count": 0}
        self.registry.put(tenant_id, document_id, base | {"tags": list(tags), "tags_revision": revision})
        return int(points)

    # -- reads

    @_locked
    def count(self, tenant_id: str, document_id: str) -> dict[int, int]:
        """Points per version of one document (active or not)."""
        counts: dict[int, int] = {}
        document = qe.Filter(must=[_match("tenant_id", tenant_id), _match("document_id", document_id)])
        for batch in self._scroll(document, ["version"]):
            for record in batch:
                version = int((record.payload or {})["version"])
                counts[version] = counts.get(version, 0) + 1
        return counts

    @_locked
    def inventory(self, tenant_id: str, collection_id: str | None = None) -> list[VersionInventory]:
        """Points per document version, with missing vectors and activity (``ChunkIndex.inventory``)."""
        must: list[Any] = [_match("tenant_id", tenant_id)]
        if collection_id:
            must.append(_match("collection_id", collection_id))
        counts = InventoryBuilder(self.sparse)
        for batch in self._scroll(qe.Filter(must=must), INVENTORY_FIELDS):
            for record in batch:
                counts.point(_public(record.payload))
        no_dense = qe.Filter(must=must, must_not=[qe.HasVectorCondition(DENSE)])
        for batch in self._scroll(no_dense, INVENTORY_FIELDS):
            for record in batch:
                counts.without_dense(_public(record.payload))
        no_sparse = qe.Filter(must=must, must_not=[qe.HasVectorCondition(SPARSE)])
        for batch in self._scroll(no_sparse, INVENTORY_FIELDS + TEXT_FIELDS):
            for record in batch:
                counts.without_sparse(_public(record.payload))
        return counts.result(lambda document_id: self.registry.get(tenant_id, document_id))

    @_durable
    def delete_versions(self, tenant_id: str, document_id: str, versions: list[int]) -> int:
        """Remove every point of these versions of a document (``ChunkIndex.delete_versions``)."""
        if not versions:
            return 0
        selection = qe.Filter(
            must=[
                _match("tenant_id", tenant_id),
                _match("document_id", document_id),
                qe.FieldCondition(key="version", match=qe.MatchAny([int(v) for v in versions])),
            ]
        )
        ids = [str(r.id) for batch in self._scroll(selection, []) for r in batch]
        self._delete(ids)
        return len(ids)

    @_locked
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
        must: list[Any] = [_match("tenant_id", tenant_id), _match("collection_id", collection_id), _match("active", 1)]
        for key, values in (
            ("document_id", document_ids),
            ("media_type", media_types),
            ("file_name", file_names),
            (TAGS, tags),
        ):
            if values:
                must.append(qe.FieldCondition(key=key, match=qe.MatchAny(list(values))))
        if date_from is not None or date_to is not None:
            # an integer field with an integer index: the range compares numbers (checked by the tests)
            must.append(
                qe.FieldCondition(
                    key=CREATED_AT,
                    range=qe.RangeFloat(
                        gte=float(date_from) if date_from is not None else None,
                        lte=float(date_to) if date_to is not None else None,
                    ),
                )
            )
        chunks = qe.Filter(must=must)
        keywords = self.sparse.query(query)
        if mode == "hybrid" and not keywords.indices:
            mode = "dense"
        if mode == "sparse" and not keywords.indices:
            return []
        weights = self.terms.weights((tenant_id, collection_id) if self.idf_per_collection else None, keywords.indices)
        dense = qe.Query.Nearest(vector.tolist(), using=DENSE)
        sparse = qe.Query.Nearest(qe.SparseVector(keywords.indices, weights), using=SPARSE)
        limit = top_k * 2  # room for a stale version dropped by newest_only
        if mode != "hybrid":
            found = self.chunks.query(
                qe.QueryRequest(
                    limit=limit, query=dense if mode == "dense" else sparse, filter=chunks, with_payload=True
                )
            )
            return newest_only([(p.score, p.score, _public(p.payload)) for p in found], top_k)
        candidates = max(limit * 3, 30)
        found = self.chunks.query(
            qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(limit=candidates, query=dense, filter=chunks),
                    qe.Prefetch(limit=candidates, query=sparse, filter=chunks),
                ],
                query=qe.Fusion.Rrf(k=RRF_K),  # type: ignore[arg-type]
                filter=chunks,
                with_payload=True,
                with_vector=[DENSE],
            )
        )
        unit = vector.astype(np.float32)
        return newest_only([(_cosine(unit, p.vector), p.score, _public(p.payload)) for p in found], top_k)

    # -- the background build (edge_build.Buildable)

    @_locked
    def copy_for_build(self, target: Path) -> None:
        """Copy the chunk shard as it is now and journal every update from here on."""
        live = self.path / CHUNKS_DIR
        self.chunks.flush()
        shutil.copytree(live, target, ignore=lambda folder, _: _NOT_COPIED if Path(folder) == live else [])
        self._journal = []

    @_locked
    def swap_in(self, built: Path) -> None:
        """Serve from the built copy, with the updates made since it was taken replayed onto it."""
        live = self.path / CHUNKS_DIR
        old = live.with_name(live.name + ".old")
        journal, self._journal = self._journal or [], None
        self.chunks.close()
        live.rename(old)
        fresh: qe.EdgeShard | None = None
        try:
            built.rename(live)
            fresh = qe.EdgeShard.load(str(live), self._config)
            for operation in journal:
                fresh.update(operation)
            fresh.flush()
        except Exception:
            if fresh is not None:
                fresh.close()
            self.chunks = _reopen_old(live, old, self._config)
            raise
        self.chunks = fresh
        shutil.rmtree(old)

    @_locked
    def snapshot(self, archive: Path) -> int:
        """Write both shards, flushed, as a tar archive (a backup); returns the chunk points in it.

        Under the index lock: no write lands halfway, and a background build in progress goes on
        (its scratch space is left out). GNU tar with ``--sparse``: the shards' files are mostly
        holes (275 MB apparent, under 1 MB used for a few documents), which it keeps as holes.
        Unpacked, the archive loads as an ``EdgeIndex`` path.
        """
        self.chunks.flush()
        self.registry.flush()
        try:
            subprocess.run(
                ["tar", "--sparse", "--create", f"--file={archive}", f"--directory={self.path}"]
                + [f"--exclude={CHUNKS_DIR}/{name}" for name in _NOT_COPIED]
                + [CHUNKS_DIR, REGISTRY_DIR],
                check=True,
                capture_output=True,
            )
        except FileNotFoundError:
            raise RuntimeError("GNU tar is not installed (Debian package tar)") from None
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"tar failed: {exc.stderr.decode(errors='replace').strip()}") from None
        return int(self.chunks.count(qe.CountRequest(exact=True)))

    @_locked
    def abandon_build(self) -> None:
        self._journal = None

    @property
    def building(self) -> bool:
        """Whether a build's copy was taken and updates are being journaled for its swap."""
        return self._journal is not None

    def wait_built(self, timeout_s: float = 3600.0) -> bool:
        """Build now and wait for it (benchmarks, tests); whether it finished in time."""
        self.builder.request()
        return self.builder.wait_idle(timeout_s)

    def close(self) -> None:
        """Stop any build (a running one is discarded), flush and close both shards."""
        self.builder.stop()
        with self._lock:
            self.registry.close()
            self.chunks.close()


def _reopen_old(live: Path, old: Path, config: qe.EdgeConfig) -> qe.EdgeShard:
    """A swap failed: put the shard it replaced back and serve from it again."""
    if live.exists():
        shutil.rmtree(live)
    old.rename(live)
    return qe.EdgeShard.load(str(live), config)
