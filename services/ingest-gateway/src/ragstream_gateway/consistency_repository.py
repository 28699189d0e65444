"""What the consistency check reads of the gateway's tables: versions and the keys they refer to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True)
class RegistryVersion:
    document_id: str
    collection_id: str
    version: int
    status: str
    object_key: str
    chunk_count: int | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class StagedUpload:
    staging_key: str
    collection_id: str
    status: str


#: direct uploads whose staged bytes are still wanted
OPEN_UPLOADS = ("pending", "receiving", "received", "finalizing")


class ConsistencyRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def versions(self, tenant_id: str) -> list[RegistryVersion]:
        """Every version of every document of the tenant, deleted documents included."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(RegistryVersion)) as cur:
            await cur.execute(
                "SELECT d.document_id, d.collection_id, v.version, v.status, v.object_key, v.chunk_count, d.deleted_at"
                " FROM gateway.document_versions v JOIN gateway.documents d USING (document_id)"
                " WHERE d.tenant_id = %s ORDER BY d.document_id, v.version",
                (tenant_id,),
            )
            return await cur.fetchall()

    async def staged_uploads(self, tenant_id: str) -> list[StagedUpload]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(StagedUpload)) as cur:
            await cur.execute(
                "SELECT staging_key, collection_id, status FROM gateway.uploads WHERE tenant_id = %s", (tenant_id,)
            )
            return await cur.fetchall()

    async def collection_exists(self, tenant_id: str, collection_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM gateway.collections WHERE tenant_id = %s AND collection_id = %s",
                (tenant_id, collection_id),
            )
            return await cur.fetchone() is not None
