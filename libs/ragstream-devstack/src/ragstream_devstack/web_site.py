"""A small web site served from memory on a free local port, for tests of web sources.

``WebSite`` runs ``http.server`` in a thread: pages are set with ``put``, every request is
logged in ``requests`` (path and query), unknown paths answer 404, and ``hold`` makes a path
wait until the test releases it (to stop a crawl in the middle of a fetch).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass
class SitePage:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class WebSite:
    """An HTTP server on 127.0.0.1 whose pages the test sets; use it as a context manager."""

    def __init__(self) -> None:
        self.pages: dict[str, SitePage] = {}
        self.requests: list[str] = []
        self._held: dict[str, threading.Event] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                held = site._held.get(self.path)
                if held is not None:
                    held.wait(timeout=60)
                page = site.pages.get(self.path)
                if page is None:
                    page = SitePage(b"<html><body><p>Not here.</p></body></html>", status=404)
                self.send_response(page.status)
                self.send_header("Content-Type", page.content_type)
                self.send_header("Content-Length", str(len(page.body)))
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="web-site", daemon=True)

    def url(self, path: str = "/", *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def put(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str = "text/html; charset=utf-8",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.pages[path] = SitePage(data, content_type, status, headers or {})

    def hold(self, path: str) -> threading.Event:
        """Make requests of ``path`` wait until the returned event is set."""
        event = threading.Event()
        self._held[path] = event
        return event

    def requested(self, path: str) -> int:
        """How many requests asked for ``path``."""
        return self.requests.count(path)

    def start(self) -> WebSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        for event in self._held.values():
            event.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebSite:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
