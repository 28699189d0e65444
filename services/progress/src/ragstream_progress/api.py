"""REST adapters of the progress service: jobs, their live feed, and progress of collections and batches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from ragstream_core.auth import Authenticator, Caller, authorize
from ragstream_core.errors import NotFound
from ragstream_core.runtime import error_handlers
from ragstream_progress.feed import ChangeSignal, watch_changes
from ragstream_progress.projection import JobStore
from ragstream_progress.queries import JobFilter

router = APIRouter(prefix="/v1")


def job_body(job: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a job."""
    body: dict[str, Any] = {
        "job_id": job["job_id"],
        "collection_id": job["collection_id"],
        "document_id": job["document_id"],
        "version": job["version"],
        "file_name": job["file_name"],
        "batch_id": job["batch_id"] or None,
        "status": job["status"],
        "stage": job["stage"],
        "paused": job["paused"],
        "priority": job["priority"],
        "retry": job["retry"],
        "percent": job["percent"],
        "eta_seconds": job["eta_seconds"],
        "counts": {
            "pages": job["pages"],
            "pages_parsed": job["pages_parsed"],
            "chunks": job["chunks"],
            "chunks_embedded": job["chunks_embedded"],
        },
        "attempts": job["attempts"],
        "error": (
            {"stage": job["error_stage"], "reason": job["error_reason"], "hint": job["error_hint"]}
            if job["status"] in ("failed", "cancelled")
            else None
        ),
        "timestamps": job["timestamps"],
        "timings": job["timings"],
        "created_at": job["created_at"].isoformat(),
        "updated_at": job["updated_at"].isoformat(),
        "trace_id": job["trace_id"],
    }
    if "history" in job:
        body["history"] = [
            {
                "status": h["status"],
                "retry": h["retry"],
                "at": h["occurred_at"].isoformat(),
                "event_id": h["event_id"],
                "trace_id": h["trace_id"],
                "detail": h["detail"],
            }
            for h in job["history"]
        ]
    return body


def progress_body(aggregate: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a collection's or batch's progress."""
    updated_at: datetime | None = aggregate["updated_at"]
    return {**aggregate, "updated_at": updated_at.isoformat() if updated_at else None}


def jobs_of(request: Request) -> JobStore:
    jobs: JobStore = request.app.state.jobs
    return jobs


Jobs = Annotated[JobStore, Depends(jobs_of)]


def tenant_of(caller: Caller) -> str:
    """The caller's tenant: its API key's (``keys`` mode) or ``X-Tenant-Id`` (``open`` mode)."""
    return caller.tenant_id


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
    batch_id: str | None = None,
    job_id: str | None = None,
    after: int = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: every job change after ``after`` (or ``Last-Event-ID``), then live."""
    signal: ChangeSignal = request.app.state.signal
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    filters = JobFilter.of(collection_id=collection_id, batch_id=batch_id, job_id=job_id)

    async def stream() -> AsyncIterator[str]:
        async for job in watch_changes(jobs, signal, tenant, after=start, filters=filters):
            item = feed_item(job)
            if job is None:
                yield ": heartbeat\n\n"
            else:
                yield f"id: {item['position']}\nevent: job\ndata: {json.dumps(item['job'])}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.websocket("/jobs/stream")
async def job_stream(
    websocket: WebSocket,
    caller: Caller,
    collection_id: str | None = None,
    batch_id: str | None = None,
    job_id: str | None = None,
    after: int = 0,
) -> None:
    """WebSocket: every job change after ``after``, then live; each message carries its position."""
    app = websocket.app
    tenant = caller.tenant_id
    filters = JobFilter.of(collection_id=collection_id, batch_id=batch_id, job_id=job_id)
    await websocket.accept()

    async def send_changes() -> None:
        async for job in watch_changes(app.state.jobs, app.state.signal, tenant, after=after, filters=filters):
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
    """One job: status, stage, percent, ETA, counts, timestamps, timings, error and history."""
    job = await jobs.get(tenant, job_id)
    if job is None:
        raise NotFound(f"job {job_id!r} is not known (yet): the upload may still be on its way")
    return job_body(job)


@router.get("/jobs")
async def list_jobs(
    jobs: Jobs,
    tenant: Tenant,
    collection_id: str | None = None,
    status: Annotated[str | None, Query(description="One status or a comma-separated list.")] = None,
    stage: Annotated[
        str | None, Query(description="queued, parsing, embedding, indexed, ...; failed jobs: where they stopped.")
    ] = None,
    batch_id: str | None = None,
    document_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: Annotated[str | None, Query(description="The next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(gt=0, le=1000)] = 100,
) -> dict[str, Any]:
    """Jobs newest first, filtered, a page at a time: pass ``next_cursor`` as ``cursor`` for the next."""
    filters = JobFilter.of(
        collection_id=collection_id,
        status=status,
        stage=stage,
        batch_id=batch_id,
        document_id=document_id,
        created_after=created_after,
        created_before=created_before,
    )
    rows, next_cursor = await jobs.list(tenant, filters, limit=limit, cursor=cursor)
    return {"jobs": [job_body(r) for r in rows], "next_cursor": next_cursor}


@router.get("/collections/{collection_id}/progress")
async def collection_progress(collection_id: str, jobs: Jobs, tenant: Tenant) -> dict[str, Any]:
    """Counts by state, percent (by jobs and by chunks) and ETA of a collection's jobs."""
    aggregate = await jobs.aggregate(tenant, JobFilter(collection_id=collection_id))
    return {"collection_id": collection_id, **progress_body(aggregate)}


@router.get("/batches/{batch_id}/progress")
async def batch_progress(batch_id: str, jobs: Jobs, tenant: Tenant) -> dict[str, Any]:
    """Counts by state, percent (by jobs and by chunks) and ETA of a batch's jobs."""
    aggregate = await jobs.aggregate(tenant, JobFilter(batch_id=batch_id))
    if aggregate["total"] == 0:
        raise NotFound(f"batch {batch_id!r} has no jobs (yet): its uploads may still be on their way")
    return {"batch_id": batch_id, **progress_body(aggregate)}


def create_app(
    jobs: JobStore,
    *,
    default_tenant: str,
    signal: ChangeSignal | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """The progress app: reading only, so every route needs a viewer; ``authenticator`` decides
    (default: ``open`` mode, for tests of other concerns: ``main`` passes the configured one)."""
    app = FastAPI(title="ragstream progress", version="0.1.0")
    app.state.jobs = jobs
    app.state.signal = signal
    app.state.default_tenant = default_tenant
    app.state.authenticator = authenticator or Authenticator(mode="open", default_tenant=default_tenant)
    error_handlers(app)
    app.include_router(router, dependencies=[Depends(authorize)])
    return app
