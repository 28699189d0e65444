"""The gateway's table of direct uploads (PostgreSQL): staged bytes waiting to be finalized.

Every state change is one conditional UPDATE, so two requests (or a request and the sweeper)
racing on one upload cannot both win: the loser sees ``None``/``False`` and re-reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

__all__ = ["UploadRepository", "UploadRow"]

#: states from which an upload expires when its time is up (``finalizing`` only once stale)
_OPEN = ("pending", "receiving", "received")


@dataclass(frozen=True)
class UploadRow:
    upload_id: str
    tenant_id: str
    collection_id: str
    file_name: str
    declared_size: int | None
    declared_sha256: str | None
    force: bool
    staging_key: str
    token_sha256: str | None
    status: str
    expires_at: datetime
    created_at: datetime
    claimed_at: datetime | None
    finished_at: datetime | None
    document_id: str | None
    version: int | None
    unchanged: bool | None
    error: dict[str, Any] | None
    #: the document's tags announced with the upload (None: none given)
    tags: list[str] | None = None


class UploadRepository:
    """Reads and writes of ``gateway.uploads``; reads by callers are scoped by tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def _one(self, sql: str, params: tuple[Any, ...]) -> UploadRow | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(UploadRow)) as cur:
            await cur.execute(sql, params)
            return await cur.fetchone()

    async def create(
        self,
        *,
        upload_id: str,
        tenant_id: str,
        collection_id: str,
        file_name: str,
        declared_size: int | None,
        declared_sha256: str | None,
        force: bool,
        staging_key: str,
        token_sha256: str | None,
        ttl_s: float,
        tags: list[str] | None = None,
    ) -> UploadRow:
        """Record a pending upload that expires ``ttl_s`` from now (the database's clock)."""
        row = await self._one(
            "INSERT INTO gateway.uploads (upload_id, tenant_id, collection_id, file_name, declared_size,"
            " declared_sha256, force, staging_key, token_sha256, expires_at, tags)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s), %s) RETURNING *",
            (
                upload_id,
                tenant_id,
                collection_id,
                file_name,
                declared_size,
                declared_sha256,
                force,
                staging_key,
                token_sha256,
                ttl_s,
                tags,
            ),
        )
        assert row is not None
        return row

    async def get(self, tenant_id: str, upload_id: str) -> UploadRow | None:
        return await self._one(
            "SELECT * FROM gateway.uploads WHERE tenant_id = %s AND upload_id = %s", (tenant_id, upload_id)
        )

    async def get_any_tenant(self, upload_id: str) -> UploadRow | None:
        """For the one-time URL, whose token (not a tenant header) says who may write."""
        return await self._one("SELECT * FROM gateway.uploads WHERE upload_id = %s", (upload_id,))

    async def claim_receive(self, upload_id: str, token_sha256: str) -> UploadRow | None:
        """pending → receiving, if the token matches and the upload has not expired."""
        return await self._one(
            "UPDATE gateway.uploads SET status = 'receiving', claimed_at = now()"
            " WHERE upload_id = %s AND status = 'pending' AND token_sha256 = %s AND expires_at > now()"
            " RETURNING *",
            (upload_id, token_sha256),
        )

    async def mark_received(self, upload_id: str) -> bool:
        """receiving → received, spending the token; ``False`` if the upload expired meanwhile."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE gateway.uploads SET status = 'received', token_sha256 = NULL, claimed_at = NULL"
                " WHERE upload_id = %s AND status = 'receiving'",
                (upload_id,),
            )
            return cur.rowcount == 1

    async def claim_finalize(self, tenant_id: str, upload_id: str, *, stale_after_s: float) -> UploadRow | None:
        """pending/received (or a finalize older than ``stale_after_s``: its process died) → finalizing."""
        return await self._one(
            "UPDATE gateway.uploads SET status = 'finalizing', claimed_at = now()"
            " WHERE tenant_id = %s AND upload_id = %s AND expires_at > now()"
            " AND (status IN ('pending', 'received')"
            "      OR (status = 'finalizing' AND claimed_at < now() - make_interval(secs => %s)))"
            " RETURNING *",
            (tenant_id, upload_id, stale_after_s),
        )

    async def release(self, upload_id: str, *, claimed: str, back_to: str) -> None:
        """Undo a claim that failed for a reason worth retrying (the bytes may still come or be read)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.uploads SET status = %s, claimed_at = NULL WHERE upload_id = %s AND status = %s",
                (back_to, upload_id, claimed),
            )

    async def mark_finalized(self, upload_id: str, *, document_id: str, version: int, unchanged: bool) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.uploads SET status = 'finalized', finished_at = now(), claimed_at = NULL,"
                " document_id = %s, version = %s, unchanged = %s WHERE upload_id = %s AND status = 'finalizing'",
                (document_id, version, unchanged, upload_id),
            )

    async def mark_rejected(self, upload_id: str, error: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.uploads SET status = 'rejected', finished_at = now(), claimed_at = NULL, error = %s"
                " WHERE upload_id = %s AND status = 'finalizing'",
                (Jsonb(error), upload_id),
            )

    async def due_for_expiry(self, *, stale_after_s: float, limit: int = 100) -> list[UploadRow]:
        """Unfinalized uploads whose time is up, oldest first."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(UploadRow)) as cur:
            await cur.execute(
                "SELECT * FROM gateway.uploads WHERE expires_at <= now()"
                " AND (status = ANY(%s)"
                "      OR (status = 'finalizing' AND claimed_at < now() - make_interval(secs => %s)))"
                " ORDER BY expires_at LIMIT %s",
                (list(_OPEN), stale_after_s, limit),
            )
            return await cur.fetchall()

    async def mark_expired(self, upload_id: str, *, was: str) -> bool:
        """→ expired, unless the upload changed state since it was read as ``was``."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE gateway.uploads SET status = 'expired', finished_at = now(), claimed_at = NULL,"
                " token_sha256 = NULL WHERE upload_id = %s AND status = %s",
                (upload_id, was),
            )
            return cur.rowcount == 1
