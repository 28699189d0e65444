"""The web page: static HTML, CSS and ES modules under ``ui/``, served at ``/ui/`` with no build step.

The page calls the gateway on its own origin and the progress and chat services at the public
URLs ``/ui/config.json`` gives (those services allow the page's origin by CORS, see
``ragstream_core.runtime.allow_origins``). ``/ui/widget.js`` is the embeddable chat widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).parent / "ui"


def mount_ui(app: FastAPI, *, progress_url: str, chat_url: str, auth_mode: str = "open") -> None:
    """Serve the page at ``/ui/`` (``/`` redirects there) and its configuration at ``/ui/config.json``
    (the services' URLs and the auth mode: in ``keys`` mode the page signs in first)."""

    @app.get("/ui/config.json", include_in_schema=False)
    async def ui_config() -> dict[str, Any]:
        return {"progress_url": progress_url.rstrip("/"), "chat_url": chat_url.rstrip("/"), "auth_mode": auth_mode}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
