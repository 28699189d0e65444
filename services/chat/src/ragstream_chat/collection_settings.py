"""Per-collection chat settings and the collections chat knows, in PostgreSQL (schema ``chat``).

A collection's settings override the service defaults column by column: ``None`` means "the
default", so changing a default in the environment changes every collection that kept it.
A collection may have its own OpenAI-compatible endpoint (``CollectionEndpoint``) whose API key
is stored only sealed (``ragstream_core.secrets``), bound to the tenant, collection and base URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ragstream_core.errors import SecretUnavailable
from ragstream_core.secrets import SecretBox, sealed_key_id

__all__ = ["CollectionChat", "CollectionEndpoint", "CollectionStore", "Rotation", "secret_context", "secret_owner"]

_COLUMNS = "provider, min_score, top_k, openai_base_url, openai_model, api_key_sealed, api_key_hint"


@dataclass(frozen=True)
class CollectionEndpoint:
    """A collection's own OpenAI-compatible endpoint; its API key stays sealed until an answer needs it."""

    base_url: str
    model: str
    api_key_sealed: str | None = None
    #: at most the key's last 4 characters (none for short keys): all the API ever shows of it
    api_key_hint: str | None = None


@dataclass(frozen=True)
class CollectionChat:
    """How chat answers in one collection; ``None`` fields take the service default."""

    provider: str | None = None
    min_score: float | None = None
    top_k: int | None = None
    endpoint: CollectionEndpoint | None = None


@dataclass
class Rotation:
    """What one rotation did: secrets sealed again with the first key, those already under it, and
    those no configured key opens (by tenant and collection, with the key id they need)."""

    rotated: int = 0
    current: int = 0
    unreadable: list[dict[str, str]] = field(default_factory=list)


def secret_context(tenant_id: str, collection_id: str, base_url: str) -> str:
    """What a collection's sealed key is bound to: moved to another row or URL, it does not open."""
    return f"chat.collection_settings\x00{tenant_id}\x00{collection_id}\x00{base_url}"


def secret_owner(tenant_id: str, collection_id: str) -> str:
    """How errors name the owner of a collection's secret."""
    return f"collection {collection_id!r} of tenant {tenant_id!r}"


def _endpoint(
    base_url: str | None, model: str | None, sealed: str | None, hint: str | None
) -> CollectionEndpoint | None:
    return None if base_url is None else CollectionEndpoint(base_url, model or "", sealed, hint)


class CollectionStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def settings(self, tenant_id: str, collection_id: str) -> CollectionChat:
        """The collection's own settings (all ``None`` when it has none)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM chat.collection_settings WHERE tenant_id = %s AND collection_id = %s",
                (tenant_id, collection_id),
            )
            row = await cur.fetchone()
        if row is None:
            return CollectionChat()
        provider, min_score, top_k, base_url, model, sealed, hint = row
        score = None if min_score is None else round(float(min_score), 4)
        return CollectionChat(provider, score, top_k, _endpoint(base_url, model, sealed, hint))

    async def put_settings(self, tenant_id: str, collection_id: str, chat: CollectionChat) -> None:
        """Replace the collection's settings (idempotent); the endpoint's key must come sealed."""
        endpoint = chat.endpoint
        base_url, model = (endpoint.base_url, endpoint.model) if endpoint else (None, None)
        sealed, hint = (endpoint.api_key_sealed, endpoint.api_key_hint) if endpoint else (None, None)
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO chat.collection_settings (tenant_id, collection_id, {_COLUMNS}, api_key_key_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, collection_id) DO UPDATE SET "
                "provider = excluded.provider, min_score = excluded.min_score, top_k = excluded.top_k, "
                "openai_base_url = excluded.openai_base_url, openai_model = excluded.openai_model, "
                "api_key_sealed = excluded.api_key_sealed, api_key_hint = excluded.api_key_hint, "
                "api_key_key_id = excluded.api_key_key_id, updated_at = now()",
                (
                    tenant_id, collection_id, chat.provider, chat.min_score, chat.top_k, base_url, model, sealed,
                    hint, sealed_key_id(sealed) if sealed else None,
                ),
            )  # fmt: skip

    async def rotate_secrets(self, box: SecretBox) -> Rotation:
        """Seal every stored key again with the box's first key, one transaction per row (a row
        changed meanwhile is read again under its lock). Idempotent: a second run rotates nothing.
        A key no configured key opens is left as it is and reported."""
        rotation = Rotation()
        primary = box.key_ids[0]
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT tenant_id, collection_id FROM chat.collection_settings WHERE api_key_sealed IS NOT NULL "
                "ORDER BY tenant_id, collection_id"
            )
            rows = await cur.fetchall()
            for tenant_id, collection_id in rows:
                async with conn.transaction():
                    cur = await conn.execute(
                        "SELECT openai_base_url, api_key_sealed FROM chat.collection_settings "
                        "WHERE tenant_id = %s AND collection_id = %s AND api_key_sealed IS NOT NULL FOR UPDATE",
                        (tenant_id, collection_id),
                    )
                    row = await cur.fetchone()
                    if row is None:  # removed meanwhile
                        continue
                    base_url, sealed = row
                    context = secret_context(tenant_id, collection_id, base_url or "")
                    try:
                        resealed = box.reseal(sealed, context=context, name=secret_owner(tenant_id, collection_id))
                    except SecretUnavailable as exc:
                        rotation.unreadable.append(
                            {"tenant_id": tenant_id, "collection_id": collection_id, "reason": str(exc)}
                        )
                        continue
                    if resealed is None:
                        rotation.current += 1
                        continue
                    await conn.execute(
                        "UPDATE chat.collection_settings SET api_key_sealed = %s, api_key_key_id = %s "
                        "WHERE tenant_id = %s AND collection_id = %s",
                        (resealed, primary, tenant_id, collection_id),
                    )
                    rotation.rotated += 1
        return rotation

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
