"""REST and gRPC adapters of the progress service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from ragstream_core.errors import NotFound
from ragstream_core.events import timestamp_of
from ragstream_core.grpc_server import tenant_from
from ragstream_core.proto.ragstream.v1 import progress_pb2, progress_pb2_grpc
from ragstream_core.runtime import error_handlers
from ragstream_progress.feed import ChangeSignal, watch_changes
from ragstream_progress.projection import TERMINAL, JobStore

router = APIRouter(prefix="/v1")


def job_body(job: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a job."""
    body: dict[str, Any] = {
        "job_id": job["job_id"],
        "collection_id": job["collection_id"],
        "document_id": job["document_id"],
        "version": job["version"],
        "file_name": job["file_name"],
        "status": job["status"],
        "percent": job["percent"],
        "counts": {"pages": job["pages"], "chunks": job["chunks"], "chunks_embedded": job["chunks_embedded"]},
        "attempts": job["attempts"],
        "error": (
            {"stage": job["error_stage"], "reason": job["error_reason"]}
            if job["status"] in ("failed", "cancelled")
            else None
        ),
        "timestamps": job["timestamps"],
        "created_at": job["created_at"].isoformat(),
        "updated_at": job["updated_at"].isoformat(),
        "trace_id": job["trace_id"],
    }
    if "history" in job:
        body["history"] = [
            {
                "status": h["status"],
                "at": h["occurred_at"].isoformat(),
                "event_id": h["event_id"],
                "trace_id": h["trace_id"],
                "detail": h["detail"],
            }
            for h in job["history"]
        ]
    return body


def jobs_of(request: Request) -> JobStore:
    jobs: JobStore = request.app.state.jobs
    return jobs


Jobs = Annotated[JobStore, Depends(jobs_of)]


def tenant_of(request: Request, x_tenant_id: Annotated[str | None, Header()] = None) -> str:
    return x_tenant_id or str(request.app.state.default_tenant)


Tenant = Annotated[str, Depends(tenant_of)]


def feed_item(job: dict[str, Any] | None) -> dict[str, Any]:
    if job is None:
        return {"type": "heartbeat"}
    return {"type": "job", "position": int(job["change_seq"]), "job": job_body(job)}


@router.get("/jobs/events")
async def job_events(
    request: Request,
    jobs: Jobs,
    tenant: Tenant,
    collection_id: str | None = None,
    job_id: str | None = None,
    after: int = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: every job change after ``after`` (or ``Last-Event-ID``), then live."""
    signal: ChangeSignal = request.app.state.signal
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after

    async def stream() -> AsyncIterator[str]:
        async for job in watch_changes(jobs, signal, tenant, after=start, collection_id=collection_id, job_id=job_id):
            item = feed_item(job)
            if job is None:
                yield ": heartbeat\n\n"
            else:
                yield f"id: {item['position']}\nevent: job\ndata: {json.dumps(item['job'])}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.websocket("/jobs/stream")
async def job_stream(
    websocket: WebSocket,
    collection_id: str | None = None,
    job_id: str | None = None,
    after: int = 0,
) -> None:
    """WebSocket: every job change after ``after``, then live; each message carries its position."""
    app = websocket.app
    tenant = websocket.headers.get("x-tenant-id") or str(app.state.default_tenant)
    await websocket.accept()

    async def send_changes() -> None:
        async for job in watch_changes(
            app.state.jobs, app.state.signal, tenant, after=after, collection_id=collection_id, job_id=job_id
        ):
            await websocket.send_json(feed_item(job))

    async def until_disconnected() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; anything they send is ignored

    tasks = {asyncio.create_task(send_changes()), asyncio.create_task(until_disconnected())}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            # a client that went away ends the feed; anything else (the database) is an error
            if error is not None and not isinstance(error, WebSocketDisconnect | RuntimeError):
                raise error
    finally:
        for task in tasks:
            task.cancel()


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, jobs: Jobs, tenant: Tenant) -> dict[str, Any]:
    """One job: status, percent, counts, timestamps, error and history."""
    job = await jobs.get(tenant, job_id)
    if job is None:
        raise NotFound(f"job {job_id!r} is not known (yet): the upload may still be on its way")
    return job_body(job)


@router.get("/jobs")
async def list_jobs(
    jobs: Jobs,
    tenant: Tenant,
    collection_id: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(gt=0, le=1000)] = 100,
) -> dict[str, Any]:
    """Jobs, newest first, optionally filtered by collection and status."""
    rows = await jobs.list(tenant, collection_id=collection_id, status=status, limit=limit)
    return {"jobs": [job_body(r) for r in rows]}


def create_app(jobs: JobStore, *, default_tenant: str, signal: ChangeSignal | None = None) -> FastAPI:
    app = FastAPI(title="ragstream progress", version="0.1.0")
    app.state.jobs = jobs
    app.state.signal = signal
    app.state.default_tenant = default_tenant
    error_handlers(app)
    app.include_router(router)
    return app


def job_message(job: dict[str, Any]) -> progress_pb2.Job:
    return progress_pb2.Job(
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
    )


class ProgressServicer(progress_pb2_grpc.ProgressServiceServicer):
    """gRPC ``ProgressService``; the tenant comes from the ``x-tenant-id`` metadata."""

    def __init__(self, jobs: JobStore, *, default_tenant: str, watch_interval_s: float) -> None:
        self.jobs = jobs
        self.default_tenant = default_tenant
        self.watch_interval_s = watch_interval_s

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
        rows = await self.jobs.list(
            self._tenant(context),
            collection_id=request.collection_id or None,
            status=request.status or None,
            limit=request.limit or 100,
        )
        return progress_pb2.ListJobsResponse(jobs=[job_message(r) for r in rows])

    async def WatchJob(self, request: progress_pb2.GetJobRequest, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def,type-arg]
        """Stream the job each time it changes, ending when it reaches a final status."""
        tenant = self._tenant(context)
        last: tuple[Any, ...] | None = None
        while True:
            job = await self.jobs.get(tenant, request.job_id)
            if job is not None:
                key = (job["status"], job["percent"], job["updated_at"])
                if key != last:
                    last = key
                    yield job_message(job)
                if job["status"] in TERMINAL:
                    return
            await asyncio.sleep(self.watch_interval_s)
