"""Spans in a JSON-lines file, and a trace printed as a tree: ``make traces`` without Jaeger.

Without an OTLP endpoint, ``make run`` gives every service ``RAGSTREAM_TRACES_FILE``; each
process appends its finished spans there, one JSON object per line (one ``write`` per batch on
a file opened for appending, so the lines of several processes never interleave mid-line).
``read_spans`` reads them back, ``last_job_trace`` picks the trace of the latest upload (or of
a given job) and ``render_tree`` draws it: service, span name, duration, offset from the root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

#: spans that open a job's trace: an upload (REST, gRPC) or a release of a queued job
JOB_SPAN_PREFIXES = ("publish ragstream.events.doc.uploaded", "publish ragstream.events.doc.released")


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as the JSON object of a line."""
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent is not None else "",
        "name": span.name,
        "kind": span.kind.name,
        "service": str(span.resource.attributes.get("service.name", "")),
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or 0,
        "status": span.status.status_code.name,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
    }


def _plain(value: Any) -> Any:
    """An attribute value as JSON holds it (sequences become lists)."""
    return value if isinstance(value, str | int | float | bool) else [*value]


class JsonLinesSpanExporter(SpanExporter):
    """Appends each batch of finished spans to ``path`` (created with its directory)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(span_record(s), separators=(",", ":")) + "\n" for s in spans).encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


@dataclass
class SpanNode:
    """A span of a trace with its children (ordered by start time)."""

    record: dict[str, Any]
    children: list[SpanNode] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (int(self.record["end_ns"]) - int(self.record["start_ns"])) / 1e6


def read_spans(path: str | Path) -> list[dict[str, Any]]:
    """Every span of the file; a line cut short (a process killed mid-write) is skipped."""
    spans: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                spans.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return spans


def last_job_trace(spans: Iterable[dict[str, Any]], *, job_id: str = "") -> list[dict[str, Any]]:
    """The spans of the trace of the latest job (or of ``job_id``); empty if there is none."""
    spans = list(spans)
    starts = [
        s
        for s in spans
        if s["name"].startswith(JOB_SPAN_PREFIXES)
        and (not job_id or s.get("attributes", {}).get("ragstream.job_id") == job_id)
    ]
    if not starts:
        return []
    trace_id = max(starts, key=lambda s: int(s["start_ns"]))["trace_id"]
    return [s for s in spans if s["trace_id"] == trace_id]


def build_tree(spans: Iterable[dict[str, Any]]) -> list[SpanNode]:
    """The roots of the spans' tree: spans whose parent is not among them are roots."""
    nodes = {s["span_id"]: SpanNode(s) for s in spans}
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent = nodes.get(node.record["parent_span_id"])
        (parent.children if parent is not None else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: int(n.record["start_ns"]))
    return sorted(roots, key=lambda n: int(n.record["start_ns"]))


def render_tree(spans: Iterable[dict[str, Any]], *, hide: tuple[str, ...] = ()) -> str:
    """The trace as indented lines: offset from the first span, duration, service, span name.

    Spans whose name starts with one of ``hide`` are left out with their children (a count of
    them ends the output).
    """
    spans = list(spans)
    hidden_ids = {s["span_id"] for s in spans if hide and s["name"].startswith(hide)}
    grown = True
    while grown:  # and their descendants
        below = {s["span_id"] for s in spans if s["parent_span_id"] in hidden_ids} - hidden_ids
        hidden_ids |= below
        grown = bool(below)
    hidden = [s for s in spans if s["span_id"] in hidden_ids]
    roots = build_tree(s for s in spans if s["span_id"] not in hidden_ids)
    if not roots:
        return "no spans"
    origin = min(int(r.record["start_ns"]) for r in roots)
    lines = [f"trace {roots[0].record['trace_id']}", f"{'start':>9} {'duration':>10}  {'service':<15} span"]

    def draw(node: SpanNode, prefix: str, last: bool, top: bool) -> None:
        offset = (int(node.record["start_ns"]) - origin) / 1e6
        branch = "" if top else ("└─ " if last else "├─ ")
        error = "  [ERROR]" if node.record.get("status") == "ERROR" else ""
        lines.append(
            f"{offset:>7.0f}ms {node.duration_ms:>8.1f}ms  {node.record['service']:<15} "
            f"{prefix}{branch}{node.record['name']}{error}"
        )
        child_prefix = prefix if top else prefix + ("   " if last else "│  ")
        for i, child in enumerate(node.children):
            draw(child, child_prefix, i == len(node.children) - 1, False)

    for root in roots:
        draw(root, "", True, True)
    if hidden:
        lines.append(f"({len(hidden)} spans hidden: {', '.join(sorted({h.strip() for h in hide}))})")
    return "\n".join(lines)
