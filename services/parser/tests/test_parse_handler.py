"""The parse stage over a real bus and object store: chunks stored, DocParsed emitted."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragstream_core.bus import Bus, Delivery
from ragstream_core.events import EVENTS_STREAM, SUBJECT_OF
from ragstream_core.proto.ragstream.v1.events_pb2 import DocParsed, DocReleased, DocUploaded, EventMeta, StageProgress
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


def released(upload: DocUploaded) -> DocReleased:
    """The parser's input: an upload the gateway's scheduler released."""
    return DocReleased(meta=upload.meta, upload=upload)


def upload_of(job_id: str, key: str, file_name: str, media_type: str) -> DocReleased:
    meta = EventMeta(
        job_id=job_id, tenant_id="t", collection_id="c", document_id=job_id, version=1, file_name=file_name
    )
    return released(DocUploaded(meta=meta, object_key=key, media_type=media_type))


async def progress_of(bus: Bus, job_id: str) -> list[StageProgress]:
    """The ``StageProgress`` events of one job stored in the event stream, in order."""
    info = await bus.js.stream_info(EVENTS_STREAM)
    found: list[StageProgress] = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(EVENTS_STREAM, sequence)
        if msg.subject == SUBJECT_OF[StageProgress]:
            event = StageProgress.FromString(msg.data or b"")
            if event.meta.job_id == job_id:
                found.append(event)
    return found


async def test_parsing_stores_chunks_and_describes_them(
    tmp_path: Path, corpus: Path, threaded_parser: ThreadedParser, bus_factory: Callable[..., Awaitable[Bus]]
) -> None:
    objects = LocalObjectStore(tmp_path)
    await objects.put_bytes("uploads/t/abc", (corpus / "pdf/multi_page.pdf").read_bytes())
    ports = Ports(objects, threaded_parser, await bus_factory(service="parser-test"))
    event = released(
        DocUploaded(
            meta=EventMeta(
                job_id="j1", tenant_id="t", collection_id="c", document_id="d1", version=2, file_name="m.pdf"
            ),
            object_key="uploads/t/abc",
            media_type="application/pdf",
        )
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
    event = released(
        DocUploaded(
            meta=EventMeta(
                job_id="j2", tenant_id="t", collection_id="c", document_id="d2", version=1, file_name="w.md"
            ),
            object_key="uploads/t/md",
            media_type="text/markdown",
        )
    )
    delivery = Delivery(attempt=1, stream_sequence=1, subject="s")

    first = await parse_document(event, delivery, ports)
    stored_first = await objects.get_bytes(first.chunks_key)
    second = await parse_document(event, delivery, ports)

    assert (second.chunks_key, second.chunk_count) == (first.chunks_key, first.chunk_count)
    assert await objects.get_bytes(second.chunks_key) == stored_first


LONG_PDF_PAGES = 100


@pytest.fixture(scope="module")
def long_pdf(corpus_pages_pdf: Callable[[int], bytes]) -> bytes:
    """A PDF of ``LONG_PDF_PAGES`` pages of the corpus PDFs, repeated."""
    return corpus_pages_pdf(LONG_PDF_PAGES)


@pytest.mark.filterwarnings("ignore:Headers and captions:UserWarning")  # a heading of normal_4pages.pdf
async def test_long_pdf_reports_its_pages_as_they_are_parsed(
    tmp_path: Path, long_pdf: bytes, threaded_parser: ThreadedParser, bus_factory: Callable[..., Awaitable[Bus]]
) -> None:
    objects = LocalObjectStore(tmp_path)
    await objects.put_bytes("uploads/t/long", long_pdf)
    ports = Ports(objects, threaded_parser, await bus_factory(service="parser-test"))

    parsed = await parse_document(
        upload_of("long", "uploads/t/long", "long.pdf", "application/pdf"),
        Delivery(attempt=2, stream_sequence=1, subject="s"),
        ports,
    )

    start, *advances = await progress_of(ports.events, "long")
    assert (start.done, start.total) == (0, 0)
    done = [event.done for event in advances]
    assert len(done) >= 3, done
    assert done == sorted(set(done)), done  # growing: one event per value
    assert done[0] > 0
    assert done[-1] <= LONG_PDF_PAGES
    assert {(e.stage, e.total, e.unit, e.attempt) for e in advances} == {("parsing", LONG_PDF_PAGES, "pages", 2)}
    assert parsed.page_count == LONG_PDF_PAGES


@pytest.mark.filterwarnings("ignore:Headers and captions:UserWarning")  # a heading of normal_4pages.pdf
async def test_long_pdf_reporting_progress_yields_the_chunks_of_a_parse_without(
    tmp_path: Path, long_pdf: bytes, threaded_parser: ThreadedParser, bus_factory: Callable[..., Awaitable[Bus]]
) -> None:
    objects = LocalObjectStore(tmp_path)
    await objects.put_bytes("uploads/t/long", long_pdf)
    ports = Ports(objects, threaded_parser, await bus_factory(service="parser-test"))
    one_shot = await threaded_parser.parse(long_pdf, file_name="long.pdf", media_type="application/pdf")

    parsed = await parse_document(
        upload_of("long-chunks", "uploads/t/long", "long.pdf", "application/pdf"),
        Delivery(attempt=1, stream_sequence=1, subject="s"),
        ports,
    )

    stored = json.loads(await objects.get_bytes(parsed.chunks_key))
    assert stored["chunks"] == [chunk.to_dict() for chunk in one_shot.chunks]
    assert len(await progress_of(ports.events, "long-chunks")) > 1


async def test_short_document_reports_only_the_start_of_parsing(
    tmp_path: Path, corpus: Path, threaded_parser: ThreadedParser, bus_factory: Callable[..., Awaitable[Bus]]
) -> None:
    objects = LocalObjectStore(tmp_path)
    await objects.put_bytes("uploads/t/short", (corpus / "md/duck.md").read_bytes())
    ports = Ports(objects, threaded_parser, await bus_factory(service="parser-test"))
    event = upload_of("short", "uploads/t/short", "duck.md", "text/markdown")

    parsed = await parse_document(event, Delivery(attempt=1, stream_sequence=1, subject="s"), ports)

    assert parsed.chunk_count > 0
    assert [(e.done, e.total) for e in await progress_of(ports.events, "short")] == [(0, 0)]
