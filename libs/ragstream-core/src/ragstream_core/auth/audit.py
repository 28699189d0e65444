"""The refused and failed changes, in the audit log beside the ones that succeeded.

Services record each change they make (``audit()`` in the gateway, ``Authenticator.record`` in
chat) with its own action and detail, and ``Authenticator`` records every authentication or role
refusal. ``AuditRefusedChanges`` records the rest: a mutating request (POST, PUT, PATCH,
DELETE) of a known caller that ended in 4xx (``refused``) or 5xx (``failed``), as
``<METHOD> <route template>`` with its target, status and reason. So an attempt to delete
another tenant's document is on record, not only the deletes that worked.

What such an entry never holds is what the caller sent: a refused request may name another
tenant's id (a probe), and the audit log is readable by the caller's own admins. The target is a
fingerprint of the route's ids (``sha256:`` and 16 hex digits of the ids joined with ``/``: hash a
candidate id to match it), and the reason is the error's type (``NotFound``, ``Conflict``,
``RequestValidationError``…), not its message, which often repeats the id or the input.

gRPC methods that change state (the gateway's ``Upload``) are recorded the same way by
``AuthInterceptor(changes=…)`` through ``record_refused_change``: action ``RPC <method>``, the
status the error has over REST, and the error's type.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import structlog

from ragstream_core.auth.principal import Principal

log = structlog.get_logger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: refusals only counted and logged, since a flood would flood the log (429:
#: ``ragstream_rate_limited_total``), or of nobody known (401). The authenticator's own 401 and
#: 403 (key, role, a chat key's scope) are written by it as ``auth.refused`` and never reach here
#: with a principal; a 403 here is a route's own: a quota, an admin-only setting.
_NOT_AUDITED_HERE = frozenset({401, 429})
#: how much of an error body is read for its reason
_MAX_REASON_BODY = 8192
#: hex digits of a target's fingerprint
_TARGET_DIGITS = 16


class AuditRefusedChanges:
    """ASGI middleware writing refused and failed mutating requests to ``gateway.audit_log``.

    Needs ``app.state.authenticator`` (its pool; none: nothing is written) and the principal the
    ``authorize`` dependency leaves in the request's state (none: the request never reached a
    route, e.g. an unknown path, and names nobody to record).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in MUTATING:
            await self.app(scope, receive, send)
            return
        status = 500
        body = bytearray()

        async def observe(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and status >= 400 and len(body) < _MAX_REASON_BODY:
                body.extend(message.get("body", b"")[: _MAX_REASON_BODY - len(body)])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        except Exception:
            status = 500
            raise
        finally:
            if audited_status(status):
                await self._record(scope, status, bytes(body))

    async def _record(self, scope: Any, status: int, body: bytes) -> None:
        principal = (scope.get("state") or {}).get("principal")
        authenticator = getattr(getattr(scope.get("app"), "state", None), "authenticator", None)
        if not isinstance(principal, Principal) or authenticator is None or authenticator.pool is None:
            return
        route = getattr(scope.get("route"), "path", None) or "(no route)"
        ids = "/".join(str(v) for v in (scope.get("path_params") or {}).values())
        await record_refused_change(
            authenticator,
            principal,
            f"{scope['method']} {route}",
            target=fingerprint(ids) if ids else route,
            status=status,
            reason=_reason(body),
        )


def audited_status(status: int) -> bool:
    """Whether a change answered ``status`` is recorded here (a refusal or failure not recorded elsewhere)."""
    return status >= 400 and status not in _NOT_AUDITED_HERE


async def record_refused_change(
    authenticator: Any, principal: Principal, action: str, *, target: str, status: int, reason: str
) -> None:
    """Write one refused (4xx) or failed (5xx) change; a lost row is logged, never raised (the
    caller's answer is what matters)."""
    try:
        await authenticator.record(
            principal,
            action,
            target=target,
            outcome="refused" if status < 500 else "failed",
            status=status,
            reason=reason,
        )
    except Exception as exc:
        log.error("audit.write_failed", action=action, status=status, error=str(exc))


def fingerprint(ids: str) -> str:
    """How an audit entry names a refused request's target: ``sha256:`` and 16 hex digits."""
    return "sha256:" + hashlib.sha256(ids.encode()).hexdigest()[:_TARGET_DIGITS]


def _reason(body: bytes) -> str:
    """The error's type: ``error`` of the services' ``ErrorBody``, ``error.type`` of OpenAI's
    shape, ``RequestValidationError`` for FastAPI's own 422; never the message."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return "unreadable error body"
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, str):
            return error[:100]
        if isinstance(error, dict) and isinstance(error.get("type"), str):  # OpenAI's shape
            return str(error["type"])[:100]
        if isinstance(parsed.get("detail"), list):
            return "RequestValidationError"
    return "unknown error"
