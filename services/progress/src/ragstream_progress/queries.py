"""Which jobs a read asks for: filters, the page cursor, and the aggregate over a scope.

A cursor is the position of the last job of a page in the list's order (newest first:
``created_at`` then ``job_id``, both descending), as base64 of JSON. It is stable: jobs created
meanwhile come before it, so paging on never repeats or skips a job.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ragstream_core.errors import InvalidInput
from ragstream_progress.statuses import RANK


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class JobFilter:
    """The jobs of one tenant a read selects; every field is optional."""

    collection_id: str | None = None
    statuses: tuple[str, ...] = ()
    stage: str | None = None
    batch_id: str | None = None
    document_id: str | None = None
    job_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    @classmethod
    def of(
        cls,
        *,
        collection_id: str | None = None,
        status: str | None = None,
        stage: str | None = None,
        batch_id: str | None = None,
        document_id: str | None = None,
        job_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> JobFilter:
        """A filter from request parameters; ``status`` may be a comma-separated list.

        Raises ``InvalidInput`` naming the known statuses if one is not.
        """
        statuses = tuple(s.strip() for s in (status or "").split(",") if s.strip())
        unknown = [s for s in statuses if s not in RANK]
        if unknown:
            raise InvalidInput(f"unknown status {unknown[0]!r}; known: {', '.join(sorted(RANK))}")
        return cls(
            collection_id=collection_id or None,
            statuses=statuses,
            stage=stage or None,
            batch_id=batch_id or None,
            document_id=document_id or None,
            job_id=job_id or None,
            created_after=_aware(created_after),
            created_before=_aware(created_before),
        )

    def where(self, tenant_id: str) -> tuple[str, list[Any]]:
        """The SQL condition (without ``WHERE``) and its parameters."""
        clauses = ["tenant_id = %s"]
        params: list[Any] = [tenant_id]
        for column in ("collection_id", "stage", "batch_id", "document_id", "job_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if self.statuses:
            clauses.append("status = ANY(%s)")
            params.append(list(self.statuses))
        if self.created_after is not None:
            clauses.append("created_at > %s")
            params.append(self.created_after)
        if self.created_before is not None:
            clauses.append("created_at < %s")
            params.append(self.created_before)
        return " AND ".join(clauses), params


def encode_cursor(job: dict[str, Any]) -> str:
    """The cursor that continues a list after ``job``."""
    position = json.dumps([job["created_at"].isoformat(), job["job_id"]], separators=(",", ":"))
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, job_id) of a cursor; raises ``InvalidInput`` for one this API did not give out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        return datetime.fromisoformat(created_at), str(job_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidInput(
            f"cursor {cursor!r} is not one this API gave out; pass the next_cursor of the previous page"
        ) from exc


def list_sql(where: str) -> str:
    """Jobs matching ``where`` after an optional cursor, newest first (params: where's, cursor, limit)."""
    return (
        f"SELECT * FROM progress.jobs WHERE {where}"
        " AND (%s::timestamptz IS NULL OR (created_at, job_id) < (%s::timestamptz, %s::text))"
        " ORDER BY created_at DESC, job_id DESC LIMIT %s"
    )


# One pass over the scope's jobs: counts by state, chunks, and the backlog the ETA needs.
# A retried job's backlog starts when its current run was queued (its "uploaded" time).
AGGREGATE_SQL = """
WITH scope AS (
    SELECT status, paused, chunks, chunks_embedded, updated_at,
           status NOT IN ('indexed', 'deleted', 'failed', 'cancelled') AS unfinished,
           COALESCE((timestamps->>'uploaded')::timestamptz, created_at) AS run_queued_at
    FROM progress.jobs WHERE {where}
), backlog AS (
    SELECT min(run_queued_at) AS since FROM scope WHERE unfinished AND NOT paused
)
SELECT
    count(*) AS total,
    count(*) FILTER (WHERE status IN ('uploaded', 'released') AND NOT paused) AS queued,
    count(*) FILTER (WHERE status IN ('parsing', 'parsed', 'embedding', 'deleting') AND NOT paused) AS running,
    count(*) FILTER (WHERE status IN ('indexed', 'deleted')) AS done,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE unfinished AND paused) AS paused,
    count(*) FILTER (WHERE status IN ('parsed', 'embedding', 'indexed')) AS known_jobs,
    COALESCE(sum(chunks) FILTER (WHERE status IN ('parsed', 'embedding', 'indexed')), 0) AS known_chunks,
    COALESCE(sum(chunks_embedded) FILTER (WHERE status IN ('parsed', 'embedding', 'indexed')), 0) AS embedded,
    count(*) FILTER (WHERE status IN ('uploaded', 'released', 'parsing')) AS unknown_jobs,
    count(*) FILTER (WHERE unfinished AND NOT paused) AS active_jobs,
    COALESCE(sum(chunks - chunks_embedded) FILTER (WHERE status IN ('parsed', 'embedding') AND NOT paused), 0)
        AS remaining_known,
    count(*) FILTER (WHERE status IN ('uploaded', 'released', 'parsing') AND NOT paused) AS unknown_active,
    (SELECT since FROM backlog) AS since,
    COALESCE(sum(chunks_embedded) FILTER (WHERE updated_at >= (SELECT since FROM backlog)), 0) AS embedded_since,
    max(updated_at) AS updated_at
FROM scope
"""
