"""The progress gRPC API on a real server: GetJob, ListJobs and WatchJob streaming a job to its end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.message import Message
from psycopg_pool import AsyncConnectionPool

from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import progress_pb2, progress_pb2_grpc
from ragstream_devstack.servers import Postgres, free_port
from ragstream_devstack.testing import new_id
from ragstream_progress.feed import ChangeSignal
from ragstream_progress.grpc_api import ProgressServicer
from ragstream_progress.projection import JobStore

if TYPE_CHECKING:
    from conftest import JobEvents, NewJob


@pytest.fixture(scope="module")
async def progress_stub(
    progress_pool: AsyncConnectionPool, postgres: Postgres
) -> AsyncIterator[progress_pb2_grpc.ProgressServiceStub]:
    """A client of a gRPC server built as the service builds it, over the session PostgreSQL."""
    signal = ChangeSignal(postgres.url)
    await signal.start()
    servicer = ProgressServicer(JobStore(progress_pool), default_tenant="default", watch_interval_s=0.02, signal=signal)
    port = free_port()
    server = await start_grpc_server(
        [lambda s: progress_pb2_grpc.add_ProgressServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.ProgressService"],
        host="127.0.0.1",
        port=port,
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield progress_pb2_grpc.ProgressServiceStub(channel)  # type: ignore[no-untyped-call]
    await server.stop(grace=None)
    await signal.stop()


def tenant(job: JobEvents) -> tuple[tuple[str, str]]:
    return (("x-tenant-id", job.tenant_id),)


async def test_get_job_returns_the_projected_job(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.parsing(), job.parsed(pages=4, chunks=10))

    found = await progress_stub.GetJob(progress_pb2.GetJobRequest(job_id=job.job_id))

    assert (found.job_id, found.tenant_id, found.document_id, found.status, found.percent) == (
        job.job_id,
        "default",
        job.document_id,
        "parsed",
        40,
    )
    assert (found.pages, found.chunks, found.chunks_embedded) == (4, 10, 0)
    assert found.trace_id == job.trace_id
    assert found.created_at.ToDatetime() <= found.updated_at.ToDatetime()


async def test_get_job_of_a_failed_job_carries_the_error(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.failed(stage="embedding", reason="model missing"))

    found = await progress_stub.GetJob(progress_pb2.GetJobRequest(job_id=job.job_id))

    assert (found.status, found.error_stage, found.error_reason) == ("failed", "embedding", "model missing")


async def test_get_job_of_an_unknown_job_is_not_found(progress_stub: progress_pb2_grpc.ProgressServiceStub) -> None:
    missing = new_id("job")

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await progress_stub.GetJob(progress_pb2.GetJobRequest(job_id=missing))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing in (raised.value.details() or "")


async def test_get_job_of_another_tenant_is_not_found(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    job = new_job(tenant_id=new_id("tenant"))
    await job.apply(job.uploaded())

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await progress_stub.GetJob(progress_pb2.GetJobRequest(job_id=job.job_id))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    found = await progress_stub.GetJob(progress_pb2.GetJobRequest(job_id=job.job_id), metadata=tenant(job))
    assert found.job_id == job.job_id


async def test_list_jobs_filters_by_collection_and_status(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob, collection_id: str
) -> None:
    indexed, uploaded = new_job(), new_job()
    await indexed.run_to_indexed()
    await uploaded.apply(uploaded.uploaded())

    listed = await progress_stub.ListJobs(progress_pb2.ListJobsRequest(collection_id=collection_id, status="indexed"))

    assert [j.job_id for j in listed.jobs] == [indexed.job_id]


async def test_watch_job_streams_each_change_until_indexed(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    job = new_job()
    await job.apply(job.uploaded())
    # each change is applied only once the previous one was streamed, so none is coalesced
    pending: list[Callable[[], Message]] = [
        job.parsing,
        lambda: job.parsed(pages=4, chunks=10),
        lambda: job.embedding(done=5, total=10),
        lambda: job.embedding(done=10, total=10),
        lambda: job.indexed(chunks=10),
    ]
    streamed: list[tuple[str, int]] = []

    async for update in progress_stub.WatchJob(progress_pb2.GetJobRequest(job_id=job.job_id)):
        streamed.append((update.status, update.percent))
        if pending:
            await job.apply(pending.pop(0)())

    assert streamed == [
        ("uploaded", 0),
        ("parsing", 10),
        ("parsed", 40),
        ("embedding", 67),
        ("embedding", 95),
        ("indexed", 100),
    ]


async def test_watch_job_of_a_failed_job_ends_with_its_failure(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.failed(stage="parsing", reason="unreadable"))

    streamed = [u async for u in progress_stub.WatchJob(progress_pb2.GetJobRequest(job_id=job.job_id))]

    assert [(u.status, u.error_reason) for u in streamed] == [("failed", "unreadable")]


async def test_get_job_carries_batch_priority_run_pause_hint_and_stage(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    job = new_job(batch_id=new_id("batch"), priority="bulk")
    await job.apply(job.uploaded(), job.failed(stage="parsing", reason="encrypted", hint="upload it unencrypted"))
    job.retry = 1
    await job.apply(job.control("retried"), job.control("paused"))

    found = await progress_stub.GetJob(progress_pb2.GetJobRequest(job_id=job.job_id))

    assert (found.batch_id, found.priority, found.retry, found.paused) == (job.batch_id, "bulk", 1, True)
    assert (found.status, found.stage, found.hint, found.attempts) == ("uploaded", "queued", "", 1)
    assert not found.HasField("eta_seconds")
    assert not found.timings.HasField("queued_seconds")


async def test_get_job_of_an_indexed_job_has_eta_zero_and_timings(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    job = new_job()
    await job.run_to_indexed()

    found = await progress_stub.GetJob(progress_pb2.GetJobRequest(job_id=job.job_id))

    assert found.HasField("eta_seconds")
    assert found.eta_seconds == 0.0
    assert found.timings.HasField("embed_seconds")
    assert (found.pages_parsed, found.stage) == (4, "indexed")


async def test_list_jobs_pages_with_a_cursor_and_filters_by_status_list_and_batch(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob, collection_id: str
) -> None:
    batch = new_id("batch")
    made = [new_job(batch_id=batch) for _ in range(3)]
    for job in made:
        await job.apply(job.uploaded())
    await made[0].apply(made[0].failed(stage="parsing", reason="x"))
    outside = new_job()
    await outside.apply(outside.uploaded())

    first = await progress_stub.ListJobs(progress_pb2.ListJobsRequest(batch_id=batch, limit=2))
    second = await progress_stub.ListJobs(
        progress_pb2.ListJobsRequest(batch_id=batch, limit=2, cursor=first.next_cursor)
    )
    failed_or_queued = await progress_stub.ListJobs(
        progress_pb2.ListJobsRequest(collection_id=collection_id, status="failed,uploaded", stage="parsing")
    )

    assert [j.job_id for j in [*first.jobs, *second.jobs]] == [j.job_id for j in reversed(made)]
    assert second.next_cursor == ""
    assert [j.job_id for j in failed_or_queued.jobs] == [made[0].job_id]


async def test_list_jobs_with_a_bad_cursor_is_invalid_argument(
    progress_stub: progress_pb2_grpc.ProgressServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await progress_stub.ListJobs(progress_pb2.ListJobsRequest(cursor="nonsense"))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_watch_jobs_streams_every_change_of_a_batch_and_resumes_from_a_position(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    batch = new_id("batch")
    first, second, outside = new_job(batch_id=batch), new_job(batch_id=batch), new_job()
    await first.apply(first.uploaded())
    await outside.apply(outside.uploaded())

    watch = progress_stub.WatchJobs(progress_pb2.WatchJobsRequest(batch_id=batch))
    stream = aiter(watch)
    seen = [await anext(stream)]
    await second.apply(second.uploaded())
    seen.append(await anext(stream))
    await first.apply(first.released())
    seen.append(await anext(stream))
    watch.cancel()

    await second.apply(second.released())  # while nobody watches
    resumed = progress_stub.WatchJobs(progress_pb2.WatchJobsRequest(batch_id=batch, after=seen[-1].position))
    missed = await anext(aiter(resumed))
    resumed.cancel()

    assert [(c.job.job_id, c.job.status) for c in seen] == [
        (first.job_id, "uploaded"),
        (second.job_id, "uploaded"),
        (first.job_id, "released"),
    ]
    assert [c.position for c in seen] == sorted(c.position for c in seen)
    assert (missed.job.job_id, missed.job.status) == (second.job_id, "released")


async def test_watch_jobs_of_one_job_shows_only_that_job(
    progress_stub: progress_pb2_grpc.ProgressServiceStub, new_job: NewJob
) -> None:
    job, other = new_job(), new_job()
    await other.apply(other.uploaded())
    await job.apply(job.uploaded())

    watch = progress_stub.WatchJobs(progress_pb2.WatchJobsRequest(job_id=job.job_id))
    change = await anext(aiter(watch))
    watch.cancel()

    assert change.job.job_id == job.job_id
