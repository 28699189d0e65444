"""The gateway's REST application: every router, the error handlers and the early size check."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ragstream_core.errors import UploadTooLarge
from ragstream_core.runtime import error_handlers, error_response
from ragstream_gateway.api import router as documents_router
from ragstream_gateway.batch_api import router as batch_router
from ragstream_gateway.collections_api import router as collections_router
from ragstream_gateway.consistency_api import router as consistency_router
from ragstream_gateway.direct_upload_api import router as direct_upload_router
from ragstream_gateway.jobs_api import router as jobs_router
from ragstream_gateway.ports import GatewayPorts
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


def create_app(ports: GatewayPorts, *, progress_url: str) -> FastAPI:
    app = FastAPI(title="ragstream ingest gateway", version="0.1.0")
    app.state.ports = ports
    app.state.progress_url = progress_url
    error_handlers(app)

    app.add_middleware(RejectOversized, limit=ports.settings.max_upload_bytes)
    for router in (documents_router, collections_router, batch_router, direct_upload_router, jobs_router, web_router):
        app.include_router(router)
    app.include_router(consistency_router)
    mount_ui(app, progress_url=progress_url, chat_url=ports.settings.chat_url)
    return app
