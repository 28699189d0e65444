"""The live feed of job changes over WebSocket and SSE: in order, filtered, resumable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import websockets

from ragstream_core.runtime import serve_http
from ragstream_devstack.servers import Postgres, free_port, wait_for_port
from ragstream_devstack.testing import new_id
from ragstream_progress.api import create_app
from ragstream_progress.feed import ChangeSignal
from ragstream_progress.projection import JobStore

if TYPE_CHECKING:
    from conftest import NewJob


@pytest.fixture
async def server(jobs: JobStore, postgres: Postgres) -> AsyncIterator[str]:
    """A real progress HTTP server with the LISTEN/NOTIFY change signal; yields host:port."""
    signal = ChangeSignal(postgres.url)
    await signal.start()
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve_http(create_app(jobs, default_tenant="default", signal=signal), host="127.0.0.1", port=port, stop=stop)
    )
    await asyncio.to_thread(wait_for_port, port)
    yield f"127.0.0.1:{port}"
    stop.set()
    await task
    await signal.stop()


async def receive_jobs(ws: Any, count: int) -> list[dict[str, Any]]:
    items = []
    while len(items) < count:
        item = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        if item["type"] == "job":
            items.append(item)
    return items


async def test_websocket_streams_every_change_of_a_collection_in_order(
    server: str, new_job: NewJob, collection_id: str
) -> None:
    job = new_job()
    async with websockets.connect(f"ws://{server}/v1/jobs/stream?collection_id={collection_id}") as ws:
        await job.run_to_indexed()
        items = await receive_jobs(ws, 1)
        while items[-1]["job"]["status"] != "indexed":
            items += await receive_jobs(ws, 1)

    statuses = [i["job"]["status"] for i in items]
    positions = [i["position"] for i in items]
    assert statuses[-1] == "indexed"
    assert positions == sorted(positions)
    assert {i["job"]["job_id"] for i in items} == {job.job_id}


async def test_reconnecting_with_the_last_position_misses_nothing(
    server: str, new_job: NewJob, collection_id: str
) -> None:
    first, second = new_job(), new_job()
    async with websockets.connect(f"ws://{server}/v1/jobs/stream?collection_id={collection_id}") as ws:
        await first.apply(first.uploaded())
        (seen,) = await receive_jobs(ws, 1)

    await second.apply(second.uploaded())  # while disconnected
    await first.apply(first.parsing())
    async with websockets.connect(
        f"ws://{server}/v1/jobs/stream?collection_id={collection_id}&after={seen['position']}"
    ) as ws:
        missed = await receive_jobs(ws, 2)

    assert [(i["job"]["job_id"], i["job"]["status"]) for i in missed] == [
        (second.job_id, "uploaded"),
        (first.job_id, "parsing"),
    ]


async def test_server_sent_events_resume_from_last_event_id(server: str, new_job: NewJob, collection_id: str) -> None:
    job = new_job()
    await job.apply(job.uploaded())
    url = f"http://{server}/v1/jobs/events?job_id={job.job_id}"
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", url) as response:
            lines = response.aiter_lines()
            first_id = await anext(line async for line in lines if line.startswith("id: "))
        await job.apply(job.parsing())
        async with client.stream("GET", url, headers={"Last-Event-ID": first_id[4:]}) as response:
            data = await anext(line async for line in response.aiter_lines() if line.startswith("data: "))

    assert response.headers["content-type"].startswith("text/event-stream")
    assert json.loads(data[6:])["status"] == "parsing"


async def test_feed_shows_only_the_callers_tenant(server: str, new_job: NewJob, collection_id: str) -> None:
    theirs, ours = new_job(tenant_id="tenant-a"), new_job(tenant_id="tenant-b")
    async with websockets.connect(
        f"ws://{server}/v1/jobs/stream?collection_id={collection_id}", additional_headers={"X-Tenant-Id": "tenant-b"}
    ) as ws:
        await theirs.apply(theirs.uploaded())
        await ours.apply(ours.uploaded())
        (item,) = await receive_jobs(ws, 1)

    assert item["job"]["job_id"] == ours.job_id


async def test_websocket_feed_of_a_batch_shows_only_its_jobs(server: str, new_job: NewJob) -> None:
    batch = new_id("batch")
    outside, inside = new_job(), new_job(batch_id=batch)
    async with websockets.connect(f"ws://{server}/v1/jobs/stream?batch_id={batch}") as ws:
        await outside.apply(outside.uploaded())
        await inside.apply(inside.uploaded())
        (item,) = await receive_jobs(ws, 1)

    assert (item["job"]["job_id"], item["job"]["batch_id"]) == (inside.job_id, batch)
