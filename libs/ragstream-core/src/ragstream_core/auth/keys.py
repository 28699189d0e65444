"""API keys: how they look, how they are stored, and how a presented key becomes a ``Principal``.

A key is ``rs_live_<12 hex>_<43 base64url>``: the first part (``rs_live_<12 hex>``) is its id,
shown in lists, logs and the audit log; the rest is 256 random bits shown once at creation.
Only the SHA-256 of the whole key is stored. A slow password hash (argon2, bcrypt) protects
low-entropy secrets people choose; a 256-bit random secret cannot be guessed from its hash
whatever the hash costs, while argon2 would add tens of milliseconds of CPU to every request
(GitHub, Stripe and Google Cloud store API keys the same way). A lookup is by hash, so a
presented key is compared by an index, never character by character.

Valid keys are cached per process for ``cache_s`` seconds: a revocation reaches every service
within that time (the process that revokes forgets at once). Expiry is checked on every use.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth.principal import Principal, Role, weaker_role
from ragstream_core.errors import Unauthenticated

KEY_PREFIX = "rs_live_"
KEY_PATTERN = re.compile(r"^rs_live_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")
#: the id of the key configured by ``RAGSTREAM_BOOTSTRAP_ADMIN_KEY``
BOOTSTRAP_KEY_ID = "rs_live_bootstrap"
BOOTSTRAP_ACCOUNT = "bootstrap-admin"
MIN_BOOTSTRAP_KEY_CHARS = 32


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``; the key is shown once and never stored."""
    key_id = KEY_PREFIX + secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return key_id, f"{key_id}_{secret}"


def key_hash(key: str) -> bytes:
    """What is stored of a key: its SHA-256."""
    return hashlib.sha256(key.encode()).digest()


def key_id_of(key: str) -> str | None:
    """The visible id of a well-formed key (for the audit log), else None; never the secret."""
    return key[: len(KEY_PREFIX) + 12] if KEY_PATTERN.match(key) else None


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    expires_at: datetime | None
    fetched: float


class KeyStore:
    """Turns a presented key into a ``Principal``; reads ``auth.api_keys`` (written by the gateway)."""

    def __init__(self, pool: AsyncConnectionPool, *, cache_s: float = 5.0, max_cached: int = 10_000) -> None:
        self.pool = pool
        self.cache_s = cache_s
        self.max_cached = max_cached
        self._cache: dict[bytes, _Cached] = {}

    def forget(self) -> None:
        """Drop every cached key (after a revocation or a role change in this process)."""
        self._cache.clear()

    async def principal(self, key: str) -> Principal:
        """The principal of ``key``; raises ``Unauthenticated`` saying why it is refused."""
        digest = key_hash(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or now - cached.fetched > self.cache_s:
            cached = await self._load(digest, key)
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
            self._cache[digest] = cached
        if cached.expires_at is not None and cached.expires_at <= datetime.now(UTC):
            raise Unauthenticated(
                f"the API key {cached.principal.key_id} expired at {cached.expires_at.isoformat()}; ask an admin"
                " of your tenant for a new one"
            )
        return cached.principal

    async def _load(self, digest: bytes, key: str) -> _Cached:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT k.key_id, k.tenant_id, k.account_id, k.role, k.expires_at, k.revoked_at,"
                " k.collection_ids, k.origins,"
                " a.role AS account_role, a.disabled_at AS account_disabled_at, t.disabled_at AS tenant_disabled_at"
                " FROM auth.api_keys k JOIN auth.accounts a USING (tenant_id, account_id)"
                " JOIN auth.tenants t USING (tenant_id) WHERE k.key_hash = %s",
                (digest,),
            )
            row: dict[str, Any] | None = await cur.fetchone()
        if row is None:
            shown = key_id_of(key)
            raise Unauthenticated(
                f"the API key {shown} is not known"
                if shown
                else "the API key is not valid: send"
                " 'Authorization: Bearer rs_live_…' with a key an admin of your tenant created"
            )
        if row["revoked_at"] is not None:
            raise Unauthenticated(f"the API key {row['key_id']} was revoked at {row['revoked_at'].isoformat()}")
        if row["account_disabled_at"] is not None or row["tenant_disabled_at"] is not None:
            raise Unauthenticated(f"the account of API key {row['key_id']} is disabled")
        role: Role = weaker_role(row["role"], row["account_role"])
        principal = Principal(
            row["tenant_id"],
            row["account_id"],
            role,
            row["key_id"],
            tuple(row["collection_ids"]) if row["collection_ids"] is not None else None,
            tuple(row["origins"]) if row["origins"] is not None else None,
        )
        return _Cached(principal, row["expires_at"], time.monotonic())
