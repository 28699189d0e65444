"""What each event means for its job: one ``Transition`` per event, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocDeleted,
    DocParsed,
    DocReleased,
    DocUploaded,
    IndexUpdated,
    JobControlled,
    JobFailed,
    StageProgress,
)

__all__ = ["Transition", "transition_of"]


@dataclass(frozen=True)
class Transition:
    """What one event says about its job."""

    label: str  # the event's name in the history: its status, or the control action
    retry: int  # the run the event belongs to (or starts)
    status: str | None = None  # None: the event leaves the status alone
    percent: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    error_stage: str | None = None
    error_reason: str | None = None
    error_hint: str | None = None
    attempts: int = 1
    paused: bool | None = None  # None: the event leaves the flag alone
    sets_priority: bool = False  # the gateway's events carry the job's current priority
    detail: dict[str, Any] = field(default_factory=dict)


def _control(event: JobControlled) -> Transition:
    action, meta = event.action, event.meta
    detail = {"action": action, "actor": event.actor, "reason": event.reason, "control_id": event.control_id}
    common: dict[str, Any] = {"label": action, "retry": meta.retry, "sets_priority": True, "detail": detail}
    match action:
        case "paused":
            return Transition(**common, paused=True)
        case "resumed":
            return Transition(**common, paused=False)
        case "retried":  # a new run, queued again; the gateway unpauses a retried job
            return Transition(**common, status="uploaded", paused=False)
        case "requeued":  # a stage stopped the paused run: the job waits for its next run
            return Transition(**{**common, "retry": meta.retry + 1}, status="uploaded")
        case "cancelled":
            reason = f"cancelled by {event.actor or 'someone'}" + (f": {event.reason}" if event.reason else "")
            return Transition(**common, status="cancelled", error_reason=reason)
        case "prioritized":
            return Transition(**{**common, "detail": {**detail, "priority": meta.priority}})
    return Transition(**common)  # an action this version does not know: history only


def transition_of(event: Message) -> Transition:
    """What ``event`` says about its job; raises ``TypeError`` for an event progress does not project."""
    retry = event.meta.retry  # type: ignore[attr-defined]
    match event:
        case DocUploaded():
            return Transition(
                "uploaded",
                retry,
                "uploaded",
                0,
                sets_priority=True,
                detail={"size_bytes": event.size_bytes, "media_type": event.media_type},
            )
        case DocReleased():
            return Transition(
                "released", retry, "released", 5, sets_priority=True, detail={"priority": event.meta.priority}
            )
        case StageProgress(stage="parsing"):
            percent = 10 + (30 * event.done // event.total if event.total else 0)
            return Transition(
                "parsing",
                retry,
                "parsing",
                percent,
                # rows of a table or items of a page-less document move the percent, not the pages
                {"pages": event.total, "pages_parsed": event.done} if event.unit == "pages" else {},
                attempts=event.attempt,
                detail={
                    "attempt": event.attempt,
                    **({"done": event.done, "total": event.total, "unit": event.unit} if event.total else {}),
                },
            )
        case DocParsed():
            return Transition(
                "parsed",
                retry,
                "parsed",
                40,
                {"pages": event.page_count, "pages_parsed": event.page_count, "chunks": event.chunk_count},
                detail={
                    "parse_seconds": round(event.parse_seconds, 3),
                    "tokens": event.token_count,
                    **({"warnings": list(event.warnings)} if event.warnings else {}),
                },
            )
        case StageProgress(stage="embedding"):
            percent = 40 + (55 * event.done // event.total if event.total else 0)
            return Transition(
                "embedding",
                retry,
                "embedding",
                percent,
                {"chunks": event.total, "chunks_embedded": event.done},
                attempts=event.attempt,
                detail={"done": event.done, "total": event.total, "attempt": event.attempt},
            )
        case IndexUpdated(deleted=True):
            return Transition("deleted", retry, "deleted", 100, detail={"removed_points": event.removed_points})
        case DocDeleted():
            return Transition(
                "deleting",
                retry,
                "deleting",
                0,
                detail={"actor": event.actor, "cancelled_job_ids": list(event.cancelled_job_ids)},
            )
        case JobFailed(error_type="Cancelled"):
            return Transition(
                "cancelled",
                retry,
                "cancelled",
                error_stage=event.stage,
                error_reason=event.reason,
                detail={"error_type": "Cancelled"},
            )
        case IndexUpdated():
            return Transition(
                "indexed",
                retry,
                "indexed",
                100,
                {"chunks": event.chunk_count, "chunks_embedded": event.chunk_count},
                detail={
                    "embed_seconds": round(event.embed_seconds, 3),
                    "truncated_chunks": event.truncated_chunks,
                    "embedding_model": event.embedding_model,
                },
            )
        case JobFailed():
            return Transition(
                "failed",
                retry,
                "failed",
                error_stage=event.stage,
                error_reason=event.reason,
                error_hint=event.hint or None,
                attempts=event.attempts,
                detail={
                    "error_type": event.error_type,
                    "attempts": event.attempts,
                    **({"hint": event.hint} if event.hint else {}),
                },
            )
        case JobControlled():
            return _control(event)
    raise TypeError(f"progress does not project {type(event).__name__}")
