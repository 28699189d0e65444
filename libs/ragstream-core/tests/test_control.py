"""Steering orders on a controlled consumer: a cancelled or paused run stops at its boundaries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from ragstream_core.bus import Bus, Delivery
from ragstream_core.events import EVENTS_STREAM, next_meta
from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocParsed,
    DocUploaded,
    EventMeta,
    IndexUpdated,
    JobControlled,
    JobFailed,
)
from ragstream_devstack.testing import eventually

BusFactory = Callable[..., Awaitable[Bus]]


def uploaded(job_id: str, retry: int = 0) -> DocUploaded:
    meta = EventMeta(job_id=job_id, tenant_id="t", collection_id="c", document_id="d", version=1, retry=retry)
    return DocUploaded(meta=meta, object_key="k", media_type="text/markdown")


async def collect(bus: Bus, event_type: type[Message], durable: str) -> list[Message]:
    seen: list[Message] = []

    async def record(event: Message, _: Delivery) -> None:
        seen.append(event)

    bus.consume(event_type, durable=durable, stage=durable, handler=record, batch=10)
    return seen


async def settled(bus: Bus, durable: str) -> None:
    await eventually(
        lambda: bus.js.consumer_info(EVENTS_STREAM, durable), lambda i: i.num_ack_pending == 0 and i.num_pending == 0
    )


async def test_a_cancelled_job_never_reaches_the_handler_and_fails_as_cancelled(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    failed = await collect(bus, JobFailed, "failures")
    handled: list[str] = []

    async def parse(event: DocUploaded, _: Delivery) -> DocParsed:
        handled.append(event.meta.job_id)
        return DocParsed(meta=next_meta(event.meta))

    await (await bus.job_control()).order("job-c", "cancelled", retry=0, actor="ops")
    bus.consume(DocUploaded, durable="parser", stage="parsing", handler=parse, controlled=True)
    await bus.publish(uploaded("job-c"))
    await bus.publish(uploaded("job-ok"))

    done = await eventually(lambda: asyncio.sleep(0, failed), lambda seen: len(seen) == 1)
    await settled(bus, "parser")
    assert handled == ["job-ok"]
    assert (done[0].meta.job_id, done[0].error_type, done[0].stage, done[0].reason) == (  # type: ignore[attr-defined]
        "job-c",
        "Cancelled",
        "parsing",
        "cancelled by ops",
    )


async def test_an_order_given_while_the_handler_runs_stops_it_at_its_checkpoint(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    requeued = await collect(bus, JobControlled, "controls")
    indexed = await collect(bus, IndexUpdated, "indexed")
    control = await bus.job_control()
    reached = asyncio.Event()
    go_on = asyncio.Event()
    made_visible: list[str] = []

    async def embed(event: DocUploaded, delivery: Delivery) -> IndexUpdated:
        reached.set()
        await go_on.wait()
        await delivery.checkpoint()
        made_visible.append(event.meta.job_id)
        return IndexUpdated(meta=next_meta(event.meta))

    bus.consume(DocUploaded, durable="embedder", stage="embedding", handler=embed, controlled=True)
    await bus.publish(uploaded("job-p"))
    await asyncio.wait_for(reached.wait(), 10)
    await control.order("job-p", "paused", retry=0, actor="ops")
    go_on.set()

    done = await eventually(lambda: asyncio.sleep(0, requeued), lambda seen: len(seen) == 1)
    await settled(bus, "embedder")
    assert made_visible == []
    assert indexed == []
    assert (done[0].meta.job_id, done[0].action) == ("job-p", "requeued")  # type: ignore[attr-defined]


async def test_an_order_for_an_older_run_does_not_stop_a_newer_one(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    control = await bus.job_control()
    await control.order("job-r", "paused", retry=0, actor="ops")

    await control.check(uploaded("job-r", retry=1).meta)
    await control.clear("job-r")
    await control.check(uploaded("job-r", retry=0).meta)
