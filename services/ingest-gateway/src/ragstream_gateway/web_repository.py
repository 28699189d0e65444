"""The tables of web sources: crawls, their leases, and the URLs each one found (PostgreSQL).

A crawl is worked on by the gateway holding its lease. ``claim`` hands out crawls that are
``queued`` or ``running`` with no live lease (new ones, and those of a gateway that stopped or
died); ``record_page`` stores a URL's outcome together with the URLs it led to, in one
transaction, so a resumed crawl continues from exactly the URLs still ``pending``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

#: outcomes of a crawl's URLs
PENDING = "pending"  # not fetched yet
TAKEN_IN = "accepted"  # a page accepted as a new document version (its job is open)
UNCHANGED = "unchanged"  # a page whose bytes the collection already holds: no job
FAILED = "failed"  # could not be fetched or taken in; ``error`` says why
SKIPPED = "skipped"  # not fetched (robots.txt, out of scope after a redirect) or asks not to be indexed
READ = "read"  # a sitemap whose URLs were added
OUTCOMES = (PENDING, TAKEN_IN, UNCHANGED, FAILED, SKIPPED, READ)


@dataclass(frozen=True)
class CrawlSpec:
    """What to crawl, as submitted."""

    tenant_id: str
    collection_id: str
    seed_url: str
    #: "page" (follow links from ``seed_url``) or "sitemap" (``seed_url`` lists the pages)
    seed_kind: str
    max_depth: int
    max_pages: int
    same_host: bool
    include_prefixes: Sequence[str] = ()
    exclude_prefixes: Sequence[str] = ()


@dataclass(frozen=True)
class CrawlRow:
    crawl_id: str
    tenant_id: str
    collection_id: str
    seed_url: str
    seed_kind: str
    max_depth: int
    max_pages: int
    same_host: bool
    include_prefixes: list[str]
    exclude_prefixes: list[str]
    status: str
    error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class CrawlPageRow:
    crawl_id: str
    url: str
    #: where the page finally came from, after redirects
    final_url: str | None
    kind: str
    depth: int
    position: int
    outcome: str
    http_status: int | None
    job_id: str | None
    document_id: str | None
    version: int | None
    file_name: str | None
    media_type: str | None
    error: str | None
    fetched_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class NewPage:
    """A URL found by a crawl: to fetch (``pending``) or already decided (``skipped`` with a reason)."""

    url: str
    kind: str
    depth: int
    outcome: str = PENDING
    error: str | None = None


@dataclass(frozen=True)
class PageOutcome:
    """What became of one fetched URL."""

    outcome: str
    fetched: bool = False
    final_url: str | None = None
    http_status: int | None = None
    job_id: str | None = None
    document_id: str | None = None
    version: int | None = None
    file_name: str | None = None
    media_type: str | None = None
    error: str | None = None
    found: list[NewPage] = field(default_factory=list)


class CrawlRepository:
    """Reads and writes of the crawl tables; reads for clients are scoped by tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, spec: CrawlSpec) -> CrawlRow:
        """Record a queued crawl with its seed as the first pending URL."""
        crawl_id = str(uuid.uuid4())
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO gateway.crawls (crawl_id, tenant_id, collection_id, seed_url, seed_kind, max_depth,"
                " max_pages, same_host, include_prefixes, exclude_prefixes)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    crawl_id,
                    spec.tenant_id,
                    spec.collection_id,
                    spec.seed_url,
                    spec.seed_kind,
                    spec.max_depth,
                    spec.max_pages,
                    spec.same_host,
                    list(spec.include_prefixes),
                    list(spec.exclude_prefixes),
                ),
            )
            await conn.execute(
                "INSERT INTO gateway.crawl_pages (crawl_id, url, kind, depth) VALUES (%s, %s, %s, 0)",
                (crawl_id, spec.seed_url, spec.seed_kind),
            )
        found = await self.get(spec.tenant_id, crawl_id)
        assert found is not None
        return found

    async def get(self, tenant_id: str, crawl_id: str) -> CrawlRow | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(CrawlRow)) as cur:
            await cur.execute(
                "SELECT * FROM gateway.crawls WHERE tenant_id = %s AND crawl_id = %s", (tenant_id, crawl_id)
            )
            return await cur.fetchone()

    async def pages(self, crawl_id: str, *, pending_only: bool = False) -> list[CrawlPageRow]:
        """The URLs of a crawl in the order found; pending ones by depth, sitemaps first."""
        query = "SELECT * FROM gateway.crawl_pages WHERE crawl_id = %s"
        if pending_only:
            query += " AND outcome = 'pending' ORDER BY depth, kind = 'page', position"
        else:
            query += " ORDER BY position"
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(CrawlPageRow)) as cur:
            await cur.execute(query, (crawl_id,))
            return await cur.fetchall()

    async def record_page(self, crawl_id: str, url: str, result: PageOutcome) -> None:
        """Store the outcome of ``url`` and add the URLs it led to (known ones are kept as they are)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE gateway.crawl_pages SET outcome = %s, final_url = %s, http_status = %s, job_id = %s,"
                " document_id = %s, version = %s, file_name = %s, media_type = %s, error = %s,"
                " fetched_at = CASE WHEN %s THEN now() END, finished_at = now()"
                " WHERE crawl_id = %s AND url = %s",
                (
                    result.outcome,
                    result.final_url,
                    result.http_status,
                    result.job_id,
                    result.document_id,
                    result.version,
                    result.file_name,
                    result.media_type,
                    result.error,
                    result.fetched,
                    crawl_id,
                    url,
                ),
            )
            if result.found:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO gateway.crawl_pages (crawl_id, url, kind, depth, outcome, error, finished_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s = 'pending' THEN NULL ELSE now() END)"
                        " ON CONFLICT DO NOTHING",
                        [(crawl_id, p.url, p.kind, p.depth, p.outcome, p.error, p.outcome) for p in result.found],
                    )

    async def claim(self, owner: str, *, limit: int, lease_s: float) -> list[CrawlRow]:
        """Lease up to ``limit`` unfinished crawls that no live lease holds, oldest first."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(CrawlRow)) as cur:
            await cur.execute(
                "UPDATE gateway.crawls SET lease_owner = %(owner)s,"
                " lease_expires_at = now() + make_interval(secs => %(lease_s)s),"
                " status = 'running', started_at = COALESCE(started_at, now())"
                " WHERE crawl_id IN (SELECT crawl_id FROM gateway.crawls"
                "   WHERE status IN ('queued', 'running') AND (lease_expires_at IS NULL OR lease_expires_at < now())"
                "   ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
                " RETURNING *",
                {"owner": owner, "lease_s": lease_s, "limit": limit},
            )
            return await cur.fetchall()

    async def renew(self, owner: str, crawl_ids: Sequence[str], *, lease_s: float) -> set[str]:
        """Extend the leases ``owner`` still holds; returns their crawl ids."""
        if not crawl_ids:
            return set()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE gateway.crawls SET lease_expires_at = now() + make_interval(secs => %s)"
                " WHERE crawl_id = ANY(%s) AND lease_owner = %s AND status = 'running' RETURNING crawl_id",
                (lease_s, list(crawl_ids), owner),
            )
            return {row[0] for row in await cur.fetchall()}

    async def release(self, owner: str, crawl_ids: Sequence[str], *, retry_after_s: float = 0.0) -> None:
        """Give up leases so that any gateway resumes these crawls after ``retry_after_s``."""
        if not crawl_ids:
            return
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.crawls SET lease_owner = NULL,"
                " lease_expires_at = now() + make_interval(secs => %s)"
                " WHERE crawl_id = ANY(%s) AND lease_owner = %s",
                (retry_after_s, list(crawl_ids), owner),
            )

    async def finish(self, owner: str, crawl_id: str, *, status: str, error: str | None = None) -> bool:
        """Mark a leased crawl done or failed; False if ``owner`` no longer holds it."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE gateway.crawls SET status = %s, error = %s, finished_at = now(),"
                " lease_owner = NULL, lease_expires_at = NULL"
                " WHERE crawl_id = %s AND lease_owner = %s AND status = 'running'",
                (status, error, crawl_id, owner),
            )
            return cur.rowcount == 1
