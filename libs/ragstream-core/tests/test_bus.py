"""The bus against a real nats-server: acks, retries, dead letters, dedup, trace context."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from google.protobuf.message import Message
from opentelemetry import trace

from ragstream_core.bus import Bus, Delivery
from ragstream_core.errors import DependencyUnavailable, UnreadableDocument
from ragstream_core.events import DEAD_LETTER_STREAM, EVENTS_STREAM, next_meta
from ragstream_core.proto.ragstream.v1.events_pb2 import DocParsed, DocUploaded, EventMeta, JobFailed
from ragstream_devstack.testing import eventually, new_id

BusFactory = Callable[..., Awaitable[Bus]]


def uploaded(job_id: str) -> DocUploaded:
    return DocUploaded(
        meta=EventMeta(job_id=job_id, tenant_id="t", collection_id="c", document_id="d", version=1, file_name="f.md"),
        object_key="k",
        media_type="text/markdown",
    )


async def collect(bus: Bus, event_type: type[Message], durable: str) -> list[Message]:
    """Record every event of ``event_type`` in a list that fills as they arrive."""
    seen: list[Message] = []

    async def record(event: Message, _: Delivery) -> None:
        seen.append(event)

    bus.consume(event_type, durable=durable, stage=durable, handler=record, batch=10)
    return seen


async def test_handler_output_is_published_and_input_acked(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    parsed = await collect(bus, DocParsed, "observer")

    async def parse(event: DocUploaded, _: Delivery) -> DocParsed:
        return DocParsed(meta=next_meta(event.meta), chunks_key="chunks", chunk_count=3)

    bus.consume(DocUploaded, durable="parser", stage="parsing", handler=parse)
    await bus.publish(uploaded("job-1"))

    done = await eventually(lambda: asyncio.sleep(0, parsed), lambda seen: len(seen) == 1)
    assert done[0].meta.event_id == "job-1:parsed"  # type: ignore[attr-defined]
    info = await eventually(
        lambda: bus.js.consumer_info(EVENTS_STREAM, "parser"), lambda i: i.num_ack_pending == 0 and i.num_pending == 0
    )
    assert info.delivered.consumer_seq == 1


async def test_republishing_the_same_event_is_dropped_as_duplicate(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    await bus.publish(uploaded("job-dup"))
    await bus.publish(uploaded("job-dup"))

    info = await bus.js.stream_info(EVENTS_STREAM)

    assert info.state.messages == 1


async def test_transient_failure_is_retried_until_it_succeeds(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test", retry_delay_s=0.05)
    attempts: list[int] = []

    async def flaky(event: DocUploaded, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt < 3:
            raise DependencyUnavailable("object store briefly away")

    bus.consume(DocUploaded, durable="flaky", stage="parsing", handler=flaky)
    await bus.publish(uploaded("job-retry"))

    await eventually(lambda: asyncio.sleep(0, attempts), lambda a: a == [1, 2, 3], within_s=10)
    failed = await bus.js.stream_info(DEAD_LETTER_STREAM)
    assert failed.state.messages == 0


async def test_permanent_error_fails_the_job_at_once_and_dead_letters(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    failures = await collect(bus, JobFailed, "observer")
    attempts: list[int] = []

    async def unreadable(event: DocUploaded, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise UnreadableDocument("not a PDF after all")

    bus.consume(DocUploaded, durable="parser", stage="parsing", handler=unreadable)
    await bus.publish(uploaded("job-poison"))

    seen = await eventually(lambda: asyncio.sleep(0, failures), lambda f: len(f) == 1)
    failed = seen[0]
    assert isinstance(failed, JobFailed)
    assert (failed.stage, failed.reason, failed.attempts, failed.retryable) == (
        "parsing",
        "not a PDF after all",
        1,
        False,
    )
    assert attempts == [1]
    dead = await bus.js.get_last_msg(DEAD_LETTER_STREAM, "ragstream.dlq.parsing")
    assert dead.headers is not None
    assert dead.headers["Ragstream-Dlq-Reason"] == "not a PDF after all"
    assert DocUploaded.FromString(dead.data).meta.job_id == "job-poison"


async def test_failing_every_delivery_ends_as_failed_job_after_max_deliver(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test", max_deliver=3, retry_delay_s=0.01)
    failures = await collect(bus, JobFailed, "observer")

    async def broken(event: DocUploaded, _: Delivery) -> None:
        raise RuntimeError("bug in handler")

    bus.consume(DocUploaded, durable="parser", stage="parsing", handler=broken)
    await bus.publish(uploaded("job-broken"))

    seen = await eventually(lambda: asyncio.sleep(0, failures), lambda f: len(f) == 1, within_s=10)
    assert seen[0].attempts == 3  # type: ignore[attr-defined]
    assert seen[0].reason == "bug in handler"  # type: ignore[attr-defined]
    dead = await bus.js.stream_info(DEAD_LETTER_STREAM)
    assert dead.state.messages == 1


async def test_undecodable_message_is_dead_lettered_not_retried(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    handled: list[Message] = []

    async def handler(event: DocUploaded, _: Delivery) -> None:
        handled.append(event)

    bus.consume(DocUploaded, durable="parser", stage="parsing", handler=handler)
    await bus.js.publish("ragstream.events.doc.uploaded", b"\xff\xff not protobuf")

    dead = await eventually(
        lambda: bus.js.stream_info(DEAD_LETTER_STREAM), lambda i: i.state.messages == 1, within_s=10
    )
    assert dead.state.messages == 1
    assert handled == []


async def test_trace_context_travels_from_publisher_to_handler(bus_factory: BusFactory) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    bus = await bus_factory(service="test")
    seen_trace: list[int] = []

    async def handler(event: DocUploaded, _: Delivery) -> None:
        seen_trace.append(trace.get_current_span().get_span_context().trace_id)

    bus.consume(DocUploaded, durable="parser", stage="parsing", handler=handler)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("upload") as span:
        await bus.publish(uploaded(new_id("job")))
        sent = span.get_span_context().trace_id

    received = await eventually(lambda: asyncio.sleep(0, seen_trace), lambda t: len(t) == 1)
    assert received == [sent]


@pytest.mark.parametrize("event", [uploaded("j"), DocParsed(meta=EventMeta(job_id="j"))])
def test_message_ids_derive_from_job_and_stage(event: Message) -> None:
    from ragstream_core.events import message_id

    assert message_id(event) == message_id(type(event).FromString(event.SerializeToString()))
    assert message_id(event).startswith("j:")


async def test_consuming_survives_its_consumer_being_deleted_under_it(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    seen = await collect(bus, DocUploaded, "fragile")
    await bus.publish(uploaded("job-before"))
    await eventually(lambda: asyncio.sleep(0, seen), lambda s: len(s) == 1)

    await bus.js.delete_consumer(EVENTS_STREAM, "fragile")
    await bus.publish(uploaded("job-after"))

    # the consumer is bound again (created anew, so it starts over: handlers are idempotent)
    after = await eventually(
        lambda: asyncio.sleep(0, seen),
        lambda s: "job-after" in {e.meta.job_id for e in s},  # type: ignore[attr-defined]
        within_s=15,
    )
    assert after[0].meta.job_id == "job-before"  # type: ignore[attr-defined]
