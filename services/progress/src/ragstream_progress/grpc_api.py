"""gRPC adapter of the progress service: ``ProgressService`` over the job store and the change feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ragstream_core.errors import NotFound
from ragstream_core.events import timestamp_of
from ragstream_core.grpc_server import tenant_from
from ragstream_core.proto.ragstream.v1 import progress_pb2, progress_pb2_grpc
from ragstream_progress.feed import ChangeSignal, watch_changes
from ragstream_progress.projection import TERMINAL, JobStore
from ragstream_progress.queries import JobFilter


def job_message(job: dict[str, Any]) -> progress_pb2.Job:
    """A projected job as the ``Job`` message (``eta_seconds`` and timings unset while unknown)."""
    message = progress_pb2.Job(
        job_id=job["job_id"],
        tenant_id=job["tenant_id"],
        collection_id=job["collection_id"],
        document_id=job["document_id"],
        version=job["version"],
        file_name=job["file_name"],
        status=job["status"],
        percent=job["percent"],
        pages=job["pages"],
        chunks=job["chunks"],
        chunks_embedded=job["chunks_embedded"],
        error_stage=job["error_stage"] or "",
        error_reason=job["error_reason"] or "",
        created_at=timestamp_of(job["created_at"]),
        updated_at=timestamp_of(job["updated_at"]),
        trace_id=job["trace_id"],
        batch_id=job["batch_id"],
        priority=job["priority"],
        paused=job["paused"],
        retry=job["retry"],
        hint=job["error_hint"] or "",
        timings=progress_pb2.StageTimings(**{k: v for k, v in job["timings"].items() if v is not None}),
        stage=job["stage"],
        pages_parsed=job["pages_parsed"],
        attempts=job["attempts"],
    )
    if job["eta_seconds"] is not None:
        message.eta_seconds = job["eta_seconds"]
    return message


def _datetime(request: Any, name: str) -> datetime | None:
    if not request.HasField(name):
        return None
    value: Timestamp = getattr(request, name)
    return value.ToDatetime(tzinfo=UTC)


class ProgressServicer(progress_pb2_grpc.ProgressServiceServicer):
    """gRPC ``ProgressService``; the tenant comes from the ``x-tenant-id`` metadata."""

    def __init__(self, jobs: JobStore, *, default_tenant: str, watch_interval_s: float, signal: ChangeSignal) -> None:
        self.jobs = jobs
        self.default_tenant = default_tenant
        self.watch_interval_s = watch_interval_s
        self.signal = signal

    def _tenant(self, context: grpc.aio.ServicerContext) -> str:  # type: ignore[type-arg]
        return tenant_from(context, self.default_tenant)

    async def GetJob(self, request: progress_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> progress_pb2.Job:  # type: ignore[type-arg]
        job = await self.jobs.get(self._tenant(context), request.job_id)
        if job is None:
            raise NotFound(f"job {request.job_id!r} is not known")
        return job_message(job)

    async def ListJobs(
        self,
        request: progress_pb2.ListJobsRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> progress_pb2.ListJobsResponse:
        filters = JobFilter.of(
            collection_id=request.collection_id,
            status=request.status,
            stage=request.stage,
            batch_id=request.batch_id,
            document_id=request.document_id,
            created_after=_datetime(request, "created_after"),
            created_before=_datetime(request, "created_before"),
        )
        rows, next_cursor = await self.jobs.list(
            self._tenant(context), filters, limit=min(request.limit or 100, 1000), cursor=request.cursor or None
        )
        return progress_pb2.ListJobsResponse(jobs=[job_message(r) for r in rows], next_cursor=next_cursor or "")

    async def WatchJob(self, request: progress_pb2.GetJobRequest, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def,type-arg]
        """Stream the job each time it changes, ending when it reaches a final status."""
        tenant = self._tenant(context)
        last: tuple[Any, ...] | None = None
        while True:
            job = await self.jobs.get(tenant, request.job_id)
            if job is not None:
                key = (job["status"], job["percent"], job["updated_at"], job["paused"], job["retry"])
                if key != last:
                    last = key
                    yield job_message(job)
                if job["status"] in TERMINAL:
                    return
            await asyncio.sleep(self.watch_interval_s)

    async def WatchJobs(
        self,
        request: progress_pb2.WatchJobsRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> AsyncIterator[progress_pb2.JobChange]:
        """Every change of the matching jobs after ``request.after``, then live, until cancelled."""
        filters = JobFilter.of(collection_id=request.collection_id, batch_id=request.batch_id, job_id=request.job_id)
        changes = watch_changes(self.jobs, self.signal, self._tenant(context), after=request.after, filters=filters)
        async for job in changes:
            if job is not None:  # gRPC keeps the connection alive itself: heartbeats are not sent
                yield progress_pb2.JobChange(position=int(job["change_seq"]), job=job_message(job))
