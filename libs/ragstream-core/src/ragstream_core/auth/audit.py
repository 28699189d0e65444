"""The refused and failed changes, in the audit log beside the ones that succeeded.

Services record each change they make (``audit()`` in the gateway, ``Authenticator.record`` in
chat) with its own action and detail, and ``Authenticator`` records every authentication or role
refusal. ``AuditRefusedChanges`` records the rest: a mutating request (POST, PUT, PATCH,
DELETE) of a known caller that ended in 4xx (``refused``) or 5xx (``failed``), as
``<METHOD> <route template>`` with its target (the route's ids), status and reason. So an
attempt to delete another tenant's document is on record, not only the deletes that worked.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from ragstream_core.auth.principal import Principal

log = structlog.get_logger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: refusals the authenticator writes itself (auth.refused)
_ALREADY_AUDITED = frozenset({401, 403})
#: how much of an error body is read for its reason
_MAX_REASON_BODY = 8192


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
            if status >= 400 and status not in _ALREADY_AUDITED:
                await self._record(scope, status, bytes(body))

    async def _record(self, scope: Any, status: int, body: bytes) -> None:
        principal = (scope.get("state") or {}).get("principal")
        authenticator = getattr(getattr(scope.get("app"), "state", None), "authenticator", None)
        if not isinstance(principal, Principal) or authenticator is None or authenticator.pool is None:
            return
        route = getattr(scope.get("route"), "path", None) or scope.get("path", "")
        target = "/".join(str(v) for v in (scope.get("path_params") or {}).values()) or route
        try:
            await authenticator.record(
                principal,
                f"{scope['method']} {route}",
                target=target,
                outcome="refused" if status < 500 else "failed",
                status=status,
                reason=_reason(body),
            )
        except Exception as exc:  # the answer is sent already: a lost audit row is logged, not raised
            log.error("audit.write_failed", route=route, status=status, error=str(exc))


def _reason(body: bytes) -> str:
    """The error body's ``detail`` (the services' ``ErrorBody``) or ``error.message`` (OpenAI's),
    else its start as text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body[:500].decode(errors="replace")
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):  # OpenAI's shape
            return str(error["message"])[:500]
        detail = parsed.get("detail")
        if isinstance(detail, str):
            return detail[:500]
        return json.dumps(detail, default=str)[:500]
    return str(parsed)[:500]
