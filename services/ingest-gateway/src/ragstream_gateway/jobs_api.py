"""REST routes that steer jobs: one job, a collection's or a batch's work, and dead letters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from ragstream_core.bus import Bus
from ragstream_core.errors import DependencyUnavailable
from ragstream_gateway.api import Actor, Ports, Tenant, version_body
from ragstream_gateway.dead_letters import dead_letter, list_dead_letters, replay_dead_letter
from ragstream_gateway.handlers import check_identifier
from ragstream_gateway.jobs import (
    cancel_job,
    get_job,
    pause_job,
    prioritize_job,
    resume_job,
    retry_job,
    steer_group,
)
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.queue_depth import queue_depth
from ragstream_gateway.repository import VersionRow

router = APIRouter(prefix="/v1")


def _bus(ports: GatewayPorts) -> Bus:
    if not isinstance(ports.events, Bus):
        raise DependencyUnavailable("job control needs the NATS connection")
    return ports.events


def job_body(row: VersionRow) -> dict[str, Any]:
    """A job as the gateway steers it: its version, lane, run and queue state."""
    state = "queued" if row.status == "processing" and row.released_at is None else row.status
    if row.status == "processing" and row.released_at is not None:
        state = "running"
    return {
        **version_body(row),
        "state": state,
        "priority": row.priority,
        "batch_id": row.batch_id,
        "retry": row.retry,
        "paused": row.paused,
        "cancel_requested": row.cancel_requested,
        "released_at": row.released_at.isoformat() if row.released_at else None,
    }


@router.post("/jobs/{job_id}:pause")
async def pause(job_id: str, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Hold a job: queued, it waits; running, it stops at its next stage boundary and waits in the queue."""
    return job_body(await pause_job(ports, await _bus(ports).job_control(), tenant, job_id, actor=actor))


@router.post("/jobs/{job_id}:resume")
async def resume(job_id: str, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    row = await resume_job(ports, await _bus(ports).job_control(), tenant, job_id, actor=actor)
    ports.scheduler.wake()
    return job_body(row)


@router.post("/jobs/{job_id}:cancel")
async def cancel(job_id: str, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Cancel a job: queued, at once; running, at its next stage boundary, with nothing of it visible."""
    row = await cancel_job(ports, await _bus(ports).job_control(), tenant, job_id, actor=actor)
    ports.scheduler.wake()
    return job_body(row)


@router.post("/jobs/{job_id}:retry", status_code=202)
async def retry(job_id: str, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Run a failed or cancelled job again from the start (a new run)."""
    row = await retry_job(ports, await _bus(ports).job_control(), tenant, job_id, actor=actor)
    ports.scheduler.wake()
    return job_body(row)


class JobPatch(BaseModel):
    priority: Literal["high", "normal", "bulk"]


@router.patch("/jobs/{job_id}")
async def reprioritize(job_id: str, patch: JobPatch, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Move a job to another lane (it matters while the job is queued)."""
    row = await prioritize_job(ports, tenant, job_id, patch.priority, actor=actor)
    ports.scheduler.wake()
    return job_body(row)


@router.get("/jobs/{job_id}/control")
async def job_state(job_id: str, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    """The job as the gateway steers it (queue state, lane, run); progress is at the progress service."""

    return job_body(await get_job(ports, tenant, job_id))


Action = Literal["pause", "resume", "cancel"]


async def _steer(
    ports: GatewayPorts,
    tenant: str,
    action: Action,
    actor: str,
    *,
    collection_id: str | None = None,
    batch_id: str | None = None,
) -> dict[str, Any]:
    """Steer every unfinished job of one scope (a collection or a batch), then let the scheduler look."""
    control = await _bus(ports).job_control()
    result = await steer_group(
        ports, control, tenant, action, actor=actor, collection_id=collection_id, batch_id=batch_id
    )
    ports.scheduler.wake()
    return result


@router.post("/collections/{collection_id}/jobs:{action}")
async def steer_collection(
    collection_id: str, action: Action, ports: Ports, tenant: Tenant, actor: Actor
) -> dict[str, Any]:
    """Pause (queued jobs wait, running ones finish), resume, or cancel a collection's unfinished work."""
    return await _steer(ports, tenant, action, actor, collection_id=check_identifier("collection", collection_id))


@router.post("/batches/{batch_id}/jobs:{action}")
async def steer_batch(batch_id: str, action: Action, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Pause, resume or cancel a batch's unfinished work."""
    return await _steer(ports, tenant, action, actor, batch_id=check_identifier("batch", batch_id))


#: a dead letter's position in the dead-letter stream (JetStream sequences are unsigned 64-bit, from 1);
#: a negative one reached JetStream and came back as a 500 before this bound
Sequence = Annotated[int, Path(ge=1, le=2**64 - 1, description="The dead letter's sequence number.")]


@router.get("/dead-letters")
async def dead_letters(
    ports: Ports,
    tenant: Tenant,
    stage: str | None = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**64 - 1, description="Cursor: the next_before of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Messages the stages gave up on, newest first: stage, reason, deliveries, job and document."""
    return await list_dead_letters(ports, _bus(ports), tenant, stage=stage, before=before, limit=limit)


@router.get("/dead-letters/{sequence}")
async def one_dead_letter(sequence: Sequence, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    entry, _ = await dead_letter(_bus(ports), tenant, sequence, operators=ports.settings.default_tenant)
    return entry


@router.post("/dead-letters/{sequence}:replay", status_code=202)
async def replay(sequence: Sequence, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Replay a dead letter after a fix: its failed job runs again, or its event is published again."""
    result = await replay_dead_letter(ports, _bus(ports), tenant, sequence, actor=actor)
    ports.scheduler.wake()
    return result


@router.get("/queue")
async def queue(
    ports: Ports,
    tenant: Tenant,
    collection_id: Annotated[str | None, Query(description="Only this collection's work.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Collections listed at most.")] = 1000,
) -> dict[str, Any]:
    """Unfinished jobs by stage (queued, parsing, embedding) and lane, paused ones apart, and each
    collection's paused flag with its queued and running jobs."""
    if collection_id is not None:
        check_identifier("collection", collection_id)
    return await queue_depth(ports, tenant, collection_id=collection_id, limit=limit)
