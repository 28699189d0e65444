"""From events to job state: what each event means for its job, and the store that applies it.

Guarantees:

- an event is applied at most once (keyed by its event id), and every applied event stays in
  the job's history;
- within a run a job's status only moves forward (see ``statuses``), so a late or redelivered
  event never rolls a job back; ``cancelled`` outranks everything;
- runs: every event carries its run (``meta.retry``). An event of a newer run than the job's
  starts that run (status, counts, error, attempts and timings start afresh; history and
  ``created_at`` stay); an event of an older run is kept in the history and changes nothing else;
- ``paused`` and ``priority`` follow the event that set them last in stream order, whatever
  order events are applied in;
- changes are applied one at a time (an advisory lock), each with the next change number of
  the live feed, and announced on ``CHANGES_CHANNEL``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from prometheus_client import Histogram
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ragstream_core.proto.ragstream.v1.events_pb2 import EventMeta
from ragstream_progress.estimates import (
    ALL_TENANTS,
    ALPHA,
    Backlog,
    Rates,
    aggregate_eta,
    estimated_chunk_percent,
    eta_of,
    rate_samples,
    timings_of,
)
from ragstream_progress.queries import AGGREGATE_SQL, JobFilter, decode_cursor, encode_cursor, list_sql
from ragstream_progress.statuses import RANK, TERMINAL, stage_of
from ragstream_progress.transitions import Transition, transition_of

__all__ = ["CHANGES_CHANNEL", "RANK", "TERMINAL", "JobStore", "Transition", "merge_job", "transition_of"]


def _run_start(job: dict[str, Any], retry: int) -> dict[str, Any]:
    """``job`` as a run that has not started: what a run learns starts afresh."""
    return {
        **job,
        "retry": retry,
        "status": "uploaded",
        "stage_rank": 0,
        "stage": "queued",
        "percent": 0,
        "pages": 0,
        "pages_parsed": 0,
        "chunks": 0,
        "chunks_embedded": 0,
        "attempts": 1,
        "error_stage": None,
        "error_reason": None,
        "error_hint": None,
        "timestamps": {},
    }


def merge_job(
    job: dict[str, Any] | None, change: Transition, meta: EventMeta, *, sequence: int, trace_id: str
) -> dict[str, Any] | None:
    """The job after ``change`` (carried by an event at stream position ``sequence``).

    Returns ``None`` when the event belongs to a run older than the job's: nothing changes.
    """
    if job is not None and change.retry < job["retry"]:
        return None
    at = meta.occurred_at.ToDatetime(tzinfo=UTC)
    if job is None:
        job = {
            "job_id": meta.job_id,
            "tenant_id": meta.tenant_id,
            "collection_id": meta.collection_id,
            "document_id": meta.document_id,
            "version": meta.version,
            "file_name": meta.file_name,
            "trace_id": "",
            "created_at": at,
            "updated_at": at,
            "batch_id": "",
            "priority": meta.priority or "normal",
            "priority_seq": 0,
            "paused": False,
            "paused_seq": 0,
        }
    row = _run_start(job, change.retry) if "retry" not in job or change.retry > job["retry"] else dict(job)

    if change.status is not None:
        rank = RANK[change.status]
        if rank >= row["stage_rank"]:
            if rank not in (RANK["failed"], RANK["cancelled"]):
                row["percent"] = max(row["percent"], change.percent)
            if change.status == "cancelled" and change.error_stage is None and row["error_stage"] is None:
                row["error_stage"] = row["stage"]  # cancelled by an order: in the stage it was in
            row["status"], row["stage_rank"] = change.status, rank
        # the earliest time each status was reached in this run, whatever order events come in
        reached = row["timestamps"].get(change.status)
        if reached is None or datetime.fromisoformat(reached) > at:
            row["timestamps"] = {**row["timestamps"], change.status: meta.occurred_at.ToJsonString()}
    for column in ("pages", "pages_parsed", "chunks", "chunks_embedded"):
        row[column] = max(row[column], change.counts.get(column, 0))
    row["attempts"] = max(row["attempts"], change.attempts)
    for column in ("error_stage", "error_reason", "error_hint"):
        value = getattr(change, column)
        if value is not None:
            row[column] = value
    row["stage"] = stage_of(row["status"], row["error_stage"])
    if not row["trace_id"]:
        row["trace_id"] = trace_id
    row["created_at"] = min(row["created_at"], at)
    row["updated_at"] = max(row["updated_at"], at)
    if not row["batch_id"]:
        row["batch_id"] = meta.batch_id
    if change.sets_priority and sequence > row["priority_seq"]:
        row["priority"], row["priority_seq"] = meta.priority or "normal", sequence
    if change.paused is not None and sequence > row["paused_seq"]:
        row["paused"], row["paused_seq"] = change.paused, sequence
    return row


_COLUMNS = (
    "job_id",
    "tenant_id",
    "collection_id",
    "document_id",
    "version",
    "file_name",
    "status",
    "stage_rank",
    "stage",
    "percent",
    "pages",
    "pages_parsed",
    "chunks",
    "chunks_embedded",
    "attempts",
    "error_stage",
    "error_reason",
    "error_hint",
    "trace_id",
    "timestamps",
    "created_at",
    "updated_at",
    "batch_id",
    "priority",
    "priority_seq",
    "retry",
    "paused",
    "paused_seq",
)
_WRITE = (
    f"INSERT INTO progress.jobs ({', '.join(_COLUMNS)}, change_seq)"
    f" VALUES ({', '.join(f'%({c})s' for c in _COLUMNS)}, nextval('progress.change_seq'))"
    " ON CONFLICT (job_id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_COLUMNS[1:], "change_seq"))
)
_SAMPLE = (
    "INSERT INTO progress.rates AS r (tenant_id, metric, value, samples, updated_at) VALUES (%s, %s, %s, 1, %s)"
    f" ON CONFLICT (tenant_id, metric) DO UPDATE SET value = {ALPHA} * EXCLUDED.value + {1 - ALPHA} * r.value,"
    " samples = r.samples + 1, updated_at = GREATEST(r.updated_at, EXCLUDED.updated_at)"
)

UPLOAD_TO_INDEXED = Histogram(
    "ragstream_job_upload_to_indexed_seconds",
    "From a job's upload to its version being indexed (queueing, parsing and embedding).",
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)

CHANGES_CHANNEL = "ragstream_job_changes"
_APPLY_LOCK = 0x5241_4753  # "RAGS"


class JobStore:
    """The projection's tables. Reads are scoped by tenant and carry ``eta_seconds`` and ``timings``."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def apply(self, event: Message, *, stream_sequence: int, trace_id: str) -> bool:
        """Apply one event; returns False if it was applied before (nothing changes)."""
        meta: EventMeta = event.meta  # type: ignore[attr-defined]
        change = transition_of(event)
        async with self.pool.connection() as conn, conn.transaction():
            # one change at a time, across handlers and replicas: change numbers commit in order,
            # which is what lets a feed client resume from the last number it saw
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPLY_LOCK,))
            cur = await conn.execute(
                "INSERT INTO progress.job_events"
                " (event_id, job_id, status, stream_sequence, trace_id, occurred_at, detail, retry)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                (
                    meta.event_id,
                    meta.job_id,
                    change.label,
                    stream_sequence,
                    trace_id,
                    meta.occurred_at.ToJsonString(),
                    json.dumps(change.detail),
                    change.retry,
                ),
            )
            if await cur.fetchone() is None:
                return False
            await self._sample_rates(conn, meta, event)
            async with conn.cursor(row_factory=dict_row) as rows:
                await rows.execute("SELECT * FROM progress.jobs WHERE job_id = %s", (meta.job_id,))
                before = await rows.fetchone()
                job = merge_job(before, change, meta, sequence=stream_sequence, trace_id=trace_id)
            if job is not None:
                await conn.execute(_WRITE, {**job, "timestamps": Jsonb(job["timestamps"])})
                await conn.execute("SELECT pg_notify(%s, '')", (CHANGES_CHANNEL,))
        if job is not None and job["status"] == "indexed" and (before is None or before["status"] != "indexed"):
            # once per job, when it first becomes indexed: the latency a user waited for
            indexed_at = meta.occurred_at.ToDatetime(tzinfo=UTC)
            UPLOAD_TO_INDEXED.observe(max((indexed_at - job["created_at"]).total_seconds(), 0.0))
        return True

    async def _sample_rates(self, conn: AsyncConnection[Any], meta: EventMeta, event: Message) -> None:
        at = meta.occurred_at.ToJsonString()
        samples = rate_samples(event)
        if not samples:
            return
        async with conn.cursor() as cur:
            await cur.executemany(
                _SAMPLE,
                [
                    (tenant, metric, value, at)
                    for metric, value in samples.items()
                    for tenant in (meta.tenant_id, ALL_TENANTS)
                ],
            )

    async def clear(self) -> None:
        """Drop every job, history entry and rate (before a rebuild). Change numbers go on
        growing, so feed clients receive every rebuilt job as a change."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPLY_LOCK,))
            await conn.execute("TRUNCATE progress.jobs, progress.job_events, progress.rates")
            await conn.execute("SELECT pg_notify(%s, '')", (CHANGES_CHANNEL,))

    async def _rates(self, conn: AsyncConnection[Any], tenant_id: str) -> Rates:
        """The tenant's observed rates (the all-tenant ones where it has none)."""
        cur = await conn.execute(
            "SELECT DISTINCT ON (metric) metric, value FROM progress.rates WHERE tenant_id = ANY(%s)"
            " ORDER BY metric, tenant_id = %s DESC",
            ([tenant_id, ALL_TENANTS], tenant_id),
        )
        return Rates.of({str(metric): float(value) for metric, value in await cur.fetchall()})

    async def _read(self, tenant_id: str, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql, params)
                jobs = await cur.fetchall()
            rates = await self._rates(conn, tenant_id)
        for job in jobs:
            job["eta_seconds"] = eta_of(job, rates)
            job["timings"] = timings_of(job)
        return jobs

    async def changes_since(
        self, tenant_id: str, position: int, *, filters: JobFilter | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Jobs changed after ``position`` (their latest state), in the order of their changes."""
        where, params = (filters or JobFilter()).where(tenant_id)
        return await self._read(
            tenant_id,
            f"SELECT * FROM progress.jobs WHERE {where} AND change_seq > %s ORDER BY change_seq LIMIT %s",
            [*params, position, limit],
        )

    async def get(self, tenant_id: str, job_id: str) -> dict[str, Any] | None:
        """One job with its history (every applied event, in stream order)."""
        found = await self._read(
            tenant_id, "SELECT * FROM progress.jobs WHERE tenant_id = %s AND job_id = %s", [tenant_id, job_id]
        )
        if not found:
            return None
        job = found[0]
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT event_id, status, retry, stream_sequence, trace_id, occurred_at, detail"
                " FROM progress.job_events WHERE job_id = %s ORDER BY stream_sequence",
                (job_id,),
            )
            job["history"] = await cur.fetchall()
        return job

    async def list(
        self, tenant_id: str, filters: JobFilter, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of jobs, newest first, and the cursor of the next page (``None`` on the last).

        Raises ``InvalidInput`` for a cursor this API did not give out.
        """
        after_at, after_id = decode_cursor(cursor) if cursor else (None, None)
        where, params = filters.where(tenant_id)
        jobs = await self._read(tenant_id, list_sql(where), [*params, after_at, after_at, after_id, limit + 1])
        if len(jobs) <= limit:
            return jobs, None
        return jobs[:limit], encode_cursor(jobs[limit - 1])

    async def aggregate(self, tenant_id: str, filters: JobFilter) -> dict[str, Any]:
        """Counts, percents and ETA of the jobs ``filters`` select (one SQL pass; see ``estimates``)."""
        where, params = filters.where(tenant_id)
        async with self.pool.connection() as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(AGGREGATE_SQL.format(where=where), params)
                row = await cur.fetchone()
            rates = await self._rates(conn, tenant_id)
        assert row is not None  # an aggregate without GROUP BY always has one row
        backlog = Backlog(
            active_jobs=row["active_jobs"],
            paused_jobs=row["paused"],
            remaining_known=int(row["remaining_known"]),
            unknown_jobs=row["unknown_active"],
            known_jobs=row["known_jobs"],
            known_chunks=int(row["known_chunks"]),
            since=row["since"],
            embedded_since=int(row["embedded_since"]),
        )
        finished = row["done"] + row["failed"] + row["cancelled"]
        return {
            "total": row["total"],
            "counts": {k: row[k] for k in ("queued", "running", "done", "failed", "cancelled", "paused")},
            "percent": {
                "jobs": 100 * finished // row["total"] if row["total"] else 0,
                "chunks": estimated_chunk_percent(backlog, int(row["embedded"]), row["unknown_jobs"]),
            },
            "chunks": {"known": backlog.known_chunks, "embedded": int(row["embedded"])},
            "eta_seconds": aggregate_eta(backlog, rates, now=datetime.now(UTC)),
            "updated_at": row["updated_at"],
        }
