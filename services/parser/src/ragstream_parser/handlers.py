"""The parse stage: one uploaded document version in, its chunks stored, ``DocParsed`` out."""

from __future__ import annotations

import json
import time

import structlog
from prometheus_client import Counter

from ragstream_core.bus import Delivery
from ragstream_core.events import chunks_key, next_meta
from ragstream_core.proto.ragstream.v1.events_pb2 import DocParsed, DocReleased, StageProgress
from ragstream_parser.docling_parser import ParseOptions
from ragstream_parser.ports import ParserPorts
from ragstream_parser.progress import ProgressPublisher

log = structlog.get_logger(__name__)

PAGES = Counter("ragstream_parser_pages_total", "Pages parsed.")
CHUNKS = Counter("ragstream_parser_chunks_total", "Chunks produced.")
BYTES = Counter("ragstream_parser_bytes_total", "Bytes of documents parsed.")
DOCUMENTS = Counter("ragstream_parser_documents_total", "Documents parsed.")


async def parse_document(event: DocReleased, delivery: Delivery, ports: ParserPorts) -> DocParsed:
    """Store the chunks of one released upload and describe them.

    Idempotent: the chunk key derives from (tenant, document, version), so a redelivery
    overwrites an identical object and yields an identical ``DocParsed``.
    """
    meta, upload = event.meta, event.upload
    await ports.events.publish(
        StageProgress(meta=next_meta(meta), stage="parsing", done=0, total=0, unit="pages", attempt=delivery.attempt)
    )
    started = time.perf_counter()
    data = await ports.objects.get_bytes(upload.object_key)
    options = ParseOptions(
        chunking=upload.chunking or "structure",
        embed_columns=tuple(upload.columns.embed_columns),
        context_columns=tuple(upload.columns.context_columns),
    )
    async with ProgressPublisher(ports.events.publish, meta, stage="parsing", attempt=delivery.attempt) as progress:
        parsed = await ports.parser.parse(
            data, file_name=meta.file_name, media_type=upload.media_type, options=options, progress=progress.report
        )
    key = chunks_key(meta.tenant_id, meta.document_id, meta.version)
    payload = {
        "document_id": meta.document_id,
        "version": meta.version,
        "file_name": meta.file_name,
        "media_type": upload.media_type,
        "page_count": parsed.page_count,
        "warnings": parsed.warnings,
        "chunks": [c.to_dict() for c in parsed.chunks],
    }
    await ports.objects.put_bytes(key, json.dumps(payload, ensure_ascii=False).encode())
    elapsed = time.perf_counter() - started
    PAGES.inc(parsed.page_count)
    CHUNKS.inc(len(parsed.chunks))
    BYTES.inc(len(data))
    DOCUMENTS.inc()
    log.info("document.parsed", pages=parsed.page_count, chunks=len(parsed.chunks), duration_ms=round(elapsed * 1000))
    return DocParsed(
        meta=next_meta(meta),
        chunks_key=key,
        chunk_count=len(parsed.chunks),
        page_count=parsed.page_count,
        media_type=upload.media_type,
        token_count=parsed.token_count,
        parse_seconds=elapsed,
        warnings=parsed.warnings,
    )
