"""Rebuilding the projection from the event stream yields the live projection, row for row."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from google.protobuf.message import Message
from opentelemetry import context, propagate
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from ragstream_core.bus import Bus
from ragstream_core.events import EVENTS_SUBJECTS
from ragstream_devstack.servers import NatsServer, Postgres, python_env
from ragstream_devstack.testing import eventually, migrated_pool, new_id
from ragstream_progress.handlers import project_event
from ragstream_progress.projection import JobStore
from ragstream_progress.rebuild import rebuild_projection

if TYPE_CHECKING:
    from conftest import JobEvents

BusFactory = Callable[..., Awaitable[Bus]]


@dataclass
class Ports:
    jobs: JobStore


@dataclass
class Projection:
    """A projection of its own (a fresh database) fed by a live consumer on this test's NATS."""

    store: JobStore
    url: str

    async def count_events(self) -> int:
        async with self.store.pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM progress.job_events")
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    async def snapshot(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every job (without its change number, which a rebuild renews) and every history entry."""
        async with self.store.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT * FROM progress.jobs ORDER BY job_id")
            jobs = [{k: v for k, v in row.items() if k != "change_seq"} for row in await cur.fetchall()]
            await cur.execute("SELECT * FROM progress.job_events ORDER BY event_id")
            return jobs, await cur.fetchall()


@pytest.fixture
async def projection(postgres: Postgres, bus_factory: BusFactory) -> AsyncIterator[Projection]:
    name = new_id("rebuild").replace("-", "_")
    async with await psycopg.AsyncConnection.connect(postgres.url, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(postgres.url, dbname=name)
    async with migrated_pool(url, service="progress", package="ragstream_progress") as pool:
        store = JobStore(pool)
        live = await bus_factory(service="progress")
        # one at a time, as the replay applies them, so that even order-sensitive fields agree
        live.consume(
            Message,
            durable="progress",
            stage="progress",
            handler=functools.partial(project_event, ports=Ports(store)),
            batch=1,
            subject=EVENTS_SUBJECTS,
            fail_jobs=False,
        )
        yield Projection(store, url)


def scenario(store: JobStore, job_events: type[JobEvents]) -> list[Message]:
    """Events of jobs that use every kind of change: stages, failure, retry, pause, priority, cancel."""
    collection, batch = new_id("col"), new_id("batch")

    def job(**fields: Any) -> JobEvents:
        return job_events(store, tenant_id="default", collection_id=collection, **fields)

    done, retried, paused, cancelled = job(batch_id=batch), job(batch_id=batch), job(priority="bulk"), job()
    events: list[Message] = [
        done.uploaded(),
        done.released(),
        done.parsing(done=0, total=2),
        done.parsing(done=2, total=2),
        done.parsed(pages=2, chunks=6, seconds=0.5),
        done.embedding(done=0, total=6),
        done.embedding(done=6, total=6),
        done.indexed(chunks=6, seconds=0.3),
        retried.uploaded(),
        retried.released(),
        retried.failed(stage="parsing", reason="parser crashed", attempts=5, hint="try again"),
        paused.uploaded(),
        paused.control("paused"),
        cancelled.uploaded(),
        cancelled.released(),
        cancelled.control("cancelled", actor="bob"),
    ]
    stale = retried.parsing(attempt=5)  # of run 0, stored after run 1 began
    retried.retry = 1
    paused.priority = "high"
    events += [
        retried.control("retried"),
        stale,
        retried.released(),
        retried.parsed(pages=1, chunks=3),
        retried.indexed(chunks=3),
        paused.control("prioritized"),
        paused.control("resumed"),
        paused.released(),
    ]
    return events


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def ingest(projection: Projection, bus_factory: BusFactory, job_events: type[JobEvents]) -> int:
    """Publish the scenario's events within one trace (they carry its traceparent); wait until applied."""
    producer = await bus_factory(service="test")
    events = scenario(projection.store, job_events)
    token = context.attach(propagate.extract({"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}))
    try:
        for event in events:
            await producer.publish(event)
    finally:
        context.detach(token)
    await eventually(projection.count_events, until=lambda n: n == len(events), within_s=20)
    return len(events)


async def test_rebuild_replays_the_stream_into_an_identical_projection(
    projection: Projection, bus_factory: BusFactory, job_events: type[JobEvents]
) -> None:
    published = await ingest(projection, bus_factory, job_events)
    live = await projection.snapshot()
    assert len(live[0]) == 4
    assert {job["trace_id"] for job in live[0]} == {TRACE_ID}

    report = await rebuild_projection(Ports(projection.store), (await bus_factory(service="rebuild")).js)

    assert (report.replayed, report.skipped) == (published, 0)
    assert await projection.snapshot() == live


async def test_the_live_consumer_goes_on_after_a_rebuild_without_applying_anything_twice(
    projection: Projection, bus_factory: BusFactory, job_events: type[JobEvents]
) -> None:
    published = await ingest(projection, bus_factory, job_events)
    await rebuild_projection(Ports(projection.store), (await bus_factory(service="rebuild")).js)
    late = job_events(projection.store, tenant_id="default", collection_id=new_id("col"))

    await (await bus_factory(service="test")).publish(late.uploaded())

    await eventually(projection.count_events, until=lambda n: n == published + 1, within_s=20)
    assert await projection.store.get("default", late.job_id) is not None


async def test_rebuild_of_an_empty_stream_empties_the_projection(
    projection: Projection, bus_factory: BusFactory, job_events: type[JobEvents]
) -> None:
    stray = job_events(projection.store, tenant_id="default", collection_id=new_id("col"))
    await stray.apply(stray.uploaded())  # a row the stream knows nothing of

    report = await rebuild_projection(Ports(projection.store), (await bus_factory(service="rebuild")).js)

    assert report.replayed == 0
    assert await projection.snapshot() == ([], [])


async def test_rebuild_command_rebuilds_the_projection_of_the_configured_servers(
    projection: Projection, bus_factory: BusFactory, isolated_nats: NatsServer, job_events: type[JobEvents]
) -> None:
    await ingest(projection, bus_factory, job_events)
    live = await projection.snapshot()
    env = python_env({"RAGSTREAM_NATS_URL": isolated_nats.url, "RAGSTREAM_POSTGRES_URL": projection.url})

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ragstream_progress", "rebuild", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, stderr.decode()
    assert "progress.rebuilt" in stderr.decode()
    assert await projection.snapshot() == live
