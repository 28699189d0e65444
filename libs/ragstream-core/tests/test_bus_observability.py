"""What the bus tells operators, against a real nats-server: consumer lag and unacked counts read
from JetStream, redeliveries counted per stage, and the log context a handler runs in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import REGISTRY

from ragstream_core.bus import Bus, Delivery
from ragstream_core.errors import DependencyUnavailable
from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded, EventMeta
from ragstream_devstack.testing import eventually, new_id

BusFactory = Callable[..., Awaitable[Bus]]


def uploaded(job_id: str) -> DocUploaded:
    return DocUploaded(
        meta=EventMeta(
            job_id=job_id, tenant_id="acme", collection_id="manuals", document_id="d", version=1, file_name="f.md"
        ),
        object_key="k",
        media_type="text/markdown",
    )


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_consumer_lag_and_unacked_messages_are_read_from_jetstream(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test", consumer_poll_s=0.1)
    durable = new_id("lag")
    release = asyncio.Event()

    async def slow(event: DocUploaded, _: Delivery) -> None:
        await release.wait()

    for n in range(4):
        await bus.publish(uploaded(f"{durable}-job-{n}"))
    bus.consume(DocUploaded, durable=durable, stage=durable, handler=slow, batch=1)

    await eventually(
        lambda: asyncio.sleep(0, (sample("ragstream_consumer_pending_messages", consumer=durable),
                                  sample("ragstream_consumer_ack_pending_messages", consumer=durable))),
        lambda values: values == (3.0, 1.0),
    )  # fmt: skip
    release.set()
    await eventually(
        lambda: asyncio.sleep(0, sample("ragstream_consumer_pending_messages", consumer=durable)),
        lambda pending: pending == 0.0,
    )
    assert sample("ragstream_messages_total", stage=durable, outcome="ok") == 4.0


async def test_redeliveries_are_counted_by_stage(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test", retry_delay_s=0.05)
    stage = new_id("stage")
    attempts: list[int] = []

    async def flaky(event: DocUploaded, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt < 3:
            raise DependencyUnavailable("object store briefly away")

    bus.consume(DocUploaded, durable=stage, stage=stage, handler=flaky)
    await bus.publish(uploaded(f"{stage}-job"))

    await eventually(lambda: asyncio.sleep(0, attempts), lambda a: a == [1, 2, 3], within_s=10)
    assert sample("ragstream_redeliveries_total", stage=stage) == 2.0
    assert sample("ragstream_messages_total", stage=stage, outcome="retried") == 2.0
    assert sample("ragstream_dead_letters_total", stage=stage) == 0.0


async def test_a_handler_logs_with_its_job_tenant_and_collection_bound(bus_factory: BusFactory) -> None:
    bus = await bus_factory(service="test")
    durable = new_id("logs")
    bound: list[dict[str, object]] = []

    async def record(event: DocUploaded, _: Delivery) -> None:
        bound.append(structlog.contextvars.get_contextvars())

    bus.consume(DocUploaded, durable=durable, stage="parsing", handler=record)
    await bus.publish(uploaded(f"{durable}-job"))

    [context] = await eventually(lambda: asyncio.sleep(0, bound), lambda b: len(b) == 1)
    assert context == {
        "job_id": f"{durable}-job",
        "document_id": "d",
        "tenant_id": "acme",
        "collection_id": "manuals",
        "stage": "parsing",
    }
