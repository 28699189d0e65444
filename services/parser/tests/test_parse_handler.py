"""The parse stage over a real bus and object store: chunks stored, DocParsed emitted."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragstream_core.bus import Bus, Delivery
from ragstream_core.events import EVENTS_STREAM, SUBJECT_OF
from ragstream_core.proto.ragstream.v1.events_pb2 import DocParsed, DocUploaded, EventMeta, StageProgress
from ragstream_core.storage import LocalObjectStore
from ragstream_parser.docling_parser import DoclingParser, ThreadedParser
from ragstream_parser.handlers import parse_document


@dataclass
class Ports:
    objects: LocalObjectStore
    parser: ThreadedParser
    events: Bus


@pytest.fixture(scope="module")
def threaded_parser() -> ThreadedParser:
    return ThreadedParser(DoclingParser())


async def test_parsing_stores_chunks_and_describes_them(
    tmp_path: Path, corpus: Path, threaded_parser: ThreadedParser, bus_factory: Callable[..., Awaitable[Bus]]
) -> None:
    objects = LocalObjectStore(tmp_path)
    await objects.put_bytes("uploads/t/abc", (corpus / "pdf/multi_page.pdf").read_bytes())
    ports = Ports(objects, threaded_parser, await bus_factory(service="parser-test"))
    event = DocUploaded(
        meta=EventMeta(job_id="j1", tenant_id="t", collection_id="c", document_id="d1", version=2, file_name="m.pdf"),
        object_key="uploads/t/abc",
        media_type="application/pdf",
    )

    parsed = await parse_document(event, Delivery(attempt=1, stream_sequence=1, subject="s"), ports)

    assert isinstance(parsed, DocParsed)
    assert parsed.chunks_key == "chunks/t/d1/v2.json"
    assert parsed.page_count == 5
    stored = json.loads(await objects.get_bytes(parsed.chunks_key))
    assert len(stored["chunks"]) == parsed.chunk_count
    assert parsed.token_count == sum(c["tokens"] for c in stored["chunks"])
    started = await ports.events.js.get_last_msg(EVENTS_STREAM, SUBJECT_OF[StageProgress])
    assert StageProgress.FromString(started.data).stage == "parsing"
    assert StageProgress.FromString(started.data).meta.job_id == "j1"


async def test_parsing_twice_yields_identical_results(
    tmp_path: Path, corpus: Path, threaded_parser: ThreadedParser, bus_factory: Callable[..., Awaitable[Bus]]
) -> None:
    objects = LocalObjectStore(tmp_path)
    await objects.put_bytes("uploads/t/md", (corpus / "md/wiki.md").read_bytes())
    ports = Ports(objects, threaded_parser, await bus_factory(service="parser-test"))
    event = DocUploaded(
        meta=EventMeta(job_id="j2", tenant_id="t", collection_id="c", document_id="d2", version=1, file_name="w.md"),
        object_key="uploads/t/md",
        media_type="text/markdown",
    )
    delivery = Delivery(attempt=1, stream_sequence=1, subject="s")

    first = await parse_document(event, delivery, ports)
    stored_first = await objects.get_bytes(first.chunks_key)
    second = await parse_document(event, delivery, ports)

    assert (second.chunks_key, second.chunk_count) == (first.chunks_key, first.chunk_count)
    assert await objects.get_bytes(second.chunks_key) == stored_first
