"""The FastAPI side of ``Authenticator``: one dependency for every route and WebSocket of an app.

Routers declare ``dependencies=[Depends(authorize)]``; routes that need the caller's identity
take ``Caller`` (the same, cached per request). WebSockets and event streams may pass the key as
``?access_token=`` (browsers cannot set their headers): ``runtime.TokenFromQuery`` makes it the
``Authorization`` header before the app (and its traces) see the URL. A refused WebSocket
handshake is closed with code 1008 and the reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, WebSocketException
from starlette.requests import HTTPConnection

from ragstream_core.auth.authenticator import Authenticator
from ragstream_core.auth.principal import Principal
from ragstream_core.errors import Forbidden, Unauthenticated


async def authorize(conn: HTTPConnection) -> Principal:
    """The request's caller, allowed to call its route; raises 401/403 (WebSocket: close 1008)."""
    known: Principal | None = getattr(conn.state, "principal", None)
    if known is not None:
        return known
    authenticator: Authenticator = conn.app.state.authenticator
    websocket = conn.scope["type"] == "websocket"
    method = "WEBSOCKET" if websocket else str(conn.scope["method"])
    route = getattr(conn.scope.get("route"), "path", conn.url.path)
    authorization = conn.headers.get("authorization")
    try:
        principal = await authenticator.authorize(
            method=method,
            route=route,
            authorization=authorization,
            tenant_header=conn.headers.get("x-tenant-id"),
            actor_header=conn.headers.get("x-actor"),
            collection_id=conn.path_params.get("collection_id"),
            origin=conn.headers.get("origin"),
        )
    except (Unauthenticated, Forbidden) as exc:
        if websocket:
            raise WebSocketException(code=1008, reason=str(exc)[:120]) from exc
        raise
    if principal is None:  # a public route: nobody in particular
        principal = Principal(authenticator.default_tenant, "anonymous", "viewer")
    conn.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(authorize)]
