"""Rate limits per API key and per tenant, shared by every replica through PostgreSQL.

Each limit is a GCRA bucket (the generic cell rate algorithm, a token bucket without a refill
timer): ``N`` requests per ``window_s`` with a burst of ``N``. A bucket is one row of
``auth.rate_buckets`` keyed by (scope, subject, action) holding its theoretical arrival time;
one ``INSERT .. ON CONFLICT DO UPDATE .. RETURNING`` checks and charges the key's and the
tenant's buckets at once, with the database's clock, so replicas share the limit exactly and no
clock skew between them matters. A refused request is charged to neither: a refused bucket is
left alone, and when only one of the two refuses, the other's charge is given back (one more
statement, on the refusing path only; GCRA charges add up, so a refund is exact whatever ran in
between). Otherwise a client retrying fast could starve itself, each bucket refusing in turn.

Limits come from ``CoreSettings`` (``RAGSTREAM_RATE_*``) unless the tenant has its own in
``auth.tenant_limits`` (``PUT /v1/tenant/limits`` on the gateway), read in the same statement:
a change applies to the next request of every replica (charges made before it keep the old
spacing, so a changed limit is fully in force within one window). 0 turns a limit off. A bucket
is one small row per key or tenant and action, kept (the table is bounded by the keys there are). In ``open`` mode
there is no key: only the tenant's (``X-Tenant-Id``) limit applies.

Refusals raise ``RateLimited`` (429 with ``Retry-After``; gRPC ``RESOURCE_EXHAUSTED`` with
``retry-after``), are logged and counted in ``ragstream_rate_limited_total``; they are not
written to the audit log (a flood would flood it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import structlog
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth.principal import Principal
from ragstream_core.errors import RateLimited
from ragstream_core.settings import CoreSettings

__all__ = ["ACTIONS", "RATE_LIMITED", "Action", "RateLimiter", "RateLimits", "RatePolicy"]

log = structlog.get_logger(__name__)

Action = Literal["upload", "chat"]
ACTIONS: tuple[Action, ...] = ("upload", "chat")
#: (method, route template) -> the action it counts as; gRPC: ("RPC", full method name)
RatePolicy = dict[tuple[str, str], Action]

RATE_LIMITED = Counter(
    "ragstream_rate_limited_total",
    "Requests refused by a rate limit (429 / RESOURCE_EXHAUSTED), by action and the limit that refused.",
    ["action", "limit"],
)
for _action in ACTIONS:
    for _limit in ("key", "tenant"):
        RATE_LIMITED.labels(_action, _limit)

_NOUN = {"upload": "upload calls", "chat": "questions"}

# The columns of auth.tenant_limits per action; chosen from this table, never from input.
_COLUMNS = {
    "upload": ("upload_per_key", "upload_per_tenant"),
    "chat": ("chat_per_key", "chat_per_tenant"),
}

# GCRA per row: T = window / N is the emission interval; a request at time ``now`` is allowed when
# max(tat, now) - now <= window - T (the burst tolerance for a burst of N); it moves tat to
# max(tat, now) + T. A refused request leaves tat alone. ``excluded`` is the row proposed for
# insertion: its checked_at is now and its interval T.
_CHECK = """
WITH lim AS (
    SELECT coalesce(t.{per_key}, %(key_default)s) AS per_key,
           coalesce(t.{per_tenant}, %(tenant_default)s) AS per_tenant,
           extract(epoch FROM clock_timestamp())::double precision AS now
    FROM (SELECT 1) AS one LEFT JOIN auth.tenant_limits t ON t.tenant_id = %(tenant)s
), wanted AS (
    SELECT 'key' AS scope, %(key_id)s::text AS subject, per_key AS per_window, now FROM lim
        WHERE %(key_id)s::text IS NOT NULL AND per_key > 0
    UNION ALL
    SELECT 'tenant', %(tenant)s::text, per_tenant, now FROM lim WHERE per_tenant > 0
)
INSERT INTO auth.rate_buckets AS b (scope, subject, action, tat, checked_at, interval_s, per_window, allowed)
SELECT scope, subject, %(action)s, now + %(window)s / per_window, now, %(window)s / per_window, per_window, true
FROM wanted
ON CONFLICT (scope, subject, action) DO UPDATE SET
    allowed = greatest(b.tat, excluded.checked_at) - excluded.checked_at <= %(window)s - excluded.interval_s,
    tat = CASE WHEN greatest(b.tat, excluded.checked_at) - excluded.checked_at <= %(window)s - excluded.interval_s
               THEN greatest(b.tat, excluded.checked_at) + excluded.interval_s ELSE b.tat END,
    checked_at = excluded.checked_at,
    interval_s = excluded.interval_s,
    per_window = excluded.per_window
RETURNING scope, allowed, tat - checked_at - (%(window)s - interval_s) AS wait_s, per_window, interval_s
"""

_REFUND = """
UPDATE auth.rate_buckets SET tat = tat - %(interval)s
WHERE scope = %(scope)s AND subject = %(subject)s AND action = %(action)s
"""


def _default(setting: str) -> int | float:
    """The default of a ``CoreSettings`` field: the settings are the one place the defaults live."""
    value = CoreSettings.model_fields[setting].default
    assert isinstance(value, int | float)
    return value


@dataclass(frozen=True)
class RateLimits:
    """The default limits (requests per ``window_s``; 0: off), from ``CoreSettings``."""

    upload_per_key: int = int(_default("rate_upload_per_key"))
    upload_per_tenant: int = int(_default("rate_upload_per_tenant"))
    chat_per_key: int = int(_default("rate_chat_per_key"))
    chat_per_tenant: int = int(_default("rate_chat_per_tenant"))
    window_s: float = float(_default("rate_window_s"))

    @classmethod
    def from_settings(cls, core: CoreSettings) -> RateLimits:
        return cls(
            upload_per_key=core.rate_upload_per_key,
            upload_per_tenant=core.rate_upload_per_tenant,
            chat_per_key=core.rate_chat_per_key,
            chat_per_tenant=core.rate_chat_per_tenant,
            window_s=core.rate_window_s,
        )

    def per_key(self, action: Action) -> int:
        return self.upload_per_key if action == "upload" else self.chat_per_key

    def per_tenant(self, action: Action) -> int:
        return self.upload_per_tenant if action == "upload" else self.chat_per_tenant


class RateLimiter:
    """Checks and charges the rate limits of a caller's key and tenant (see the module's docstring)."""

    def __init__(self, pool: AsyncConnectionPool, limits: RateLimits) -> None:
        self.pool = pool
        self.limits = limits

    async def check(self, principal: Principal, action: Action) -> None:
        """Charge one ``action`` to the caller's key and tenant; raises ``RateLimited`` (nothing
        charged to the refusing bucket) naming the limit, its rate and when to retry."""
        per_key, per_tenant = _COLUMNS[action]
        params = {
            "key_default": self.limits.per_key(action),
            "tenant_default": self.limits.per_tenant(action),
            "tenant": principal.tenant_id,
            "key_id": principal.key_id,
            "action": action,
            "window": float(self.limits.window_s),
        }
        async with self.pool.connection() as conn:
            cur = await conn.execute(_CHECK.format(per_key=per_key, per_tenant=per_tenant), params)
            rows = await cur.fetchall()
            refused = [(str(scope), float(wait), int(rate)) for scope, allowed, wait, rate, _ in rows if not allowed]
            if not refused:
                return
            for scope, allowed, _, _, interval in rows:
                if allowed:
                    subject = principal.key_id if scope == "key" else principal.tenant_id
                    await conn.execute(
                        _REFUND, {"interval": interval, "scope": scope, "subject": subject, "action": action}
                    )
        scope, wait, rate = max(refused, key=lambda r: r[1])  # the caller must wait for the slowest
        raise self._refusal(principal, action, scope=scope, wait_s=wait, rate=rate)

    def _refusal(self, principal: Principal, action: Action, *, scope: str, wait_s: float, rate: int) -> RateLimited:
        retry_after = max(1, math.ceil(wait_s))
        window = self.limits.window_s
        who = f"the key {principal.key_id}" if scope == "key" else f"the tenant {principal.tenant_id}"
        RATE_LIMITED.labels(action, scope).inc()
        log.warning(
            "rate.limited",
            action=action,
            limit=scope,
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            per_window=rate,
            retry_after_s=retry_after,
        )
        return RateLimited(
            f"rate limit of {who} reached: at most {rate} {_NOUN[action]} per {window:g} s; retry in"
            f" {retry_after} s (an admin sees and changes the tenant's limits with GET/PUT /v1/tenant/limits)",
            code="rate_limited",
            limit=scope,
            action=action,
            limit_per_window=rate,
            window_s=window,
            retry_after_s=retry_after,
        )
