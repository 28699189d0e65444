"""Spans written by the SDK to the JSON-lines file, read back and drawn as a tree."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from ragstream_core.trace_file import JsonLinesSpanExporter, last_job_trace, read_spans, render_tree


def write_job(path: Path, service: str, job_id: str) -> None:
    """A job's spans as two services make them: an upload with a publish, a process under it."""
    gateway = TracerProvider(resource=Resource.create({"service.name": service}))
    gateway.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    parser = TracerProvider(resource=Resource.create({"service.name": "parser"}))
    parser.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = gateway.get_tracer("test")
    with tracer.start_as_current_span("POST /v1/collections/{collection_id}/documents", kind=SpanKind.SERVER):
        with (
            tracer.start_as_current_span(
                "publish ragstream.events.doc.uploaded", kind=SpanKind.PRODUCER, attributes={"ragstream.job_id": job_id}
            ),
            parser.get_tracer("test").start_as_current_span("process ragstream.events.doc.uploaded"),
        ):
            parser.get_tracer("test").start_span("docling convert").end()
        tracer.start_span("postgresql INSERT").end()
    gateway.shutdown()
    parser.shutdown()


def test_the_last_jobs_trace_is_drawn_as_a_tree_with_services_and_durations(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    write_job(path, "ingest-gateway", "job-1")
    write_job(path, "ingest-gateway", "job-2")

    spans = last_job_trace(read_spans(path))
    lines = render_tree(spans).splitlines()

    assert len(read_spans(path)) == 10
    assert {s["attributes"].get("ragstream.job_id") for s in spans} == {None, "job-2"}
    assert [line.split("ms", 2)[2].split(maxsplit=1) for line in lines[2:]] == [
        ["ingest-gateway", "POST /v1/collections/{collection_id}/documents"],
        ["ingest-gateway", "├─ publish ragstream.events.doc.uploaded"],
        ["parser", "│  └─ process ragstream.events.doc.uploaded"],
        ["parser", "│     └─ docling convert"],
        ["ingest-gateway", "└─ postgresql INSERT"],
    ]
    assert lines[0] == f"trace {spans[0]['trace_id']}"


def test_a_job_is_found_by_its_id_and_a_line_cut_short_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    write_job(path, "ingest-gateway", "job-1")
    write_job(path, "ingest-gateway", "job-2")
    with path.open("a") as f:
        f.write('{"trace_id": "cut sh')

    first = last_job_trace(read_spans(path), job_id="job-1")

    assert len(first) == 5
    assert "job-1" in {s["attributes"].get("ragstream.job_id") for s in first}
    assert last_job_trace(read_spans(path), job_id="no-such-job") == []


def test_hidden_spans_leave_out_their_children_and_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    write_job(path, "ingest-gateway", "job-1")

    lines = render_tree(read_spans(path), hide=("publish ", "postgresql ")).splitlines()

    assert [line.split("ms", 2)[2].split(maxsplit=1)[1] for line in lines[2:-1]] == [
        "POST /v1/collections/{collection_id}/documents"
    ]
    assert lines[-1] == "(4 spans hidden: postgresql, publish)"
