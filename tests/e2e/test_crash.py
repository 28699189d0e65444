"""kill -9 a stage while a multi-document batch is in flight: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import time

import pytest

from ragstream_devstack.e2e import Client, long_markdown
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id


async def wait_for_status(client: Client, job_ids: list[str], status: str, *, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for job_id in job_ids:
            if (await client.job(job_id))["status"] == status:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no job reached {status!r} within {within_s}s")


async def assert_all_indexed_exactly_once(client: Client, job_ids: list[str]) -> None:
    jobs = await client.wait_done(job_ids, within_s=240)
    assert [j["status"] for j in jobs] == ["indexed"] * len(jobs), [(j["file_name"], j["error"]) for j in jobs]
    for job in jobs:
        points = await client.points(job["document_id"])
        assert points == {"1": job["counts"]["chunks"]}, (job["file_name"], points, job["counts"])
        assert [h["status"] for h in job["history"]].count("indexed") == 1


async def upload_batch(client: Client, collection: str, count: int, *, seed: int) -> list[str]:
    job_ids = []
    for n in range(count):
        response = await client.upload(collection, f"report-{seed}-{n}.md", long_markdown(seed * 100 + n))
        assert response.status_code == 202, response.text
        job_ids.append(response.json()["job_id"])
    return job_ids


@pytest.mark.parametrize(
    ("service", "busy_status", "documents"),
    [("embedder", "embedding", 5), ("parser", "parsing", 8)],
)
async def test_stage_killed_mid_batch_loses_and_duplicates_nothing(
    client: Client, stack: Stack, service: str, busy_status: str, documents: int
) -> None:
    job_ids = await upload_batch(client, new_id(f"crash-{service}"), documents, seed=len(service))
    await wait_for_status(client, job_ids, busy_status)

    stack.kill_service(service)
    stack.start_service(service)

    await assert_all_indexed_exactly_once(client, job_ids)


async def test_progress_killed_rebuilds_the_same_job_state(client: Client, stack: Stack) -> None:
    job_ids = await upload_batch(client, new_id("crash-progress"), 3, seed=3)
    await wait_for_status(client, job_ids, "parsing")

    stack.kill_service("progress")
    stack.start_service("progress")

    jobs = await client.wait_done(job_ids, within_s=240)
    assert [j["status"] for j in jobs] == ["indexed"] * 3
    assert all(j["counts"]["chunks_embedded"] == j["counts"]["chunks"] > 0 for j in jobs)
