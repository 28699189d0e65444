"""From events to job state: what each event means for its job, and the SQL that applies it.

Guarantees: an event is applied at most once (keyed by its event id); a job's status only
moves forward (``uploaded → parsing → parsed → embedding → indexed``, or ``failed``; a delete
job ``deleting → deleted``), so a late or redelivered event never rolls a job back; every
applied event stays in the history. ``indexed`` outranks ``failed`` (a replayed job that
succeeds is done), and ``cancelled`` outranks everything (a cancelled job stays cancelled
whatever its stages still report).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocDeleted,
    DocParsed,
    DocUploaded,
    IndexUpdated,
    JobFailed,
    StageProgress,
)

RANK = {
    "uploaded": 0,
    "deleting": 0,
    "parsing": 1,
    "parsed": 2,
    "embedding": 3,
    "failed": 9,
    "indexed": 10,
    "deleted": 10,
    "cancelled": 11,
}
#: statuses after which nothing more happens to a job
TERMINAL = frozenset({"indexed", "failed", "deleted", "cancelled"})


@dataclass(frozen=True)
class Transition:
    status: str
    percent: int
    counts: dict[str, int] = field(default_factory=dict)
    error_stage: str | None = None
    error_reason: str | None = None
    attempts: int = 1
    detail: dict[str, Any] = field(default_factory=dict)


def transition_of(event: Message) -> Transition:
    """What ``event`` says about its job."""
    match event:
        case DocUploaded():
            return Transition("uploaded", 0, detail={"size_bytes": event.size_bytes, "media_type": event.media_type})
        case StageProgress(stage="parsing"):
            return Transition("parsing", 10, attempts=event.attempt, detail={"attempt": event.attempt})
        case DocParsed():
            return Transition(
                "parsed",
                40,
                {"pages": event.page_count, "chunks": event.chunk_count},
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
                percent,
                {"chunks": event.total, "chunks_embedded": event.done},
                attempts=event.attempt,
                detail={"done": event.done, "total": event.total, "attempt": event.attempt},
            )
        case IndexUpdated(deleted=True):
            return Transition("deleted", 100, detail={"removed_points": event.removed_points})
        case DocDeleted():
            return Transition(
                "deleting", 0, detail={"actor": event.actor, "cancelled_job_ids": list(event.cancelled_job_ids)}
            )
        case JobFailed(error_type="Cancelled"):
            return Transition(
                "cancelled", 0, error_stage=event.stage, error_reason=event.reason, detail={"error_type": "Cancelled"}
            )
        case IndexUpdated():
            return Transition(
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
                0,
                error_stage=event.stage,
                error_reason=event.reason,
                attempts=event.attempts,
                detail={"error_type": event.error_type, "attempts": event.attempts},
            )
    raise TypeError(f"progress does not project {type(event).__name__}")


_UPSERT = """
INSERT INTO progress.jobs AS j (
    job_id, tenant_id, collection_id, document_id, version, file_name, status, stage_rank, percent,
    pages, chunks, chunks_embedded, attempts, error_stage, error_reason, trace_id, timestamps,
    created_at, updated_at, change_seq)
VALUES (%(job_id)s, %(tenant_id)s, %(collection_id)s, %(document_id)s, %(version)s, %(file_name)s,
    %(status)s, %(rank)s, %(percent)s, %(pages)s, %(chunks)s, %(chunks_embedded)s, %(attempts)s,
    %(error_stage)s, %(error_reason)s, %(trace_id)s, jsonb_build_object(%(status)s::text, %(at)s::text),
    %(at)s::timestamptz, %(at)s::timestamptz, nextval('progress.change_seq'))
ON CONFLICT (job_id) DO UPDATE SET
    status = CASE WHEN EXCLUDED.stage_rank >= j.stage_rank THEN EXCLUDED.status ELSE j.status END,
    stage_rank = GREATEST(j.stage_rank, EXCLUDED.stage_rank),
    percent = CASE WHEN EXCLUDED.stage_rank IN (9, 11) THEN j.percent
                   WHEN EXCLUDED.stage_rank >= j.stage_rank THEN GREATEST(j.percent, EXCLUDED.percent)
                   ELSE j.percent END,
    pages = GREATEST(j.pages, EXCLUDED.pages),
    chunks = GREATEST(j.chunks, EXCLUDED.chunks),
    chunks_embedded = GREATEST(j.chunks_embedded, EXCLUDED.chunks_embedded),
    attempts = GREATEST(j.attempts, EXCLUDED.attempts),
    error_stage = COALESCE(EXCLUDED.error_stage, j.error_stage),
    error_reason = COALESCE(EXCLUDED.error_reason, j.error_reason),
    trace_id = CASE WHEN j.trace_id = '' THEN EXCLUDED.trace_id ELSE j.trace_id END,
    timestamps = CASE WHEN j.timestamps ? EXCLUDED.status THEN j.timestamps
                      ELSE j.timestamps || jsonb_build_object(EXCLUDED.status, %(at)s::text) END,
    created_at = LEAST(j.created_at, EXCLUDED.created_at),
    updated_at = GREATEST(j.updated_at, EXCLUDED.updated_at),
    change_seq = EXCLUDED.change_seq
"""

CHANGES_CHANNEL = "ragstream_job_changes"
_APPLY_LOCK = 0x5241_4753  # "RAGS"


class JobStore:
    """The projection's tables. Reads are scoped by tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def apply(self, event: Message, *, stream_sequence: int, trace_id: str) -> bool:
        """Apply one event; returns False if it was applied before (nothing changes)."""
        meta = event.meta  # type: ignore[attr-defined]
        change = transition_of(event)
        at_text = meta.occurred_at.ToJsonString()
        async with self.pool.connection() as conn, conn.transaction():
            # one change at a time, across handlers and replicas: change numbers commit in order,
            # which is what lets a feed client resume from the last number it saw
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPLY_LOCK,))
            cur = await conn.execute(
                "INSERT INTO progress.job_events"
                " (event_id, job_id, status, stream_sequence, trace_id, occurred_at, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                (
                    meta.event_id,
                    meta.job_id,
                    change.status,
                    stream_sequence,
                    trace_id,
                    at_text,
                    json.dumps(change.detail),
                ),
            )
            if await cur.fetchone() is None:
                return False
            await conn.execute(
                _UPSERT,
                {
                    "job_id": meta.job_id,
                    "tenant_id": meta.tenant_id,
                    "collection_id": meta.collection_id,
                    "document_id": meta.document_id,
                    "version": meta.version,
                    "file_name": meta.file_name,
                    "status": change.status,
                    "rank": RANK[change.status],
                    "percent": change.percent,
                    "pages": change.counts.get("pages", 0),
                    "chunks": change.counts.get("chunks", 0),
                    "chunks_embedded": change.counts.get("chunks_embedded", 0),
                    "attempts": max(change.attempts, 1),
                    "error_stage": change.error_stage,
                    "error_reason": change.error_reason,
                    "trace_id": trace_id,
                    "at": at_text,
                },
            )
            await conn.execute("SELECT pg_notify(%s, '')", (CHANGES_CHANNEL,))
        return True

    async def _select_jobs(
        self, tenant_id: str, filters: dict[str, Any], *, order: str, limit: int
    ) -> list[dict[str, Any]]:
        """Jobs of one tenant matching ``filters`` (column = value; ``change_seq`` means after)."""
        clauses = ["tenant_id = %s"]
        params: list[Any] = [tenant_id]
        for column, value in filters.items():
            if value is None or value == "":
                continue
            clauses.append(f"{column} > %s" if column == "change_seq" else f"{column} = %s")
            params.append(value)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT * FROM progress.jobs WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT %s",
                [*params, limit],
            )
            return await cur.fetchall()

    async def changes_since(
        self,
        tenant_id: str,
        position: int,
        *,
        collection_id: str | None = None,
        job_id: str | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Jobs changed after ``position`` (their latest state), in the order of their changes."""
        filters = {"change_seq": position, "collection_id": collection_id, "job_id": job_id}
        return await self._select_jobs(tenant_id, filters, order="change_seq", limit=limit)

    async def get(self, tenant_id: str, job_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT * FROM progress.jobs WHERE tenant_id = %s AND job_id = %s", (tenant_id, job_id))
            job = await cur.fetchone()
            if job is None:
                return None
            await cur.execute(
                "SELECT event_id, status, stream_sequence, trace_id, occurred_at, detail"
                " FROM progress.job_events WHERE job_id = %s ORDER BY stream_sequence",
                (job_id,),
            )
            job["history"] = await cur.fetchall()
            return job

    async def list(
        self, tenant_id: str, *, collection_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Jobs, newest first."""
        filters = {"collection_id": collection_id, "status": status}
        return await self._select_jobs(tenant_id, filters, order="created_at DESC", limit=limit)
