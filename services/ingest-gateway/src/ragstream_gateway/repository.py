"""The gateway's tables: collections, documents and their versions (PostgreSQL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True)
class VersionRow:
    document_id: str
    tenant_id: str
    collection_id: str
    file_name: str
    version: int
    job_id: str
    sha256: str
    object_key: str
    media_type: str
    size_bytes: int
    created_at: datetime
    published_at: datetime | None


_VERSION_SELECT = """
SELECT d.document_id, d.tenant_id, d.collection_id, d.file_name, v.version, v.job_id, v.sha256,
       v.object_key, v.media_type, v.size_bytes, v.created_at, v.published_at
FROM gateway.document_versions v JOIN gateway.documents d USING (document_id)
"""


class DocumentRepository:
    """Reads and writes of the gateway's tables; every query is scoped by tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def find_by_content(self, tenant_id: str, collection_id: str, sha256: str) -> VersionRow | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                _VERSION_SELECT + " WHERE d.tenant_id = %s AND d.collection_id = %s AND v.sha256 = %s"
                " ORDER BY v.version DESC LIMIT 1",
                (tenant_id, collection_id, sha256),
            )
            return await cur.fetchone()

    async def add_version(
        self,
        *,
        tenant_id: str,
        collection_id: str,
        file_name: str,
        job_id: str,
        sha256: str,
        object_key: str,
        media_type: str,
        size_bytes: int,
        embedding_model: str,
        dimensions: int,
    ) -> VersionRow:
        """Record a new version of the document named ``file_name`` (creating both if new)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO gateway.collections (tenant_id, collection_id, embedding_model, dimensions)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (tenant_id, collection_id, embedding_model, dimensions),
            )
            cur = await conn.execute(
                "INSERT INTO gateway.documents (document_id, tenant_id, collection_id, file_name)"
                " VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, collection_id, file_name) DO UPDATE SET file_name = EXCLUDED.file_name"
                " RETURNING document_id",
                (str(uuid.uuid4()), tenant_id, collection_id, file_name),
            )
            row = await cur.fetchone()
            assert row is not None
            document_id = row[0]
            # lock the document's versions so that two concurrent uploads get distinct numbers
            await conn.execute("SELECT 1 FROM gateway.documents WHERE document_id = %s FOR UPDATE", (document_id,))
            cur = await conn.execute(
                "INSERT INTO gateway.document_versions"
                " (document_id, version, job_id, sha256, object_key, media_type, size_bytes)"
                " SELECT %s, COALESCE(MAX(version), 0) + 1, %s, %s, %s, %s, %s"
                " FROM gateway.document_versions WHERE document_id = %s RETURNING version",
                (document_id, job_id, sha256, object_key, media_type, size_bytes, document_id),
            )
            version_row = await cur.fetchone()
            assert version_row is not None
        found = await self.get_version(tenant_id, document_id, int(version_row[0]))
        assert found is not None
        return found

    async def get_version(self, tenant_id: str, document_id: str, version: int) -> VersionRow | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                _VERSION_SELECT + " WHERE d.tenant_id = %s AND d.document_id = %s AND v.version = %s",
                (tenant_id, document_id, version),
            )
            return await cur.fetchone()

    async def list_versions(self, tenant_id: str, collection_id: str, *, limit: int = 100) -> list[VersionRow]:
        """The newest version of each document of a collection, newest first."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                "SELECT DISTINCT ON (document_id) * FROM (" + _VERSION_SELECT + ""
                " WHERE d.tenant_id = %s AND d.collection_id = %s) AS all_versions"
                " ORDER BY document_id, version DESC",
                (tenant_id, collection_id),
            )
            rows = await cur.fetchall()
        return sorted(rows, key=lambda r: r.created_at, reverse=True)[:limit]

    async def document_versions(self, tenant_id: str, document_id: str) -> list[VersionRow]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                _VERSION_SELECT + " WHERE d.tenant_id = %s AND d.document_id = %s ORDER BY v.version",
                (tenant_id, document_id),
            )
            return await cur.fetchall()

    async def mark_published(self, job_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE gateway.document_versions SET published_at = now() WHERE job_id = %s", (job_id,))

    async def unpublished(self, older_than_s: float) -> list[VersionRow]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            await cur.execute(
                _VERSION_SELECT + " WHERE v.published_at IS NULL"
                " AND v.created_at < now() - make_interval(secs => %s) ORDER BY v.created_at LIMIT 100",
                (older_than_s,),
            )
            return await cur.fetchall()
