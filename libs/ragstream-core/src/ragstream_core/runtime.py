"""Process lifecycle shared by every service: signals, the HTTP server, the ops endpoints.

``run_service`` runs a service's ``main`` coroutine until SIGTERM or SIGINT, then lets it
drain. ``ops_routes`` adds ``/healthz`` (alive), ``/readyz`` (dependencies reachable) and
``/metrics`` (Prometheus) to any FastAPI app, and times every HTTP request by its route
template (``/v1/jobs/{job_id}``, never the raw path), method and status. ``allow_origins`` lets
the pages of configured origins (the gateway's web page, sites embedding the chat widget) call
an app from a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
import structlog
import uvicorn
from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest

from ragstream_core.errors import InvalidInput, RagstreamError, Unauthenticated, mapping_for, retry_after_s
from ragstream_core.openapi_errors import document_errors
from ragstream_core.telemetry import current_trace_id, shutdown_telemetry

log = structlog.get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]

HTTP_DURATION = Histogram(
    "ragstream_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status code.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
#: the route label of a request no route matched (404s: raw paths would make the labels unbounded)
UNMATCHED_ROUTE = "<unmatched>"


class RequestMetrics:
    """ASGI middleware: observes ``ragstream_http_request_duration_seconds`` for every HTTP request.

    The route is the template of the matched FastAPI route (set in the scope by the router), so
    the label set stays bounded; a streamed response is timed until its last byte.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            HTTP_DURATION.labels(route, scope.get("method", ""), str(status)).observe(time.perf_counter() - started)


def ops_routes(app: FastAPI, checks: dict[str, ReadinessCheck]) -> None:
    """Add /healthz, /readyz and /metrics to ``app`` and time its requests (``RequestMetrics``).
    /readyz runs every check (503 on any failure)."""
    app.add_middleware(RequestMetrics)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        ok = True
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout=3)
                results[name] = "ok"
            except Exception as exc:  # readiness reports any failure as a reason, never raises
                ok = False
                results[name] = f"unavailable: {exc}"
        return JSONResponse({"ready": ok, "checks": results}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def error_handlers(app: FastAPI) -> None:
    """Answer every ``RagstreamError`` with its status from ``ERROR_TABLE`` and a readable body."""

    async def on_error(_: Any, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def on_data_error(_: Any, exc: Exception) -> JSONResponse:
        return error_response(invalid_data(exc))

    app.add_exception_handler(RagstreamError, on_error)
    app.add_exception_handler(psycopg.DataError, on_data_error)
    document_errors(app)


RATE_LIMITED_ANSWER = (
    "A rate limit of the caller's key or tenant is reached (the body names it, its rate and retry_after_s);"
    " retry after the Retry-After header's seconds."
)


def declare_rate_limits(app: FastAPI, rates: Mapping[tuple[str, str], str]) -> None:
    """Declare the 429 answer (``ErrorBody``) in the OpenAPI document on the operations ``rates``
    (the authenticator's rate policy) names; an operation that declares its own 429 keeps it."""
    original: Callable[[], dict[str, Any]] = app.openapi
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}

    def openapi() -> dict[str, Any]:
        schema = original()
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if (method.upper(), path) in rates:
                    operation.setdefault("responses", {}).setdefault(
                        "429", {"description": RATE_LIMITED_ANSWER, "content": body}
                    )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def invalid_data(error: Exception) -> InvalidInput:
    """A PostgreSQL data exception (SQLSTATE class 22: a value a client sent that PostgreSQL
    cannot hold, e.g. a NUL character in a filter or a question) as the client's error; fuzzing
    found these as 500s."""
    return InvalidInput(
        f"a value of the request cannot be stored or searched: {str(error).splitlines()[0]}; "
        "accepted: text without NUL (0x00) characters, numbers and dates within range"
    )


def error_response(error: Exception) -> JSONResponse:
    """The HTTP answer to a domain error: its ``ERROR_TABLE`` status, type, message and trace id."""
    body: dict[str, Any] = {"error": type(error).__name__, "detail": str(error), "trace_id": current_trace_id()}
    body.update(getattr(error, "details", None) or {})
    headers = {"WWW-Authenticate": 'Bearer realm="ragstream"'} if isinstance(error, Unauthenticated) else {}
    if (wait := retry_after_s(error)) is not None:
        headers["Retry-After"] = str(wait)
    return JSONResponse(body, status_code=mapping_for(error).http_status, headers=headers)


#: request headers a browser page may send across origins
BROWSER_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID", "X-Actor", "X-Batch-Id", "X-Tenant-Id")


class WebSocketOrigins:
    """Refuse a WebSocket handshake sent by a page of an origin that is not allowed (pure ASGI).

    Browsers do not apply CORS to WebSockets; without this, any site a user visits could open the
    feeds. A handshake without ``Origin`` (not a browser) or from the server's own host passes.
    """

    def __init__(self, app: Any, *, origins: Sequence[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and "*" not in self.origins:
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/")
            host = headers.get(b"host", b"").decode("latin-1")
            if origin and origin not in self.origins and urlsplit(origin).netloc != host:
                await send({"type": "websocket.close", "code": 1008, "reason": f"origin {origin} is not allowed"})
                return
        await self.app(scope, receive, send)


def allow_origins(app: FastAPI, origins: Sequence[str]) -> None:
    """Let pages of ``origins`` (``*``: any) call ``app`` from a browser: CORS for HTTP, an origin
    check for WebSockets. Requests without ``Origin`` (curl, other services) are not affected."""
    app.add_middleware(WebSocketOrigins, origins=list(origins))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["*"],
        allow_headers=list(BROWSER_HEADERS),
        max_age=600,
    )


class FreshContext:
    """Run each ASGI request in an empty ``contextvars.Context``.

    uvicorn resumes reading a keep-alive connection from inside the request's task, so the
    next request on that connection inherits the previous one's context variables: its
    trace (the next upload would join the last upload's trace) and its bound log fields.
    A fresh context per request keeps every request its own root.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        task = asyncio.create_task(self.app(scope, receive, send), context=contextvars.Context())
        try:
            await task
        except asyncio.CancelledError:
            task.cancel()
            raise


class TokenFromQuery:
    """Move ``?access_token=<key>`` into the ``Authorization`` header before anything sees the URL.

    Browsers cannot set headers on a WebSocket or an ``EventSource``, so those pass the API key in
    the query; taken out here, it never reaches a trace's ``http.url``, a log or a route.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and b"access_token=" in scope.get("query_string", b""):
            pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            tokens = [value for name, value in pairs if name == "access_token"]
            headers = [(k, v) for k, v in scope["headers"] if k != b"authorization" or not tokens]
            if tokens:
                headers.append((b"authorization", f"Bearer {tokens[-1]}".encode("latin-1")))
            query = urlencode([(name, value) for name, value in pairs if name != "access_token"])
            scope = {**scope, "headers": headers, "query_string": query.encode("latin-1")}
        await self.app(scope, receive, send)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``run_service`` decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(app: FastAPI, *, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set; every request starts from an empty context, with a
    query's ``access_token`` moved into its ``Authorization`` header (``TokenFromQuery``)."""
    config = uvicorn.Config(
        TokenFromQuery(FreshContext(app)), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


def run_service(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``main(stop)`` until it returns; SIGTERM/SIGINT set ``stop`` so that it drains."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await main(stop)
        finally:
            shutdown_telemetry()

    asyncio.run(runner())
