"""The gateway's REST application: every router, the error handlers and the early size check."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from ragstream_core.auth import (
    PUBLIC,
    AuditRefusedChanges,
    Authenticator,
    RateLimiter,
    RateLimits,
    RatePolicy,
    RolePolicy,
    authorize,
)
from ragstream_core.errors import InvalidInput, UploadTooLarge
from ragstream_core.runtime import declare_rate_limits, error_handlers, error_response
from ragstream_gateway.api import router as documents_router
from ragstream_gateway.auth_repository import AuthRepository
from ragstream_gateway.batch_api import BATCH_SUFFIX
from ragstream_gateway.batch_api import router as batch_router
from ragstream_gateway.collections_api import router as collections_router
from ragstream_gateway.consistency_api import router as consistency_router
from ragstream_gateway.direct_upload_api import router as direct_upload_router
from ragstream_gateway.jobs_api import router as jobs_router
from ragstream_gateway.keys_api import router as keys_router
from ragstream_gateway.origins_api import router as origins_router
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.tenant_limits_api import router as tenant_limits_router
from ragstream_gateway.ui_routes import mount_ui
from ragstream_gateway.web_api import web_router


class RejectOversized:
    """Refuse a POST whose announced size is over the limit before reading its body (pure ASGI)."""

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # a batch carries many files: its route checks the body against ``max_batch_bytes``
        if scope["type"] == "http" and scope["method"] == "POST" and not scope["path"].endswith(":batch"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit + 64 * 1024:  # multipart framing
                error = UploadTooLarge(f"the upload exceeds the limit of {self.limit} bytes")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: python-multipart's limit on one header line of a part (its DEFAULT_MAX_HEADER_SIZE)
MAX_PART_HEADER_BYTES = 4096 + 128


async def explain_multipart_errors(request: Request, exc: Exception) -> Response:
    """Starlette answers any unreadable multipart body with "Invalid multipart data."; say what
    the parser found (e.g. a file name of 5,000 characters overflows a part's header) and what
    is accepted. Every other HTTP error keeps FastAPI's answer."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == "Invalid multipart data.":
        reason = exc.__context__.__cause__ if exc.__context__ is not None else None
        return error_response(
            InvalidInput(
                f"the multipart body could not be read: {reason or 'malformed'}; accepted: multipart/form-data "
                f"whose part headers are at most {MAX_PART_HEADER_BYTES} bytes each (file names are kept to 255 bytes)"
            )
        )
    return await http_exception_handler(request, exc)


#: the role of each route where the default (GET: viewer, else editor) is not right
ROLES: RolePolicy = {
    ("PUT", "/v1/uploads/{upload_id}"): PUBLIC,  # the URL's one-time token is its credential
    ("GET", "/v1/audit"): "admin",
    ("GET", "/v1/admin/consistency"): "admin",
    ("POST", "/v1/admin/consistency/repair"): "admin",
    ("POST", "/v1/sessions"): "viewer",  # any caller may trade its key for a short-lived one
    ("DELETE", "/v1/sessions/current"): "viewer",  # and end its own session (sign-out)
    ("GET", "/v1/tenant/origins"): "admin",
    ("PUT", "/v1/tenant/origins"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("GET", "/v1/keys/{key_id}"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("POST", "/v1/accounts"): "admin",
    ("GET", "/v1/accounts"): "admin",
    ("PATCH", "/v1/accounts/{account_id}"): "admin",
    ("PUT", "/v1/tenant/limits"): "admin",
}

#: the routes that count against the upload rate limits (``ragstream_core.auth.ratelimit``)
RATES: RatePolicy = {
    ("POST", "/v1/collections/{collection_id}/documents"): "upload",
    ("POST", "/v1/collections/{collection_id}" + BATCH_SUFFIX): "upload",
    ("POST", "/v1/collections/{collection_id}/uploads"): "upload",
    ("POST", "/v1/uploads/{upload_id}/finalize"): "upload",
    ("POST", "/v1/collections/{collection_id}/sources/web"): "upload",
}


def create_app(ports: GatewayPorts, *, progress_url: str, authenticator: Authenticator | None = None) -> FastAPI:
    """The gateway's app; ``authenticator`` decides every /v1 request (default: ``open`` mode, for
    tests of other concerns: ``main`` always passes the configured one)."""
    app = FastAPI(title="ragstream ingest gateway", version="0.1.0")
    app.state.ports = ports
    app.state.progress_url = progress_url
    authenticator = authenticator or Authenticator(mode="open", default_tenant=ports.settings.default_tenant)
    authenticator.policy = {**ROLES, **authenticator.policy}
    authenticator.rates = {**RATES, **authenticator.rates}
    if authenticator.limiter is None:
        authenticator.limiter = RateLimiter(ports.documents.pool, RateLimits.from_settings(ports.settings.core))
    app.state.authenticator = authenticator
    app.state.auth_repository = AuthRepository(ports.documents.pool)
    error_handlers(app)
    app.add_middleware(AuditRefusedChanges)
    app.add_exception_handler(HTTPException, explain_multipart_errors)

    app.add_middleware(RejectOversized, limit=ports.settings.max_upload_bytes)
    routers = (documents_router, collections_router, batch_router, direct_upload_router, jobs_router, web_router)
    for router in (*routers, consistency_router, keys_router, origins_router, tenant_limits_router):
        app.include_router(router, dependencies=[Depends(authorize)])
    declare_rate_limits(app, authenticator.rates)
    mount_ui(app, progress_url=progress_url, chat_url=ports.settings.chat_url, auth_mode=authenticator.mode)
    return app
