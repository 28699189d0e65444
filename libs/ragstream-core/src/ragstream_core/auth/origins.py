"""Which browser origins may call the APIs: the global list, each tenant's own, a widget key's.

- ``RAGSTREAM_CORS_ORIGINS`` (the global list) is allowed for every tenant: the gateway's own
  web page, sites the operator trusts. ``*`` allows any origin.
- ``auth.tenant_origins`` holds the origins a tenant admin allows for that tenant only
  (``PUT /v1/tenant/origins`` on the gateway, which writes the table).
- A public chat key (the widget's) carries its own origins: its pages may use that key.

Decisions, the way multi-tenant APIs make them:

- A preflight carries no credentials, so it cannot say which tenant asks: it is answered for an
  origin that is global or that any tenant (or any live chat key) allows (``is_known``).
- An actual request carries the key: its origin must be global or allowed by the key's tenant
  (or by the key itself) (``allows``); otherwise a page of tenant B's allowed site could drive
  tenant A's key in a victim's browser.

Lookups are cached per process for ``cache_s`` seconds, like ``KeyStore``: a change reaches
every service within that time (the gateway, which writes the table, forgets at once).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth.principal import Principal

T = TypeVar("T")


@dataclass(frozen=True)
class _Cached(Generic[T]):
    value: T
    fetched: float


def normal_origin(origin: str) -> str:
    """An origin as browsers send it and as it is stored: no trailing slash, lower case."""
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    """The browser origins one service accepts (see the module's docstring).

    Without a ``pool`` only the global list exists (tests of other concerns, services that read
    no ``auth`` tables).
    """

    def __init__(
        self,
        global_origins: Sequence[str],
        *,
        pool: AsyncConnectionPool | None = None,
        cache_s: float = 5.0,
        max_cached: int = 10_000,
    ) -> None:
        self.global_origins = frozenset(normal_origin(o) for o in global_origins if o.strip())
        self.any_origin = "*" in self.global_origins
        self.pool = pool
        self.cache_s = cache_s
        self.max_cached = max_cached
        self._tenants: dict[str, _Cached[frozenset[str]]] = {}
        self._known: dict[str, _Cached[bool]] = {}

    def forget(self) -> None:
        """Drop every cached lookup (after a tenant's origins changed in this process)."""
        self._tenants.clear()
        self._known.clear()

    def is_global(self, origin: str) -> bool:
        """Whether every tenant's key may be used from ``origin`` (the configured list)."""
        return self.any_origin or normal_origin(origin) in self.global_origins

    async def is_known(self, origin: str) -> bool:
        """Whether any page of ``origin`` may call at all: global, or allowed by some tenant or by
        some live public chat key. What a preflight (which names no tenant) is answered by."""
        origin = normal_origin(origin)
        if self.is_global(origin):
            return True
        if self.pool is None:
            return False
        now = time.monotonic()
        cached = self._known.get(origin)
        if cached is None or now - cached.fetched > self.cache_s:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM auth.tenant_origins WHERE origin = %s)"
                    " OR EXISTS (SELECT 1 FROM auth.api_keys WHERE origins IS NOT NULL AND %s = ANY (origins)"
                    " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))",
                    (origin, origin),
                )
                row = await cur.fetchone()
            cached = _Cached(bool(row and row[0]), now)
            self._remember(self._known, origin, cached)
        return cached.value

    async def allows(self, origin: str, principal: Principal) -> bool:
        """Whether a page of ``origin`` may make a request as ``principal``: the origin is global,
        allowed by the principal's tenant, or one of the principal's own (a public chat key)."""
        origin = normal_origin(origin)
        if self.is_global(origin) or (principal.origins is not None and origin in principal.origins):
            return True
        return origin in await self.tenant_origins(principal.tenant_id)

    async def tenant_origins(self, tenant_id: str) -> frozenset[str]:
        """The origins ``tenant_id`` allows besides the global list (cached)."""
        if self.pool is None:
            return frozenset()
        now = time.monotonic()
        cached = self._tenants.get(tenant_id)
        if cached is None or now - cached.fetched > self.cache_s:
            async with self.pool.connection() as conn:
                cur = await conn.execute("SELECT origin FROM auth.tenant_origins WHERE tenant_id = %s", (tenant_id,))
                rows = await cur.fetchall()
            cached = _Cached(frozenset(str(row[0]) for row in rows), now)
            self._remember(self._tenants, tenant_id, cached)
        return cached.value

    def _remember(self, cache: dict[str, _Cached[T]], key: str, value: _Cached[T]) -> None:
        if len(cache) >= self.max_cached:  # bounded: a flood of made-up origins cannot grow it
            cache.clear()
        cache[key] = value
