"""The embed stage and the search answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from ragstream_core.bus import Delivery
from ragstream_core.control import JobStopped
from ragstream_core.events import next_meta
from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocDeleted,
    DocParsed,
    DocTagged,
    IndexTagged,
    IndexUpdated,
    JobFailed,
    StageProgress,
)
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit, SearchMode, SearchRequest, SearchResponse
from ragstream_embedder.index import ChunkPoint, DocumentDeleted, Mode
from ragstream_embedder.model import MAX_TOKENS
from ragstream_embedder.passages import Passage, merge_adjacent
from ragstream_embedder.ports import EmbedderPorts

log = structlog.get_logger(__name__)

CHUNKS = Counter("ragstream_embedder_chunks_total", "Chunks embedded and indexed.")
TOKENS = Counter("ragstream_embedder_tokens_total", "Tokens embedded.")
TRUNCATED = Counter("ragstream_embedder_truncated_chunks_total", "Chunks longer than the model reads.")
SEARCH_SECONDS = Histogram("ragstream_embedder_search_duration_seconds", "Time to answer one search request.")
DOCUMENTS = Counter("ragstream_embedder_documents_total", "Document versions embedded and indexed.")
BATCH_SECONDS = Histogram(
    "ragstream_embedder_batch_duration_seconds",
    "Time to embed one slice of a document's chunks (waiting for the model's pool included).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
INDEX_SECONDS = Histogram(
    "ragstream_embedder_index_duration_seconds",
    "Time of one index call, by operation.",
    ["operation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
tracer = trace.get_tracer("ragstream.embedder")


@contextlib.contextmanager
def index_call(operation: str, **attributes: Any) -> Iterator[None]:
    """A span ``index <operation>`` (a Qdrant call) and its duration in ``INDEX_SECONDS``."""
    started = time.perf_counter()
    with tracer.start_as_current_span(
        f"index {operation}", kind=SpanKind.CLIENT, attributes={"db.system.name": "qdrant", **attributes}
    ):
        yield
    INDEX_SECONDS.labels(operation).observe(time.perf_counter() - started)


def cancelled(event: DocParsed) -> JobFailed:
    """The end of a job whose document was deleted while it ran."""
    return JobFailed(
        meta=next_meta(event.meta),
        stage="embedding",
        reason="cancelled: the document was deleted",
        attempts=1,
        error_type="Cancelled",
        retryable=False,
    )


async def embed_document(event: DocParsed, delivery: Delivery, ports: EmbedderPorts) -> IndexUpdated | JobFailed:
    """Embed a parsed document version and make it the searchable version of its document.

    Idempotent: point ids derive from (document, version, chunk); a redelivery rewrites the
    same points and activates the same version. Until activation, search keeps answering from
    the previous version.
    """
    meta = event.meta
    started = time.perf_counter()
    with index_call("is_deleted"):
        deleted = await ports.index.is_deleted(meta.tenant_id, meta.document_id, meta.version)
    if deleted:
        return cancelled(event)
    parsed = json.loads(await ports.objects.get_bytes(event.chunks_key))
    chunks = parsed["chunks"]
    total = len(chunks)
    await ports.events.publish(
        StageProgress(
            meta=next_meta(meta), stage="embedding", done=0, total=total, unit="chunks", attempt=delivery.attempt
        )
    )
    texts = [c["embed_text"] for c in chunks]
    created_at = meta.version_created_at.seconds if meta.HasField("version_created_at") else 0
    tokens = await ports.model.count_tokens(texts)
    truncated = sum(1 for n in tokens if n > MAX_TOKENS)
    points = [
        ChunkPoint(
            tenant_id=meta.tenant_id,
            collection_id=meta.collection_id,
            document_id=meta.document_id,
            version=meta.version,
            chunk_index=int(c["index"]),
            text=c["text"],
            file_name=meta.file_name,
            media_type=event.media_type,
            heading_path=list(c["heading_path"]),
            pages=list(c["pages"]),
            tags=list(meta.tags),
            created_at=created_at,
        )
        for c in chunks
    ]
    # an interactive upload (the high lane) goes ahead of bulk work in the model's pool
    urgent = meta.priority == "high"
    # All slices are queued at once, so the model pools them with other documents' chunks into
    # length-sorted batches; each finished slice is stored and reported, so a long document
    # shows steady progress.
    done = 0

    async def embed_slice(start: int, end: int) -> None:
        nonlocal done
        started_slice = time.perf_counter()
        with tracer.start_as_current_span("embed batch", attributes={"ragstream.chunks": end - start}):
            vectors = await ports.model.embed(texts[start:end], urgent=urgent)
        BATCH_SECONDS.observe(time.perf_counter() - started_slice)
        with index_call("upsert", **{"ragstream.points": end - start}):
            await ports.index.upsert(points[start:end], vectors)
        done += end - start
        if done < total:
            await ports.events.publish(
                StageProgress(
                    meta=next_meta(meta),
                    stage="embedding",
                    done=done,
                    total=total,
                    unit="chunks",
                    attempt=delivery.attempt,
                )
            )

    step = ports.batch_size * 2
    await asyncio.gather(*(embed_slice(i, min(i + step, total)) for i in range(0, total, step)))
    try:
        await delivery.checkpoint()  # a job cancelled or paused meanwhile never becomes visible
    except JobStopped:
        with index_call("discard"):
            await ports.index.discard(meta.tenant_id, meta.document_id, meta.version, total)
        raise
    try:
        with index_call("activate"):
            removed = await ports.index.activate(
                meta.tenant_id,
                meta.document_id,
                meta.version,
                total,
                tags=list(meta.tags),
                tags_revision=meta.tags_revision,
            )
    except DocumentDeleted:
        return cancelled(event)
    elapsed = time.perf_counter() - started
    CHUNKS.inc(total)
    DOCUMENTS.inc()
    TOKENS.inc(sum(min(n, MAX_TOKENS) for n in tokens))
    TRUNCATED.inc(truncated)
    log.info(
        "document.indexed", chunks=total, truncated=truncated, removed_points=removed, duration_ms=round(elapsed * 1000)
    )
    return IndexUpdated(
        meta=next_meta(meta),
        chunk_count=total,
        truncated_chunks=truncated,
        embedding_model=ports.model.name,
        dimensions=ports.model.dimensions,
        embed_seconds=elapsed,
        removed_points=removed,
    )


async def remove_document(event: DocDeleted, delivery: Delivery, ports: EmbedderPorts) -> IndexUpdated:
    """Take every version of a deleted document out of the index, for good.

    Idempotent: a redelivery finds nothing more to remove and leaves the same tombstone.
    """
    meta = event.meta
    started = time.perf_counter()
    with index_call("delete_document"):
        removed = await ports.index.delete_document(meta.tenant_id, meta.document_id, meta.version)
    log.info("document.removed", removed_points=removed)
    return IndexUpdated(
        meta=next_meta(meta),
        chunk_count=0,
        embedding_model=ports.model.name,
        dimensions=ports.model.dimensions,
        embed_seconds=time.perf_counter() - started,
        removed_points=removed,
        deleted=True,
    )


async def retag_document(event: DocTagged, delivery: Delivery, ports: EmbedderPorts) -> IndexTagged:
    """Give every point of a document its new tags in place (a payload update, no re-embedding).

    Idempotent and order-proof: the index keeps the newest revision it applied and ignores older ones.
    """
    meta = event.meta
    updated = await ports.index.set_tags(meta.tenant_id, meta.document_id, list(meta.tags), meta.tags_revision)
    log.info("document.retagged", updated_points=updated, tags=list(meta.tags), revision=meta.tags_revision)
    return IndexTagged(meta=next_meta(meta), updated_points=updated)


_MODES: dict[int, Mode] = {
    SearchMode.SEARCH_MODE_UNSPECIFIED: "hybrid",
    SearchMode.SEARCH_MODE_HYBRID: "hybrid",
    SearchMode.SEARCH_MODE_DENSE: "dense",
    SearchMode.SEARCH_MODE_SPARSE: "sparse",
}
_MODE_NAMES: dict[Mode, SearchMode] = {
    "hybrid": SearchMode.SEARCH_MODE_HYBRID,
    "dense": SearchMode.SEARCH_MODE_DENSE,
    "sparse": SearchMode.SEARCH_MODE_SPARSE,
}


def _passage_hit(passage: Passage) -> SearchHit:
    first = passage.first.payload
    return SearchHit(
        document_id=first["document_id"],
        version=int(first["version"]),
        chunk_index=int(first["chunk_index"]),
        chunk_indexes=passage.chunk_indexes,
        text=passage.text,
        file_name=first["file_name"],
        heading_path=list(first.get("heading_path") or []),
        page=int((first.get("pages") or [0])[0]),
        score=passage.score,
        rank_score=passage.rank_score,
        media_type=first.get("media_type", ""),
    )


async def search(request: SearchRequest, ports: EmbedderPorts) -> SearchResponse:
    """The best passages of a collection for a query. Failures are answered, never left unanswered.

    ``top_k`` chunks are found (hybrid unless the request names a mode); adjacent chunks of
    one document version among them are merged into one passage unless ``keep_chunks``.
    """
    started = time.perf_counter()
    mode = _MODES.get(request.mode)
    if mode is None:
        accepted = ", ".join(SearchMode.Name(m) for m in _MODES)
        return SearchResponse(error=f"unknown search mode {request.mode}; accepted: {accepted}")
    try:
        with tracer.start_as_current_span("embed query"):
            vector = (await ports.model.embed([request.query], urgent=True))[0]
        with index_call("search", **{"ragstream.search_mode": mode}):
            hits = await ports.index.search(
                vector,
                tenant_id=request.tenant_id,
                collection_id=request.collection_id,
                top_k=request.top_k or 5,
                document_ids=list(request.document_ids) or None,
                query=request.query,
                mode=mode,
                media_types=list(request.media_types) or None,
                file_names=list(request.file_names) or None,
                tags=[t.strip().lower() for t in request.tags] or None,  # stored lower-cased
                # whole seconds, as stored: the bounds' seconds compare with the versions' (both included)
                date_from=request.date_from.seconds if request.HasField("date_from") else None,
                date_to=request.date_to.seconds if request.HasField("date_to") else None,
            )
    except Exception as exc:  # the requester must get a reason, not a timeout
        log.error("search.failed", error=str(exc), error_type=type(exc).__name__)
        return SearchResponse(error=f"search failed: {exc}")
    finally:
        SEARCH_SECONDS.observe(time.perf_counter() - started)
    passages = [Passage([h], rank) for rank, h in enumerate(hits)] if request.keep_chunks else merge_adjacent(hits)
    return SearchResponse(
        embedding_model=ports.model.name,
        mode=_MODE_NAMES[mode],
        hits=[_passage_hit(p) for p in passages],
    )
