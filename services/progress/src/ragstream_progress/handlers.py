"""The projection stage: every event of the pipeline, applied once to its job."""

from __future__ import annotations

from typing import Protocol

import structlog
from google.protobuf.message import Message

from ragstream_core.bus import Delivery
from ragstream_core.telemetry import current_trace_id
from ragstream_progress.projection import JobStore

log = structlog.get_logger(__name__)


class ProgressPorts(Protocol):
    jobs: JobStore


async def project_event(event: Message, delivery: Delivery, ports: ProgressPorts) -> None:
    """Apply ``event`` to its job. Idempotent: a redelivered event changes nothing.

    Events of no job (a document's tag change, ``DocTagged`` / ``IndexTagged``) are passed over.
    """
    if not event.meta.job_id:  # type: ignore[attr-defined]
        return
    applied = await ports.jobs.apply(event, stream_sequence=delivery.stream_sequence, trace_id=current_trace_id())
    if not applied:
        log.info("event.duplicate", event_id=event.meta.event_id)  # type: ignore[attr-defined]
