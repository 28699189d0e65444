"""Logs, traces and the metrics every stage shares.

``configure_telemetry`` is called once per process, in ``main``. Logs are structlog, JSON or
console, and carry ``trace_id`` and ``span_id`` (from the current span) and whatever the bus
binds (``job_id``, ``document_id``, ``tenant_id``, ``collection_id``). Traces go to OTLP/HTTP
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; else, when ``RAGSTREAM_TRACES_FILE`` names a file
(``make run`` does), to that JSON-lines file for ``make traces``; otherwise spans are still
made (so trace context propagates) but not exported. The batch processor's delay comes from
``OTEL_BSP_SCHEDULE_DELAY`` (milliseconds, 5000 by default).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import Counter, Gauge, Histogram

from ragstream_core.settings import CoreSettings

STAGE_DURATION = Histogram(
    "ragstream_stage_duration_seconds",
    "Time a stage handler spent on one message.",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
MESSAGES = Counter("ragstream_messages_total", "Messages handled by a stage, by outcome.", ["stage", "outcome"])
IN_FLIGHT = Gauge("ragstream_in_flight_messages", "Messages a stage is working on.", ["stage"])
FAILURES = Counter("ragstream_job_failures_total", "Jobs failed by a stage, by error type.", ["stage", "error_type"])
DEAD_LETTERS = Counter("ragstream_dead_letters_total", "Messages moved to the dead-letter stream.", ["stage"])
REDELIVERIES = Counter(
    "ragstream_redeliveries_total", "Messages a stage received again (a retry or an unacked delivery).", ["stage"]
)
CONSUMER_PENDING = Gauge(
    "ragstream_consumer_pending_messages", "Messages of a durable consumer not yet delivered (lag).", ["consumer"]
)
CONSUMER_ACK_PENDING = Gauge(
    "ragstream_consumer_ack_pending_messages", "Messages delivered to a durable consumer, not yet acked.", ["consumer"]
)
CONSUMER_REDELIVERED = Gauge(
    "ragstream_consumer_redelivered_messages",
    "Messages of a durable consumer delivered more than once and not yet acked.",
    ["consumer"],
)


def _add_trace_id(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    span = trace.get_current_span().get_span_context()
    if span.is_valid and "trace_id" not in event_dict:
        event_dict["trace_id"] = format(span.trace_id, "032x")
        event_dict["span_id"] = format(span.span_id, "016x")
    return event_dict


class ServiceNameAttribute(SpanProcessor):
    """Copies ``service.name`` onto every span's attributes.

    It is a resource attribute; receivers that hand out spans one by one (``oteltap`` in the
    tests, log-style backends) drop the resource, and a span should still say where it ran.
    """

    def __init__(self, service: str) -> None:
        self.service = service

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attribute("service.name", self.service)


def _service_field(service: str) -> Any:
    def add(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def configure_telemetry(service: str, settings: CoreSettings) -> trace.Tracer:
    """Set up logging and tracing for this process; returns the service's tracer."""
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=max(level, logging.WARNING), format="%(message)s")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_trace_id,
            _service_field(service),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(ServiceNameAttribute(service))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif settings.traces_file:
        from ragstream_core.trace_file import JsonLinesSpanExporter

        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(settings.traces_file)))
    trace.set_tracer_provider(provider)
    return trace.get_tracer(f"ragstream.{service}")


def shutdown_telemetry() -> None:
    """Flush spans still buffered (called when the process stops)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def current_trace_id() -> str:
    """The hex trace id of the current span, or '' outside any span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
