"""PostgreSQL: a connection pool and an explicit, idempotent migration step.

Each service that owns tables ships ``migrations/NNN_name.sql`` in its package and applies
them with ``apply_migrations`` from its ``migrate`` command (``make run`` and the tests call
it), never from a request handler. Applied versions are recorded per service in
``schema_migrations``; an advisory lock lets several replicas start at once. Every statement
sent through a pool's connections runs in a CLIENT span (``db.system.name=postgresql``, the
operation and the statement's text), so a trace shows each database call of a request or stage.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from importlib import resources
from typing import Any

import psycopg
import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from psycopg_pool import AsyncConnectionPool

log = structlog.get_logger(__name__)
tracer = trace.get_tracer("ragstream.db")


def _db_span(query: Any) -> Any:
    """A CLIENT span named ``postgresql <OPERATION>`` with the statement's text."""
    if isinstance(query, bytes):
        text = query.decode(errors="replace")
    elif isinstance(query, str):
        text = query
    else:  # a psycopg.sql.Composed: its text needs a connection; the type names it well enough
        text = type(query).__name__
    words = text.split(None, 1)
    operation = words[0].upper() if words else "QUERY"
    return tracer.start_as_current_span(
        f"postgresql {operation}",
        kind=SpanKind.CLIENT,
        attributes={"db.system.name": "postgresql", "db.operation.name": operation, "db.query.text": text[:2000]},
    )


class TracedCursor(psycopg.AsyncCursor[Any]):
    """A cursor whose statements each run in a CLIENT span of the current trace."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TracedCursor:
        with _db_span(query):
            await super().execute(query, params, **kwargs)
        return self

    async def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        with _db_span(query):
            await super().executemany(query, params_seq, **kwargs)


async def open_pool(url: str, *, max_size: int = 5) -> AsyncConnectionPool:
    """An open pool; waits until the server accepts a connection."""
    pool = AsyncConnectionPool(
        url, min_size=1, max_size=max_size, open=False, kwargs={"autocommit": True, "cursor_factory": TracedCursor}
    )
    await pool.open(wait=True, timeout=30)
    return pool


async def check_pool(pool: AsyncConnectionPool) -> None:
    """Readiness: raise if the database does not answer a trivial query."""
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")


async def apply_migrations(url: str, *, service: str, package: str) -> list[str]:
    """Apply the SQL files of ``package``/migrations not yet applied; returns their names."""
    files = sorted(
        (f for f in resources.files(package).joinpath("migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " service text NOT NULL, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (service, name))"
        )
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(service.encode()),))
            cur = await conn.execute("SELECT name FROM schema_migrations WHERE service = %s", (service,))
            done = {row[0] for row in await cur.fetchall()}
            for f in files:
                if f.name in done:
                    continue
                await conn.execute(f.read_text())
                await conn.execute("INSERT INTO schema_migrations (service, name) VALUES (%s, %s)", (service, f.name))
                applied.append(f.name)
    log.info("db.migrated", service=service, applied=applied)
    return applied
