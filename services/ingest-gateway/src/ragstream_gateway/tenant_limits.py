"""A tenant's rate limits and upload quotas: the admin's overrides, current usage, quota checks.

Overrides live in ``auth.tenant_limits`` (NULL: the configured default; 0: no limit); the rate
limiter of every service (``ragstream_core.auth.RateLimiter``) reads the same row. Usage is
counted from the documents themselves, so deleting a document frees its share at once:

- bytes: the stored objects of the tenant's live (not deleted) documents, each once (a re-embed,
  or the same bytes in two collections, stores nothing new);
- documents: the tenant's live documents;
- plus the shares reserved by uploads under way (``gateway.quota_reservations``).

``check_quota`` runs before an upload's bytes are stored (a stream of unknown size is cut off
as soon as it passes what is left of the byte quota: ``ByteQuota``, ``spool_stream``) and raises ``QuotaExceeded`` (403,
``quota_exceeded``) with usage, limit and how to raise it. Uploads that store nothing new are
never refused: the same bytes again in a collection (answered ``unchanged``) or, for the document
count, a new version of a live document. With ``reserve`` the check and a reservation of the
upload's share are one transaction under a per-tenant lock, and the transaction that records the
version deletes the reservation (``NewVersion.quota_reservation``): uploads racing in one tenant
cannot overshoot a quota. A reservation whose upload died stops counting after ``RESERVATION_TTL_S``.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth import RateLimits
from ragstream_core.errors import QuotaExceeded
from ragstream_gateway.repository import audit, lock_key
from ragstream_gateway.settings import GatewaySettings

__all__ = [
    "LIMIT_FIELDS",
    "QUOTA_ANSWER",
    "RESERVATION_TTL_S",
    "ByteQuota",
    "TenantLimitsRepository",
    "Usage",
    "byte_quota",
    "check_quota",
    "effective_limits",
    "limits_body",
]

#: every limit a tenant may override, in ``auth.tenant_limits``' column order
LIMIT_FIELDS = (
    "upload_per_key",
    "upload_per_tenant",
    "chat_per_key",
    "chat_per_tenant",
    "quota_bytes",
    "quota_documents",
)
#: the OpenAPI description of the 403 of an upload route
QUOTA_ANSWER = "A role too low, or the upload would take the tenant over its quota (code quota_exceeded: usage, limit)."
#: how long an upload's reserved share counts if its gateway dies before recording the version
RESERVATION_TTL_S = 3600
_RAISE = "an admin raises it with PUT /v1/tenant/limits, or delete documents to free it"


@dataclass(frozen=True)
class Usage:
    bytes: int
    documents: int


def defaults(settings: GatewaySettings) -> dict[str, int]:
    """The configured limits every tenant has unless it overrides them."""
    rates = RateLimits.from_settings(settings.core)
    return {
        "upload_per_key": rates.upload_per_key,
        "upload_per_tenant": rates.upload_per_tenant,
        "chat_per_key": rates.chat_per_key,
        "chat_per_tenant": rates.chat_per_tenant,
        "quota_bytes": settings.quota_bytes,
        "quota_documents": settings.quota_documents,
    }


def effective_limits(overrides: dict[str, int | None], settings: GatewaySettings) -> dict[str, int]:
    """The limits in force: each override, else the default."""
    base = defaults(settings)
    return {name: base[name] if overrides.get(name) is None else int(overrides[name] or 0) for name in LIMIT_FIELDS}


class TenantLimitsRepository:
    """Reads and writes of ``auth.tenant_limits`` and the usage quotas count; scoped by tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def overrides(self, tenant_id: str) -> dict[str, int | None]:
        """The tenant's own limits (None: the default)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {', '.join(LIMIT_FIELDS)} FROM auth.tenant_limits WHERE tenant_id = %s", (tenant_id,)
            )
            row = await cur.fetchone()
        return dict(zip(LIMIT_FIELDS, row or (None,) * len(LIMIT_FIELDS), strict=True))

    async def replace(self, tenant_id: str, values: dict[str, int | None], *, actor: str) -> None:
        """Set the tenant's own limits (every field; None: back to the default), audited."""
        columns = ", ".join(LIMIT_FIELDS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in LIMIT_FIELDS)
        params = [values.get(name) for name in LIMIT_FIELDS]
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO auth.tenant_limits (tenant_id, {columns}, updated_by)"
                f" VALUES (%s, {', '.join(['%s'] * len(LIMIT_FIELDS))}, %s)"
                f" ON CONFLICT (tenant_id) DO UPDATE SET {updates},"
                " updated_at = now(), updated_by = excluded.updated_by",
                (tenant_id, *params, actor),
            )
            await audit(conn, tenant_id=tenant_id, actor=actor, action="tenant.limits", outcome="ok", limits=values)

    async def usage(self, tenant_id: str) -> Usage:
        """What the tenant stores, with the shares of its uploads under way."""
        async with self.pool.connection() as conn:
            return await _usage(conn, tenant_id)

    async def check(self, want: Wanted, *, max_bytes: int, max_documents: int, reserve: bool) -> str | None:
        """Raise ``QuotaExceeded`` if ``want`` would take the tenant over a quota; with ``reserve``,
        hold its share until the version is recorded (the reservation's id; None: nothing to hold)."""
        async with self.pool.connection() as conn, conn.transaction():
            if reserve:  # checks and reservations of one tenant, one at a time
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("quota", want.tenant_id),))
            cur = await conn.execute(
                "SELECT"
                " EXISTS (SELECT 1 FROM gateway.documents d JOIN gateway.document_versions v USING (document_id)"
                "  WHERE d.tenant_id = %(t)s AND d.collection_id = %(c)s AND d.deleted_at IS NULL"
                "  AND v.sha256 = %(s)s),"
                " EXISTS (SELECT 1 FROM gateway.documents d WHERE d.tenant_id = %(t)s AND d.deleted_at IS NULL"
                "  AND ((d.collection_id = %(c)s AND d.file_name = %(f)s) OR d.document_id = %(r)s)),"
                " EXISTS (SELECT 1 FROM gateway.documents d JOIN gateway.document_versions v USING (document_id)"
                "  WHERE d.tenant_id = %(t)s AND d.deleted_at IS NULL AND v.sha256 = %(s)s)",
                {
                    "t": want.tenant_id,
                    "c": want.collection_id,
                    "s": want.sha256 or "",
                    "f": want.file_name,
                    "r": want.replaces,
                },
            )
            row = await cur.fetchone()
            assert row is not None
            same_bytes, known_document, stored = (bool(value) for value in row)
            if same_bytes and not want.force:
                return None  # answered unchanged: nothing stored, nothing counted
            usage = await _usage(conn, want.tenant_id)
            new_bytes = 0 if stored else want.size
            new_documents = 0 if known_document else 1
            if max_bytes and new_bytes and usage.bytes + new_bytes > max_bytes:
                raise QuotaExceeded(
                    f"storing {want.file_name!r} ({new_bytes} bytes) would take the tenant {want.tenant_id} over its"
                    f" storage quota: {usage.bytes} of {max_bytes} bytes used; {_RAISE}",
                    code="quota_exceeded",
                    quota="bytes",
                    usage=usage.bytes,
                    limit=max_bytes,
                    requested=new_bytes,
                )
            if max_documents and new_documents and usage.documents + 1 > max_documents:
                raise QuotaExceeded(
                    f"{want.file_name!r} would be document {usage.documents + 1} of the tenant {want.tenant_id}, over"
                    f" its quota of {max_documents} documents; {_RAISE} (a new version of an existing document is"
                    " not counted)",
                    code="quota_exceeded",
                    quota="documents",
                    usage=usage.documents,
                    limit=max_documents,
                )
            if not reserve or not (new_bytes or new_documents):
                return None
            await conn.execute(
                "DELETE FROM gateway.quota_reservations WHERE tenant_id = %s AND expires_at <= now()",
                (want.tenant_id,),
            )
            reservation = str(uuid.uuid4())
            await conn.execute(
                "INSERT INTO gateway.quota_reservations (reservation_id, tenant_id, bytes, documents, expires_at)"
                " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))",
                (reservation, want.tenant_id, new_bytes, new_documents, RESERVATION_TTL_S),
            )
            return reservation

    async def release(self, reservation: str) -> None:
        """Give back a reservation whose upload ended without recording a version."""
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM gateway.quota_reservations WHERE reservation_id = %s", (reservation,))


async def _usage(conn: AsyncConnection[Any], tenant_id: str) -> Usage:
    """Each stored object of the tenant's live documents once, the live documents, and the
    unexpired reservations of uploads under way."""
    cur = await conn.execute(
        "SELECT"
        " (SELECT coalesce(sum(size_bytes), 0) FROM (SELECT DISTINCT v.object_key, v.size_bytes"
        "   FROM gateway.documents d JOIN gateway.document_versions v USING (document_id)"
        "   WHERE d.tenant_id = %(t)s AND d.deleted_at IS NULL) stored),"
        " (SELECT count(*) FROM gateway.documents WHERE tenant_id = %(t)s AND deleted_at IS NULL),"
        " (SELECT coalesce(sum(bytes), 0) FROM gateway.quota_reservations WHERE tenant_id = %(t)s"
        "   AND expires_at > now()),"
        " (SELECT coalesce(sum(documents), 0) FROM gateway.quota_reservations WHERE tenant_id = %(t)s"
        "   AND expires_at > now())",
        {"t": tenant_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return Usage(bytes=int(row[0]) + int(row[2]), documents=int(row[1]) + int(row[3]))


@dataclass(frozen=True)
class Wanted:
    """What an upload would store, for the quota check."""

    tenant_id: str
    collection_id: str
    file_name: str
    size: int
    #: None: not known yet (a direct upload announced)
    sha256: str | None
    replaces: str | None = None
    force: bool = False


@dataclass(frozen=True)
class ByteQuota:
    """A tenant's byte quota as a stream of unknown size starts: refuse once the running size
    passes what is left (``spool_stream``)."""

    tenant_id: str
    usage: int
    limit: int

    @property
    def left(self) -> int:
        return max(0, self.limit - self.usage)

    def refusal(self, file_name: str, received: int) -> QuotaExceeded:
        return QuotaExceeded(
            f"{file_name!r} passed {received} bytes, over what is left of the tenant {self.tenant_id}'s storage"
            f" quota: {self.usage} of {self.limit} bytes used; nothing was stored; {_RAISE}",
            code="quota_exceeded",
            quota="bytes",
            usage=self.usage,
            limit=self.limit,
            requested=received,
        )


async def byte_quota(repository: TenantLimitsRepository, settings: GatewaySettings, tenant_id: str) -> ByteQuota | None:
    """The tenant's byte quota and usage now (None: it has none)."""
    limit = effective_limits(await repository.overrides(tenant_id), settings)["quota_bytes"]
    if not limit:
        return None
    return ByteQuota(tenant_id, (await repository.usage(tenant_id)).bytes, limit)


async def check_quota(
    repository: TenantLimitsRepository,
    settings: GatewaySettings,
    *,
    tenant_id: str,
    collection_id: str,
    file_name: str,
    size: int,
    sha256: str | None,
    replaces: str | None = None,
    force: bool = False,
    reserve: bool = False,
) -> str | None:
    """Raise ``QuotaExceeded`` if storing ``size`` more bytes (and maybe a new document) would take
    the tenant over a quota; ``sha256`` None: not known yet (a direct upload announced). With
    ``reserve``: the id of the reservation holding the upload's share (None: no quota, or nothing
    new to store), for ``NewVersion.quota_reservation``; ``repository.release`` it if the upload fails."""
    limits = effective_limits(await repository.overrides(tenant_id), settings)
    max_bytes, max_documents = limits["quota_bytes"], limits["quota_documents"]
    if not max_bytes and not max_documents:
        return None
    want = Wanted(tenant_id, collection_id, file_name, size, sha256, replaces, force)
    return await repository.check(want, max_bytes=max_bytes, max_documents=max_documents, reserve=reserve)


def limits_body(
    tenant_id: str, overrides: dict[str, int | None], usage: Usage, settings: GatewaySettings
) -> dict[str, Any]:
    """The answer of ``GET /v1/tenant/limits``."""
    return {
        "tenant_id": tenant_id,
        "limits": effective_limits(overrides, settings),
        "overrides": overrides,
        "defaults": defaults(settings),
        "window_s": settings.core.rate_window_s,
        "usage": asdict(usage),
    }
