"""Job control: the queue of versions waiting to be processed, the scheduler that releases them,
and the orders that steer them (pause, resume, cancel, retry, priority), plus stall recovery.

How work is released (``release_ready``):

- A new version waits in the gateway's queue (``released_at`` NULL) until released to the
  parser as ``DocReleased``. At most ``max_released_jobs`` jobs are released and unfinished.
- Lanes first: ``high`` (interactive) before ``normal`` before ``bulk``; within a lane each
  collection's jobs go in upload order (FIFO).
- Across collections, fair: the collection with the fewest jobs in flight goes next, and a
  collection holding ``collection_concurrency`` jobs (its cap, default 3) gets more only when
  no other collection's work is waiting (work-conserving: an idle system gives a lone bulk
  load its full speed; a second tenant's upload is released at once, ahead of the bulk's
  extra work). ``strict_caps`` makes the cap absolute.
- Paused jobs, and the jobs of paused collections and batches, stay queued.

Releases run under a transaction-scoped advisory lock, so several gateways never release the
same job twice; a release is recorded only after ``DocReleased`` is stored in JetStream, and a
repeated release of the same run carries the same message id (dropped as a duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import structlog
from google.protobuf.message import Message
from opentelemetry import propagate, trace

from ragstream_core.bus import Delivery
from ragstream_core.control import JobControl
from ragstream_core.errors import Conflict, InvalidInput, NotFound
from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocParsed,
    DocReleased,
    IndexUpdated,
    JobControlled,
    JobFailed,
    StageProgress,
)
from ragstream_gateway.handlers import document_uploaded, job_meta
from ragstream_gateway.ports import GatewayPorts, registry_caught_up
from ragstream_gateway.repository import VersionRow, audit

log = structlog.get_logger(__name__)
tracer = trace.get_tracer("ragstream.gateway.jobs")

LANES = ("high", "normal", "bulk")
_RELEASE_LOCK = 0x5245_4C53  # "RELS"

_RELEASABLE = """
WITH live AS (
    SELECT v.job_id, v.created_at, v.released_at, v.published_at, v.priority, v.paused, v.batch_id, d.tenant_id,
           d.collection_id
    FROM gateway.document_versions v JOIN gateway.documents d USING (document_id)
    WHERE v.status = 'processing' AND d.deleted_at IS NULL
),
running AS (
    SELECT tenant_id, collection_id, count(*) AS n FROM live WHERE released_at IS NOT NULL GROUP BY 1, 2
),
queued AS (
    SELECT l.*, CASE l.priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END AS lane,
           row_number() OVER (PARTITION BY l.tenant_id, l.collection_id
               ORDER BY CASE l.priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END, l.created_at) AS pos
    FROM live l
    JOIN gateway.collections c USING (tenant_id, collection_id)
    LEFT JOIN gateway.batches b ON b.tenant_id = l.tenant_id AND b.batch_id = l.batch_id
    -- released only once announced: doc.released never precedes the job's doc.uploaded in the stream
    WHERE l.released_at IS NULL AND l.published_at IS NOT NULL
      AND NOT l.paused AND NOT c.paused AND NOT COALESCE(b.paused, false)
)
SELECT q.job_id,
       q.pos + COALESCE(r.n, 0) > COALESCE(c.max_concurrent, %(cap)s) AS over_cap
FROM queued q
JOIN gateway.collections c USING (tenant_id, collection_id)
LEFT JOIN running r USING (tenant_id, collection_id)
WHERE NOT %(strict)s OR q.pos + COALESCE(r.n, 0) <= COALESCE(c.max_concurrent, %(cap)s)
ORDER BY over_cap, q.lane, q.pos + COALESCE(r.n, 0), q.created_at
LIMIT GREATEST(%(window)s - (SELECT count(*) FROM live WHERE released_at IS NOT NULL), 0)
"""


async def release_ready(ports: GatewayPorts) -> int:
    """Release every job the lanes, caps and window allow now; returns how many."""
    settings = ports.settings
    released = 0
    async with ports.documents.pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RELEASE_LOCK,))
        cur = await conn.execute(
            _RELEASABLE,
            {
                "cap": settings.collection_concurrency,
                "strict": settings.strict_caps,
                "window": settings.max_released_jobs,
            },
        )
        job_ids = [str(r[0]) for r in await cur.fetchall()]
        if not job_ids:
            return 0
        rows = await ports.documents.versions_of_jobs(job_ids)
        collections: dict[tuple[str, str], Any] = {}
        for job_id in job_ids:
            row = rows[job_id]
            key = (row.tenant_id, row.collection_id)
            if key not in collections:
                collections[key] = await ports.documents.get_collection(*key)
            upload = document_uploaded(row, collections[key])
            # the release continues the upload's trace: one trace from the request to the answer
            parent = propagate.extract({"traceparent": row.traceparent} if row.traceparent else {})
            with tracer.start_as_current_span("release job", context=parent, attributes={"job_id": job_id}):
                await ports.events.publish(DocReleased(meta=job_meta(row, retry=row.retry), upload=upload))
            await conn.execute(
                "UPDATE gateway.document_versions SET released_at = now(), last_event_at = now() WHERE job_id = %s",
                (job_id,),
            )
            released += 1
    log.info("jobs.released", count=released)
    return released


async def run_scheduler(ports: GatewayPorts, stop: asyncio.Event, wake: asyncio.Event) -> None:
    """Release work whenever woken (an upload, a finished job, an order) and at least every interval;
    find stalled jobs every ``stall_check_s``."""
    settings = ports.settings
    last_stall_check = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.schedule_interval_s)
        wake.clear()
        try:
            await release_ready(ports)
            if loop.time() - last_stall_check >= settings.stall_check_s:
                last_stall_check = loop.time()
                await recover_stalled(ports)
        except Exception as exc:  # a dependency is down: the next round tries again
            log.warning("jobs.schedule_failed", error=str(exc) or type(exc).__name__)


# ---- orders -----------------------------------------------------------------------------------


async def get_job(ports: GatewayPorts, tenant_id: str, job_id: str) -> VersionRow:
    rows = await ports.documents.versions_of_jobs([job_id])
    row = rows.get(job_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"job {job_id!r} does not exist")
    return row


async def _announce(
    ports: GatewayPorts, row: VersionRow, action: str, actor: str, *, reason: str = "", retry: int | None = None
) -> None:
    await ports.events.publish(
        JobControlled(
            meta=job_meta(row, retry=row.retry if retry is None else retry),
            action=action,
            actor=actor,
            reason=reason,
            control_id=uuid.uuid4().hex[:12],
        )
    )


async def _record(ports: GatewayPorts, row: VersionRow, action: str, actor: str, **detail: Any) -> None:
    await ports.documents.record(
        tenant_id=row.tenant_id,
        actor=actor,
        action=f"job.{action}",
        outcome="done",
        collection_id=row.collection_id,
        document_id=row.document_id,
        version=row.version,
        job_id=row.job_id,
        **detail,
    )


async def _update(ports: GatewayPorts, sql: str, params: tuple[Any, ...]) -> list[str]:
    async with ports.documents.pool.connection() as conn:
        cur = await conn.execute(sql, params)
        return [str(r[0]) for r in await cur.fetchall()]


async def pause_job(ports: GatewayPorts, control: JobControl, tenant_id: str, job_id: str, *, actor: str) -> VersionRow:
    """Hold a job: a queued one stays queued; a running one stops at its next stage boundary and
    goes back to the queue (nothing of the stopped run shows)."""
    row = await get_job(ports, tenant_id, job_id)
    if row.status != "processing":
        raise Conflict(f"job {job_id!r} is {row.status}; only unfinished jobs can be paused", status=row.status)
    await _update(
        ports, "UPDATE gateway.document_versions SET paused = true WHERE job_id = %s RETURNING job_id", (job_id,)
    )
    if row.released_at is not None:
        await control.order(job_id, "paused", retry=row.retry, actor=actor)
    await _announce(ports, row, "paused", actor)
    await _record(ports, row, "pause", actor)
    return await get_job(ports, tenant_id, job_id)


async def resume_job(
    ports: GatewayPorts, control: JobControl, tenant_id: str, job_id: str, *, actor: str
) -> VersionRow:
    row = await get_job(ports, tenant_id, job_id)
    if not row.paused:
        return row
    await _update(
        ports, "UPDATE gateway.document_versions SET paused = false WHERE job_id = %s RETURNING job_id", (job_id,)
    )
    await control.clear(job_id)
    await _announce(ports, row, "resumed", actor)
    await _record(ports, row, "resume", actor)
    return await get_job(ports, tenant_id, job_id)


async def cancel_job(
    ports: GatewayPorts, control: JobControl, tenant_id: str, job_id: str, *, actor: str
) -> VersionRow:
    """Cancel a job: a queued one at once; a running one at its next stage boundary (its partial
    points are never activated, so no half-indexed version becomes visible)."""
    row = await get_job(ports, tenant_id, job_id)
    if row.status != "processing":
        raise Conflict(f"job {job_id!r} is {row.status}; only unfinished jobs can be cancelled", status=row.status)
    if row.released_at is None:
        cancelled = await _update(
            ports,
            "UPDATE gateway.document_versions SET status = 'cancelled', error = %s, finished_at = now()"
            " WHERE job_id = %s AND status = 'processing' AND released_at IS NULL RETURNING job_id",
            (f"cancelled by {actor}", job_id),
        )
        if cancelled:
            await ports.events.publish(
                JobFailed(
                    meta=job_meta(row, retry=row.retry),
                    stage="queued",
                    reason=f"cancelled by {actor} before it started",
                    attempts=0,
                    error_type="Cancelled",
                    retryable=False,
                )
            )
            await _record(ports, row, "cancel", actor, stage="queued")
            return await get_job(ports, tenant_id, job_id)
    await _update(
        ports,
        "UPDATE gateway.document_versions SET cancel_requested = true WHERE job_id = %s RETURNING job_id",
        (job_id,),
    )
    await control.order(job_id, "cancelled", retry=row.retry, actor=actor)
    await _announce(ports, row, "cancelled", actor, reason="stops at the next stage boundary")
    await _record(ports, row, "cancel", actor, stage="running")
    return await get_job(ports, tenant_id, job_id)


async def retry_job(ports: GatewayPorts, control: JobControl, tenant_id: str, job_id: str, *, actor: str) -> VersionRow:
    """Run a failed or cancelled job again from the start, as a new run (``retry`` + 1)."""
    row = await get_job(ports, tenant_id, job_id)
    if row.status == "processing" and await registry_caught_up(ports.events):
        # its failure may be known to the progress service and not to this registry yet
        row = await get_job(ports, tenant_id, job_id)
    if row.deleted_at is not None:
        raise Conflict(f"the document of job {job_id!r} was deleted; upload it again")
    if row.status not in ("failed", "cancelled"):
        raise Conflict(
            f"job {job_id!r} is {row.status}; only failed or cancelled jobs can be retried", status=row.status
        )
    await _update(
        ports,
        "UPDATE gateway.document_versions SET status = 'processing', retry = retry + 1, released_at = NULL,"
        " paused = false, cancel_requested = false, error = NULL, finished_at = NULL, redrives = 0"
        " WHERE job_id = %s RETURNING job_id",
        (job_id,),
    )
    await control.clear(job_id)
    fresh = await get_job(ports, tenant_id, job_id)
    await _announce(ports, fresh, "retried", actor)
    await _record(ports, fresh, "retry", actor, retry=fresh.retry)
    return fresh


async def prioritize_job(ports: GatewayPorts, tenant_id: str, job_id: str, priority: str, *, actor: str) -> VersionRow:
    if priority not in LANES:
        raise InvalidInput(f"priority {priority!r} is not a lane; accepted: {', '.join(LANES)}")
    row = await get_job(ports, tenant_id, job_id)
    await _update(
        ports,
        "UPDATE gateway.document_versions SET priority = %s WHERE job_id = %s RETURNING job_id",
        (priority, job_id),
    )
    fresh = await get_job(ports, tenant_id, job_id)
    await _announce(ports, fresh, "prioritized", actor, reason=f"{row.priority} -> {priority}")
    await _record(ports, fresh, "prioritize", actor, priority=priority)
    return fresh


async def _group_jobs(
    ports: GatewayPorts, tenant_id: str, *, collection_id: str | None, batch_id: str | None
) -> list[str]:
    column, value = ("d.collection_id", collection_id) if collection_id else ("v.batch_id", batch_id)
    async with ports.documents.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT v.job_id FROM gateway.document_versions v JOIN gateway.documents d USING (document_id)"
            f" WHERE d.tenant_id = %s AND {column} = %s AND v.status = 'processing' ORDER BY v.created_at",
            (tenant_id, value),
        )
        return [str(r[0]) for r in await cur.fetchall()]


async def steer_group(
    ports: GatewayPorts,
    control: JobControl,
    tenant_id: str,
    action: str,
    *,
    actor: str,
    collection_id: str | None = None,
    batch_id: str | None = None,
) -> dict[str, Any]:
    """Pause, resume or cancel a collection's or a batch's work.

    Pause holds the group's queued jobs (and jobs queued into it later) while running ones
    finish; resume releases them in their order; cancel ends queued jobs at once and running
    ones at their next stage boundary.
    """
    if action not in ("pause", "resume", "cancel"):
        raise InvalidInput(f"action {action!r} is not known; accepted: pause, resume, cancel")
    async with ports.documents.pool.connection() as conn, conn.transaction():
        if collection_id:
            cur = await conn.execute(
                "UPDATE gateway.collections SET paused = %s WHERE tenant_id = %s AND collection_id = %s"
                " AND deleted_at IS NULL RETURNING 1",
                (action == "pause", tenant_id, collection_id),
            )
            if await cur.fetchone() is None:
                raise NotFound(f"collection {collection_id!r} does not exist")
        else:
            cur = await conn.execute(
                "UPDATE gateway.batches SET paused = %s WHERE tenant_id = %s AND batch_id = %s RETURNING 1",
                (action == "pause", tenant_id, batch_id),
            )
            if await cur.fetchone() is None:
                raise NotFound(f"batch {batch_id!r} does not exist")
        await audit(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action=f"{'collection' if collection_id else 'batch'}.{action}",
            outcome="done",
            collection_id=collection_id,
            batch_id=batch_id,
        )
    jobs = await _group_jobs(ports, tenant_id, collection_id=collection_id, batch_id=batch_id)
    if action == "cancel":
        for job_id in jobs:
            with contextlib.suppress(Conflict):
                await cancel_job(ports, control, tenant_id, job_id, actor=actor)
    return {"action": action, "collection_id": collection_id, "batch_id": batch_id, "unfinished_jobs": jobs}


# ---- what the stages report ----------------------------------------------------------------------


async def job_requeued(ports: GatewayPorts, job_id: str, retry: int) -> None:
    """A stage stopped a paused run: the job waits in the queue again, as its next run."""
    await _update(
        ports,
        "UPDATE gateway.document_versions SET released_at = NULL, retry = retry + 1"
        " WHERE job_id = %s AND retry = %s AND status = 'processing' RETURNING job_id",
        (job_id, retry),
    )


async def job_progressed(ports: GatewayPorts, job_id: str, *, parsed: bool = False) -> None:
    await _update(
        ports,
        "UPDATE gateway.document_versions SET last_event_at = now()"
        + (", parsed_at = COALESCE(parsed_at, now())" if parsed else "")
        + " WHERE job_id = %s AND status = 'processing' RETURNING job_id",
        (job_id,),
    )


async def track_version(event: Message, delivery: Delivery, ports: GatewayPorts) -> None:
    """Keep each version's status, counts and liveness from the pipeline's events (an observer),
    and wake the scheduler when a job ends or goes back to the queue."""
    match event:
        case StageProgress():
            await job_progressed(ports, event.meta.job_id)
        case DocParsed():
            await ports.documents.version_parsed(
                event.meta.job_id,
                chunk_count=event.chunk_count,
                page_count=event.page_count,
                warnings=list(event.warnings),
            )
            await job_progressed(ports, event.meta.job_id, parsed=True)
        case IndexUpdated(deleted=False):
            await ports.documents.version_indexed(event.meta.job_id, chunk_count=event.chunk_count)
            ports.scheduler.wake()
        case JobFailed():
            await ports.documents.version_failed(
                event.meta.job_id,
                reason=event.reason,
                retry=event.meta.retry,
                cancelled=event.error_type == "Cancelled",
            )
            ports.scheduler.wake()
        case JobControlled(action="requeued"):
            await job_requeued(ports, event.meta.job_id, event.meta.retry)
            ports.scheduler.wake()


async def recover_stalled(ports: GatewayPorts) -> int:
    """Re-drive released jobs with no event for ``stall_after_s`` (a new run); after
    ``max_redrives`` re-drives fail them with the reason. Returns how many were handled."""
    settings = ports.settings
    stalled = await _update(
        ports,
        "SELECT v.job_id FROM gateway.document_versions v WHERE v.status = 'processing'"
        " AND v.released_at IS NOT NULL AND COALESCE(v.last_event_at, v.released_at)"
        " < now() - make_interval(secs => %s)",
        (settings.stall_after_s,),
    )
    rows = await ports.documents.versions_of_jobs(stalled)
    for job_id, row in rows.items():
        if row.cancel_requested:
            continue
        async with ports.documents.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE gateway.document_versions SET redrives = redrives + 1, retry = retry + 1, released_at = NULL"
                " WHERE job_id = %s AND redrives < %s RETURNING retry",
                (job_id, settings.max_redrives),
            )
            redriven = await cur.fetchone()
        if redriven is not None:
            log.warning("jobs.stalled_redriven", job_id=job_id, retry=redriven[0])
            await _announce(
                ports,
                row,
                "retried",
                "scheduler",
                reason=f"no progress for {settings.stall_after_s:.0f} s",
                retry=int(redriven[0]),
            )
            continue
        reason = (
            f"no progress for {settings.stall_after_s:.0f} s after {settings.max_redrives} re-drives;"
            " retry it, or check the parser and embedder"
        )
        await _update(
            ports,
            "UPDATE gateway.document_versions SET status = 'failed', error = %s, finished_at = now()"
            " WHERE job_id = %s AND status = 'processing' RETURNING job_id",
            (reason, job_id),
        )
        await ports.events.publish(
            JobFailed(
                meta=job_meta(row, retry=row.retry),
                stage="stalled",
                reason=reason,
                attempts=settings.max_redrives + 1,
                error_type="Stalled",
                retryable=True,
            )
        )
    return len(rows)
