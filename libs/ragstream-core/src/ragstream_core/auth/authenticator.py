"""One decision for every REST route, WebSocket feed and gRPC method: who asks, and may they.

``Authenticator.authorize`` turns the request's credential into a ``Principal`` and checks the
role the route needs; every refusal is logged and written to the audit log (the gateway's
``gateway.audit_log``, which every service shares) with the key's visible id, never the secret.

Modes (``RAGSTREAM_AUTH_MODE``):

- ``keys`` (the default, production): ``Authorization: Bearer <API key>`` decides tenant, actor
  and role; ``X-Tenant-Id`` and ``X-Actor`` are ignored.
- ``open`` (``make run`` on localhost): no key is checked; each request is an admin of
  ``X-Tenant-Id`` (else the default tenant), named by ``X-Actor`` (else ``anonymous``).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Literal

import structlog
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth.keys import KeyStore, key_id_of
from ragstream_core.auth.principal import Principal, Role
from ragstream_core.auth.ratelimit import Action, RateLimiter, RateLimits, RatePolicy
from ragstream_core.errors import Forbidden, InvalidInput, Unauthenticated

log = structlog.get_logger(__name__)

AuthMode = Literal["open", "keys"]
#: a route anyone may call (the web page's files, a one-time upload URL that carries its own token)
PUBLIC: Literal["public"] = "public"
Needed = Role | Literal["public"]
#: (method, route template) -> the role it needs, where the default by method is not right
RolePolicy = dict[tuple[str, str], Needed]
#: all a public chat key (the widget's) may do: ask one of its collections
CHAT_KEY_ROUTES = frozenset(
    {("POST", "/v1/collections/{collection_id}/chat"), ("WEBSOCKET", "/v1/collections/{collection_id}/chat/ws")}
)


def default_role(method: str) -> Role:
    """Reading (GET, a feed) needs a viewer; changing anything an editor."""
    return "viewer" if method in ("GET", "HEAD", "WEBSOCKET") else "editor"


def clean_actor(value: str | None) -> str:
    actor = (value or "anonymous").strip()[:128]
    if not actor or any(unicodedata.category(ch)[0] == "C" for ch in actor):
        raise InvalidInput("X-Actor must be 1-128 printable characters")
    return actor


class Authenticator:
    """Authenticates and authorizes requests of one service (see the module's docstring)."""

    def __init__(
        self,
        *,
        mode: AuthMode,
        default_tenant: str,
        pool: AsyncConnectionPool | None = None,
        cache_s: float = 5.0,
        policy: RolePolicy | None = None,
        limiter: RateLimiter | None = None,
        rates: RatePolicy | None = None,
    ) -> None:
        if mode == "keys" and pool is None:
            raise ValueError("keys mode needs the PostgreSQL pool that holds auth.api_keys")
        self.mode = mode
        self.default_tenant = default_tenant
        self.pool = pool
        self.keys = KeyStore(pool, cache_s=cache_s) if pool is not None else None
        self.policy: RolePolicy = dict(policy or {})
        #: the rate limits; None: none (an app without a database)
        self.limiter = limiter
        #: (method, route) -> the rate-limited action it counts as (REST; gRPC passes its own)
        self.rates: RatePolicy = dict(rates or {})

    def needed(self, method: str, route: str) -> Needed:
        return self.policy.get((method, route), default_role(method))

    async def authorize(
        self,
        *,
        method: str,
        route: str,
        authorization: str | None,
        tenant_header: str | None = None,
        actor_header: str | None = None,
        needed: Needed | None = None,
        collection_id: str | None = None,
        origin: str | None = None,
        action: Action | None = None,
    ) -> Principal | None:
        """The caller of ``method route`` if allowed (None for a public route).

        Raises ``Unauthenticated`` (no, or no valid, key) or ``Forbidden`` (the role is too low),
        each recorded in the audit log. ``needed`` overrides the policy (gRPC passes its own).
        Then charges the rate limits of the route's action (``rates``, or ``action``): raises
        ``RateLimited`` (429) when the key or the tenant is over its limit.
        A public chat key is refused (403) outside ``CHAT_KEY_ROUTES`` and its collections, and
        unless ``origin`` (the request's ``Origin``) is one of its origins.
        """
        needed = needed or self.needed(method, route)
        if needed == "public":
            return None
        action = action or self.rates.get((method, route))
        if self.mode == "open":
            caller = Principal(tenant_header or self.default_tenant, clean_actor(actor_header), "admin")
            await self.throttle(caller, action)
            return caller
        key = _bearer(authorization)
        try:
            if key is None:
                raise Unauthenticated(
                    f"{method} {route} needs an API key: send 'Authorization: Bearer rs_live_…' (an admin of"
                    " your tenant creates keys with POST /v1/keys)"
                )
            assert self.keys is not None
            principal = await self.keys.principal(key)
        except Unauthenticated as exc:
            await self._refused("unauthenticated", str(exc), method, route, key_id=key_id_of(key or ""))
            raise
        scope_error = _out_of_scope(principal, method, route, collection_id, origin)
        if scope_error is not None:
            await self._refused("forbidden", str(scope_error), method, route, principal=principal)
            raise scope_error
        if not principal.allows(needed):
            error = Forbidden(
                f"{method} {route} needs the role {needed} (or higher); the key {principal.key_id} has the role"
                f" {principal.role}",
                needed_role=needed,
                role=principal.role,
            )
            await self._refused("forbidden", str(error), method, route, principal=principal)
            raise error
        await self.throttle(principal, action)
        return principal

    async def identify(self, *, authorization: str | None, tenant_header: str | None = None) -> Principal | None:
        """Who a request's credential names, without any role check or audit (None: no valid key).

        For decisions made before a route is known (the browser origin check); the route's own
        ``authorize`` still decides, and audits, the request.
        """
        if self.mode == "open":
            return Principal(tenant_header or self.default_tenant, "anonymous", "admin")
        key = _bearer(authorization)
        if key is None or self.keys is None:
            return None
        try:
            return await self.keys.principal(key)
        except Unauthenticated:
            return None

    async def refuse(self, error: Exception, *, method: str, route: str, principal: Principal) -> None:
        """Log and audit a refusal decided outside ``authorize`` (a page's origin, say)."""
        await self._refused("forbidden", str(error), method, route, principal=principal)

    async def throttle(self, caller: Principal, action: Action | None) -> None:
        """Charge one ``action`` to the caller's rate limits (no action or no limiter: nothing);
        raises ``RateLimited``. A WebSocket calls it per question, the handshake being one request."""
        if action is not None and self.limiter is not None:
            await self.limiter.check(caller, action)

    async def record(
        self, caller: Principal, action: str, *, target: str, outcome: str = "ok", **detail: object
    ) -> None:
        """Write one change a caller made to the audit log (services that do not own it: chat)."""
        if self.pool is None:
            return
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO gateway.audit_log (tenant_id, actor, action, outcome, detail) VALUES (%s, %s, %s, %s, %s)",
                (
                    caller.tenant_id,
                    caller.actor,
                    action,
                    outcome,
                    json.dumps({"target": target, "key_id": caller.key_id, **(detail or {})}, default=str),
                ),
            )

    async def _refused(
        self,
        outcome: str,
        reason: str,
        method: str,
        route: str,
        *,
        key_id: str | None = None,
        principal: Principal | None = None,
    ) -> None:
        tenant = principal.tenant_id if principal else ""
        actor = principal.actor if principal else (key_id or "anonymous")
        key = principal.key_id if principal else key_id
        log.warning("auth.refused", outcome=outcome, method=method, route=route, key_id=key, tenant_id=tenant)
        if self.pool is None:
            return
        detail = {"method": method, "route": route, "key_id": key, "reason": reason}
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO gateway.audit_log (tenant_id, actor, action, outcome, detail)"
                " VALUES (%s, %s, 'auth.refused', %s, %s)",
                (tenant, actor, outcome, json.dumps(detail)),
            )


def _out_of_scope(
    principal: Principal, method: str, route: str, collection_id: str | None, origin: str | None
) -> Forbidden | None:
    """Why a public chat key may not make this request (None: it may, or the key is not one)."""
    if principal.collection_ids is not None and (
        (method, route) not in CHAT_KEY_ROUTES or collection_id not in principal.collection_ids
    ):
        return Forbidden(
            f"the key {principal.key_id} is a public chat key: it may only ask the collections"
            f" {', '.join(principal.collection_ids)} (POST /v1/collections/{{collection_id}}/chat)"
        )
    if principal.origins is not None and (origin or "").rstrip("/") not in principal.origins:
        return Forbidden(
            f"the key {principal.key_id} may only be used by pages of {', '.join(principal.origins)};"
            f" this request comes from {origin or 'no page (no Origin header)'}"
        )
    return None


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def authenticator_from(
    *,
    mode: AuthMode,
    cache_s: float,
    default_tenant: str,
    pool: AsyncConnectionPool,
    listen_hosts: tuple[str, ...] = (),
    policy: RolePolicy | None = None,
    rate_limits: RateLimits | None = None,
) -> Authenticator:
    """The configured authenticator of a service (``CoreSettings.auth_mode`` / ``auth_cache_s``).

    Refuses (``SystemExit``) ``open`` mode on an address other machines can reach: without keys,
    anyone who reaches the port is an admin of every tenant.
    """
    exposed = [host for host in listen_hosts if host not in LOOPBACK]
    if mode == "open" and exposed:
        raise SystemExit(
            f"RAGSTREAM_AUTH_MODE=open checks no API key, so it serves only on loopback; this service listens"
            f" on {', '.join(exposed)}: set RAGSTREAM_AUTH_MODE=keys (README: Security) or listen on 127.0.0.1"
        )
    if mode == "open":
        log.warning("auth.open_mode", detail="no API key is checked: every request is an admin (make run only)")
    limiter = RateLimiter(pool, rate_limits) if rate_limits is not None else None
    return Authenticator(
        mode=mode, default_tenant=default_tenant, pool=pool, cache_s=cache_s, policy=policy, limiter=limiter
    )
