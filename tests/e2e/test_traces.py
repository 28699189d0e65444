"""One upload, one trace: every service's spans reach an OTLP/HTTP receiver (``oteltap``) and
hang together from the upload request to chat and progress learning that the document is indexed.

The stack of this module exports to the receiver (``OTEL_EXPORTER_OTLP_ENDPOINT``) with a
200 ms batch delay, so spans arrive within a second of ending; the test polls what arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

from ragstream_devstack.e2e import Client
from ragstream_devstack.servers import free_port
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

from .conftest import E2E_ENV, OUTPUT, print_log_tails

UPLOADED = "ragstream.events.doc.uploaded"
RELEASED = "ragstream.events.doc.released"
PARSED = "ragstream.events.doc.parsed"
INDEXED = "ragstream.events.index.updated"
SERVICES = {"ingest-gateway", "parser", "embedder", "progress", "chat"}

MARKDOWN = b"""# Lighthouses

## Keepers

A lighthouse keeper trimmed the wick and wound the clockwork every four hours through the night.

## Lenses

The Fresnel lens bends the light of a small flame into a beam seen twenty miles out at sea.
"""


class Receiver:
    """Every span the OTLP receiver got, kept in arrival order."""

    def __init__(self, tap: OtelTapHttpProtobufReceiver) -> None:
        self.tap = tap
        self.spans: list[Span] = []

    async def collect(self) -> None:
        async for span in self.tap.stream_traces():
            self.spans.append(span)


@pytest.fixture(scope="module")
def otlp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def receiver(otlp_port: int) -> AsyncIterator[Receiver]:
    async with OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=otlp_port)) as tap:
        received = Receiver(tap)
        collector = asyncio.create_task(received.collect())
        await asyncio.sleep(0)  # the stream subscribes on its first step
        yield received
        collector.cancel()


@pytest.fixture(scope="module")
def traced_stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, otlp_port: int
) -> Iterator[Stack]:
    log_dir = OUTPUT / "logs-traces"
    for old in log_dir.glob("*.log"):
        old.unlink()
    env = {
        **E2E_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "RAGSTREAM_LOG_FORMAT": "json",  # as in production
    }
    running = Stack(data_dir=tmp_path_factory.mktemp("traced"), log_dir=log_dir, env=env).start()
    yield running
    running.stop()
    if request.session.testsfailed:
        print_log_tails(log_dir)


def hex_id(raw: bytes) -> str:
    return raw.hex()


def attributes(span: Span) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind) if kind else None
    return values


def service(span: Span) -> str:
    return str(attributes(span).get("service.name", ""))


def trace_is_complete(spans: list[Span]) -> bool:
    """Chat and progress both processed index.updated, and the parser's and embedder's work is in."""
    seen = {(service(s), s.name) for s in spans}
    return {
        ("chat", f"process {INDEXED}"),
        ("progress", f"process {INDEXED}"),
        ("ingest-gateway", f"process {INDEXED}"),
        ("parser", f"process {RELEASED}"),
        ("embedder", f"process {PARSED}"),
    } <= seen


async def spans_of_trace(receiver: Receiver, trace_id: str, *, within_s: float = 60.0) -> list[Span]:
    """Poll the received spans until the job's trace is complete; fail with what arrived."""
    deadline = time.monotonic() + within_s
    spans: list[Span] = []
    while time.monotonic() < deadline:
        spans = [s for s in receiver.spans if hex_id(s.trace_id) == trace_id]
        if trace_is_complete(spans):
            return spans
        await asyncio.sleep(0.2)
    got = sorted({(service(s), s.name) for s in spans})
    raise AssertionError(f"trace {trace_id} incomplete after {within_s}s; received: {got}")


def one(spans: list[Span], service_name: str, name: str) -> Span:
    matching = [s for s in spans if service(s) == service_name and s.name == name]
    assert len(matching) == 1, f"expected one {name!r} of {service_name}, found {len(matching)}"
    return matching[0]


def ancestors(span: Span, by_id: dict[bytes, Span]) -> list[Span]:
    chain: list[Span] = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span)
    return chain


async def test_one_upload_yields_one_trace_through_all_five_services(receiver: Receiver, traced_stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        client = Client(traced_stack, http)
        upload = await client.upload(new_id("traces"), "lighthouses.md", MARKDOWN)
        assert upload.status_code == 202, upload.text
        [job] = await client.wait_done([upload.json()["job_id"]])
    assert job["status"] == "indexed", job

    spans = await spans_of_trace(receiver, job["trace_id"])
    by_id = {s.span_id: s for s in spans}

    assert {service(s) for s in spans} >= SERVICES
    # the upload request is the root, the gateway's publish of doc.uploaded under it
    [root] = [s for s in spans if s.parent_span_id not in by_id]
    assert service(root) == "ingest-gateway"
    assert root.kind == Span.SPAN_KIND_SERVER
    assert root.name == "POST /v1/collections/{collection_id}/documents"
    uploaded = one(spans, "ingest-gateway", f"publish {UPLOADED}")
    assert root in ancestors(uploaded, by_id)
    # upload → release → parser process → parser publish → embedder process → index.updated
    released = one(spans, "ingest-gateway", f"publish {RELEASED}")
    parsing = one(spans, "parser", f"process {RELEASED}")
    parsed = one(spans, "parser", f"publish {PARSED}")
    embedding = one(spans, "embedder", f"process {PARSED}")
    indexed = one(spans, "embedder", f"publish {INDEXED}")
    assert root in ancestors(released, by_id)
    assert parsing.parent_span_id == released.span_id
    assert parsed.parent_span_id == parsing.span_id
    assert embedding.parent_span_id == parsed.span_id
    assert indexed.parent_span_id == embedding.span_id
    # chat and progress process index.updated as children of the embedder's publish
    for consumer in ("chat", "progress", "ingest-gateway"):
        assert one(spans, consumer, f"process {INDEXED}").parent_span_id == indexed.span_id
    # progress projects every event of the job, each as a child of its publish
    assert one(spans, "progress", f"process {UPLOADED}").parent_span_id == uploaded.span_id
    assert one(spans, "progress", f"process {PARSED}").parent_span_id == parsed.span_id
    # the work inside the stages: Docling, chunking, embedding, Qdrant, PostgreSQL, object storage
    inside_parser = {s.name for s in spans if parsing in ancestors(s, by_id)}
    inside_embedder = {s.name for s in spans if embedding in ancestors(s, by_id)}
    assert {"docling convert", "chunk document", "objects get bytes", "objects put bytes"} <= inside_parser
    assert {"embed batch", "index upsert", "index activate", "objects get bytes"} <= inside_embedder
    assert any(service(s) == "progress" and s.name.startswith("postgresql ") for s in spans)
    assert any(service(s) == "ingest-gateway" and s.name == "objects put file" for s in spans)


async def test_messaging_spans_follow_the_opentelemetry_conventions(receiver: Receiver, traced_stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        client = Client(traced_stack, http)
        upload = await client.upload(new_id("traces"), "keepers.md", MARKDOWN.replace(b"four", b"three"))
        [job] = await client.wait_done([upload.json()["job_id"]])
    spans = await spans_of_trace(receiver, job["trace_id"])

    publishes = [s for s in spans if s.name.startswith("publish ragstream.events.")]
    processes = [s for s in spans if s.name.startswith("process ragstream.events.")]
    assert len(publishes) >= 4
    assert len(processes) > len(publishes)  # progress and the gateway consume every event too
    for span in publishes:
        attrs = attributes(span)
        assert span.kind == Span.SPAN_KIND_PRODUCER, span.name
        assert attrs["messaging.system"] == "nats"
        assert attrs["messaging.destination.name"] == span.name.removeprefix("publish ")
        assert attrs["messaging.operation"] == "publish"
        assert attrs["messaging.message.id"].startswith(job["job_id"])
        assert attrs["ragstream.job_id"] == job["job_id"]
    for span in processes:
        attrs = attributes(span)
        assert span.kind == Span.SPAN_KIND_CONSUMER, span.name
        assert attrs["messaging.system"] == "nats"
        assert attrs["messaging.destination.name"] == span.name.removeprefix("process ")
        assert attrs["messaging.operation"] == "process"
        assert attrs["messaging.message.id"].startswith(job["job_id"])


def json_lines(service_name: str) -> list[dict[str, Any]]:
    lines = []
    for line in (OUTPUT / "logs-traces" / f"{service_name}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_json_logs_of_a_stage_carry_the_trace_span_job_tenant_and_collection(
    receiver: Receiver, traced_stack: Stack
) -> None:
    collection = new_id("logs")
    async with httpx.AsyncClient(timeout=60) as http:
        client = Client(traced_stack, http)
        upload = await client.upload(collection, "logs.md", MARKDOWN.replace(b"four", b"six"))
        [job] = await client.wait_done([upload.json()["job_id"]])
    spans = await spans_of_trace(receiver, job["trace_id"])
    span_ids = {hex_id(s.span_id) for s in spans}

    [parsed] = [e for e in json_lines("parser") if e["event"] == "document.parsed" and e.get("job_id") == job["job_id"]]
    [indexed] = [
        e for e in json_lines("embedder") if e["event"] == "document.indexed" and e.get("job_id") == job["job_id"]
    ]
    [accepted] = [
        e for e in json_lines("ingest-gateway") if e["event"] == "upload.accepted" and e.get("job_id") == job["job_id"]
    ]

    for line in (parsed, indexed, accepted):
        assert line["trace_id"] == job["trace_id"], line
        assert line["span_id"] in span_ids, line
        assert (line["tenant_id"], line["collection_id"]) == ("default", collection), line
        assert line["level"] == "info"
        assert line["timestamp"].endswith("Z")
    assert (parsed["service"], indexed["service"], accepted["service"]) == ("parser", "embedder", "ingest-gateway")
