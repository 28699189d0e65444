"""Per-collection chat settings and the collections chat knows, in PostgreSQL (schema ``chat``).

A collection's settings override the service defaults column by column: ``None`` means "the
default", so changing a default in the environment changes every collection that kept it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

__all__ = ["CollectionChat", "CollectionStore"]


@dataclass(frozen=True)
class CollectionChat:
    """How chat answers in one collection; ``None`` fields take the service default."""

    provider: str | None = None
    min_score: float | None = None
    top_k: int | None = None


class CollectionStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def settings(self, tenant_id: str, collection_id: str) -> CollectionChat:
        """The collection's own settings (all ``None`` when it has none)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT provider, min_score, top_k FROM chat.collection_settings "
                "WHERE tenant_id = %s AND collection_id = %s",
                (tenant_id, collection_id),
            )
            row = await cur.fetchone()
        if row is None:
            return CollectionChat()
        provider, min_score, top_k = row
        return CollectionChat(provider, None if min_score is None else round(float(min_score), 4), top_k)

    async def put_settings(self, tenant_id: str, collection_id: str, chat: CollectionChat) -> None:
        """Replace the collection's settings (idempotent)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO chat.collection_settings (tenant_id, collection_id, provider, min_score, top_k) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, collection_id) DO UPDATE SET "
                "provider = excluded.provider, min_score = excluded.min_score, top_k = excluded.top_k, "
                "updated_at = now()",
                (tenant_id, collection_id, chat.provider, chat.min_score, chat.top_k),
            )

    async def note_indexed(self, tenant_id: str, collection_id: str) -> None:
        """Remember that the collection has indexed content (idempotent)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO chat.collections_seen (tenant_id, collection_id) VALUES (%s, %s) "
                "ON CONFLICT (tenant_id, collection_id) DO UPDATE SET last_indexed_at = now()",
                (tenant_id, collection_id),
            )

    async def known(self, tenant_id: str) -> list[dict[str, Any]]:
        """Collections seen indexed, configured or chatted in, by id, with when chat first knew them."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT collection_id, min(at) FROM ("
                " SELECT collection_id, last_indexed_at AS at FROM chat.collections_seen WHERE tenant_id = %s"
                " UNION ALL SELECT collection_id, updated_at FROM chat.collection_settings WHERE tenant_id = %s"
                " UNION ALL SELECT collection_id, created_at FROM chat.conversations WHERE tenant_id = %s"
                ") known GROUP BY collection_id ORDER BY collection_id",
                (tenant_id, tenant_id, tenant_id),
            )
            return [{"collection_id": c, "since": at} for c, at in await cur.fetchall()]
