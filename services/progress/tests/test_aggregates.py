"""Progress of a collection and of a batch: counts by state, percents and ETA, in one query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import NewJob


async def test_collection_progress_counts_jobs_by_state(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    uploaded, released, parsing, embedding, paused = (new_job() for _ in range(5))
    indexed, failed, cancelled = new_job(), new_job(), new_job()
    await uploaded.apply(uploaded.uploaded())
    await released.apply(released.uploaded(), released.released())
    await parsing.apply(parsing.uploaded(), parsing.released(), parsing.parsing())
    await embedding.apply(
        embedding.uploaded(), embedding.parsed(pages=1, chunks=10), embedding.embedding(done=5, total=10)
    )
    await paused.apply(paused.uploaded(), paused.released(), paused.parsing(), paused.control("paused"))
    await indexed.run_to_indexed()
    await failed.apply(failed.uploaded(), failed.failed(stage="parsing", reason="unreadable"))
    await cancelled.apply(cancelled.uploaded(), cancelled.control("cancelled"))

    response = await client.get(f"/v1/collections/{collection_id}/progress")

    assert response.status_code == 200
    body = response.json()
    assert body["collection_id"] == collection_id
    assert body["total"] == 8
    assert body["counts"] == {"queued": 2, "running": 2, "done": 1, "failed": 1, "cancelled": 1, "paused": 1}
    assert body["percent"]["jobs"] == 37  # 3 of 8 finished


async def test_percent_by_chunks_counts_unparsed_jobs_at_the_average_chunk_count(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    done, half, queued = new_job(), new_job(), new_job()
    await done.run_to_indexed()  # 10 of 10 chunks
    await half.apply(half.uploaded(), half.parsed(pages=2, chunks=30), half.embedding(done=5, total=30))
    await queued.apply(queued.uploaded())  # counted as (10 + 30) / 2 = 20 chunks

    body = (await client.get(f"/v1/collections/{collection_id}/progress")).json()

    assert body["chunks"] == {"known": 40, "embedded": 15}
    assert body["percent"]["chunks"] == 25  # 15 of 60


async def test_percent_by_chunks_is_unknown_before_any_job_is_parsed(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    job = new_job()
    await job.apply(job.uploaded())

    body = (await client.get(f"/v1/collections/{collection_id}/progress")).json()

    assert body["percent"] == {"jobs": 0, "chunks": None}


async def test_collection_eta_is_remaining_chunks_over_the_backlogs_throughput(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    now = datetime.now(UTC)
    finished, running = new_job(), new_job()
    finished.at = running.at = now - timedelta(seconds=20)
    await finished.apply(finished.uploaded())
    await running.apply(running.uploaded(), running.parsed(pages=4, chunks=40))
    finished.at = now - timedelta(seconds=1)
    await finished.apply(finished.parsed(pages=4, chunks=40), finished.indexed(chunks=40))

    body = (await client.get(f"/v1/collections/{collection_id}/progress")).json()

    # 40 chunks embedded in the 20 s since the backlog began: 2 chunks/s; 40 left -> 20 s
    assert 19.0 <= body["eta_seconds"] <= 21.0


async def test_a_collection_whose_jobs_are_all_done_has_eta_zero(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    job = new_job()
    await job.run_to_indexed()

    body = (await client.get(f"/v1/collections/{collection_id}/progress")).json()

    assert (body["eta_seconds"], body["percent"]) == (0.0, {"jobs": 100, "chunks": 100})


async def test_a_collection_with_only_paused_work_has_no_eta(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.control("paused"))

    body = (await client.get(f"/v1/collections/{collection_id}/progress")).json()

    assert (body["counts"]["paused"], body["eta_seconds"]) == (1, None)


async def test_a_collection_without_jobs_has_zero_counts(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"/v1/collections/{new_id('col')}/progress")).json()

    assert (body["total"], body["eta_seconds"], body["updated_at"]) == (0, 0.0, None)


async def test_batch_progress_spans_collections_and_only_the_batch(client: httpx.AsyncClient, new_job: NewJob) -> None:
    batch = new_id("batch")
    here, there = new_job(batch_id=batch), new_job(batch_id=batch, collection_id=new_id("col"))
    outside = new_job()
    await here.run_to_indexed()
    await there.apply(there.uploaded())
    await outside.apply(outside.uploaded())

    response = await client.get(f"/v1/batches/{batch}/progress")

    body = response.json()
    assert (response.status_code, body["batch_id"], body["total"]) == (200, batch, 2)
    assert (body["counts"]["done"], body["counts"]["queued"], body["percent"]["jobs"]) == (1, 1, 50)


async def test_a_batch_without_jobs_is_404_with_a_readable_detail(client: httpx.AsyncClient) -> None:
    batch = new_id("batch")

    response = await client.get(f"/v1/batches/{batch}/progress")

    assert response.status_code == 404
    assert response.json()["detail"] == f"batch {batch!r} has no jobs (yet): its uploads may still be on their way"


async def test_batch_progress_is_scoped_by_tenant(client: httpx.AsyncClient, new_job: NewJob) -> None:
    batch = new_id("batch")
    theirs = new_job(tenant_id=new_id("tenant"), batch_id=batch)
    await theirs.apply(theirs.uploaded())

    as_default = await client.get(f"/v1/batches/{batch}/progress")
    as_owner = await client.get(f"/v1/batches/{batch}/progress", headers={"X-Tenant-Id": theirs.tenant_id})

    assert (as_default.status_code, as_owner.status_code) == (404, 200)
