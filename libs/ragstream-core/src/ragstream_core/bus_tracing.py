"""The spans of the bus, after the OpenTelemetry messaging conventions.

A publish is a PRODUCER span ``publish <subject>``, a handled message a CONSUMER span
``process <subject>`` continuing the trace its headers carry (W3C ``traceparent``); both carry
``messaging.system=nats``, ``messaging.destination.name``, ``messaging.operation`` and
``messaging.message.id`` (the ``Nats-Msg-Id``), and the job's id, tenant and collection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from nats.aio.msg import Msg
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

tracer = trace.get_tracer("ragstream.bus")


def messaging_attributes(subject: str, operation: str, msg_id: str, meta: Any = None) -> dict[str, Any]:
    """The OpenTelemetry messaging attributes of a span, plus the job it belongs to when known."""
    attributes: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation": operation,
        "messaging.operation.name": operation,
        "messaging.operation.type": "send" if operation == "publish" else operation,
        "messaging.message.id": msg_id,
    }
    if meta is not None and meta.job_id:
        attributes["ragstream.job_id"] = meta.job_id
        attributes["ragstream.tenant_id"] = meta.tenant_id
        attributes["ragstream.collection_id"] = meta.collection_id
    return attributes


@contextlib.contextmanager
def process_span(msg: Msg, *, consumer: str = "") -> Iterator[Span]:
    """The CONSUMER span of one received message, continuing the trace its headers carry."""
    headers = dict(msg.headers or {})
    attributes = messaging_attributes(msg.subject, "process", headers.get("Nats-Msg-Id", ""))
    if consumer:
        attributes["messaging.consumer.group.name"] = consumer
    with tracer.start_as_current_span(
        f"process {msg.subject}", context=propagate.extract(headers), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def mark_job(span: Span, meta: Any) -> None:
    """Name the job (and its tenant and collection) a span worked for, once the event is decoded."""
    span.set_attribute("ragstream.job_id", meta.job_id)
    span.set_attribute("ragstream.tenant_id", meta.tenant_id)
    span.set_attribute("ragstream.collection_id", meta.collection_id)
