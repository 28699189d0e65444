"""Process lifecycle shared by every service: signals, the HTTP server, the ops endpoints.

``run_service`` runs a service's ``main`` coroutine until SIGTERM or SIGINT, then lets it
drain. ``ops_routes`` adds ``/healthz`` (alive), ``/readyz`` (dependencies reachable) and
``/metrics`` (Prometheus) to any FastAPI app, and times every HTTP request by its route
template (``/v1/jobs/{job_id}``, never the raw path), method and status. ``allow_origins`` lets
the pages of configured origins (the gateway's web page, sites embedding the chat widget) and of
each tenant's own allowed origins call an app from a browser (``BrowserOrigins``).
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
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from starlette.datastructures import Headers

from ragstream_core.auth import Authenticator, OriginPolicy, normal_origin
from ragstream_core.errors import (
    InvalidInput,
    OriginNotAllowed,
    RagstreamError,
    Unauthenticated,
    mapping_for,
    retry_after_s,
)
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


#: methods a browser page may use across origins (answered to a preflight)
BROWSER_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
PREFLIGHT_MAX_AGE_S = 600


class BrowserOrigins:
    """Which browser pages may call the app: CORS for HTTP, an origin check for WebSockets (pure ASGI).

    The decisions are ``OriginPolicy``'s (global list, the caller's tenant's list, a chat key's
    own origins). A request without ``Origin`` (not a browser: curl, other services) or from the
    server's own host passes untouched. A preflight is answered for a known origin (400 with the
    reason otherwise). An actual request with a valid key from an origin its tenant does not
    allow is refused 403 (``OriginNotAllowed``) and audited, without CORS headers; browsers do
    not apply CORS to WebSockets, so a handshake is checked the same way and closed with 1008.
    """

    def __init__(self, app: Any, *, policy: OriginPolicy, authenticator: Authenticator | None = None) -> None:
        self.app = app
        self.policy = policy
        self.authenticator = authenticator

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = normal_origin(headers.get("origin", ""))
        if not origin or urlsplit(origin).netloc == headers.get("host", "").lower():
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, headers)(scope, receive, send)
            return
        allowed, refusal = await self._decide(origin, headers, scope)
        if refusal is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": str(refusal)[:120]})
            else:
                await error_response(refusal)(scope, receive, send)
            return
        if not allowed or scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_allowed(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_allowed)

    async def _decide(self, origin: str, headers: Headers, scope: Any) -> tuple[bool, OriginNotAllowed | None]:
        """(whether the answer may carry ``Access-Control-Allow-Origin``, the refusal if any)."""
        if self.policy.is_global(origin):
            return True, None
        principal = None
        if self.authenticator is not None:
            principal = await self.authenticator.identify(
                authorization=headers.get("authorization"), tenant_header=headers.get("x-tenant-id")
            )
        if principal is None:  # no valid key: the route refuses it; a known page may read why
            known = await self.policy.is_known(origin)
            if scope["type"] == "websocket" and not known:
                return False, OriginNotAllowed(_origin_refusal(origin, None))
            return known, None
        if await self.policy.allows(origin, principal):
            return True, None
        refusal = OriginNotAllowed(_origin_refusal(origin, principal.tenant_id), origin=origin)
        if self.authenticator is not None:
            method = "WEBSOCKET" if scope["type"] == "websocket" else str(scope["method"])
            await self.authenticator.refuse(refusal, method=method, route=str(scope["path"]), principal=principal)
        return False, refusal

    def _preflight(self, origin: str, headers: Headers) -> Callable[..., Awaitable[None]]:
        async def answer(scope: Any, receive: Any, send: Any) -> None:
            requested = [h.strip() for h in headers.get("access-control-request-headers", "").split(",") if h.strip()]
            accepted = {h.lower() for h in BROWSER_HEADERS}
            unknown = [h for h in requested if h.lower() not in accepted]
            if not await self.policy.is_known(origin):
                response: Response = error_response(InvalidInput(_origin_refusal(origin, None)))
            elif unknown:
                response = error_response(
                    InvalidInput(
                        f"a page may not send the headers {', '.join(unknown)} across origins; accepted:"
                        f" {', '.join(BROWSER_HEADERS)}"
                    )
                )
            else:
                response = Response(
                    "OK",
                    media_type="text/plain",
                    headers={
                        "Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": ", ".join(BROWSER_METHODS),
                        "Access-Control-Allow-Headers": ", ".join(BROWSER_HEADERS),
                        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                        "Vary": "Origin",
                    },
                )
            await response(scope, receive, send)

        return answer


def _origin_refusal(origin: str, tenant_id: str | None) -> str:
    if tenant_id is None:
        return (
            f"pages of {origin} may not call this API: accepted are the origins of RAGSTREAM_CORS_ORIGINS and those"
            " a tenant admin allows with PUT /v1/tenant/origins"
        )
    return (
        f"pages of {origin} may not use keys of tenant {tenant_id}: accepted are the origins of"
        f" RAGSTREAM_CORS_ORIGINS and those an admin of {tenant_id} allows with PUT /v1/tenant/origins"
    )


def allow_origins(app: FastAPI, origins: Sequence[str]) -> OriginPolicy:
    """Let browser pages call ``app``: those of ``origins`` (``*``: any) for every tenant, and those
    each tenant allows (``auth.tenant_origins``) with that tenant's keys (``BrowserOrigins``).

    Uses ``app.state.authenticator`` (its pool and keys) when the app has one; the policy is
    kept as ``app.state.origin_policy`` (the gateway forgets it when a tenant's list changes).
    Requests without ``Origin`` (curl, other services) are not affected.
    """
    authenticator: Authenticator | None = getattr(app.state, "authenticator", None)
    pool = authenticator.pool if authenticator is not None else None
    # tenants' lists are cached as long as keys are: a change takes as long as a revocation
    cache_s = authenticator.keys.cache_s if authenticator is not None and authenticator.keys is not None else 5.0
    policy = OriginPolicy(origins, pool=pool, cache_s=cache_s)
    app.state.origin_policy = policy
    app.add_middleware(BrowserOrigins, policy=policy, authenticator=authenticator)
    return policy


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
