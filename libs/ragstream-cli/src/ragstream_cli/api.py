"""The REST APIs of gateway, progress and chat, with the configured key, tenant and actor.

Every failure becomes a ``CliError`` carrying the server's own message: a transport error is
``Unreachable`` (naming the server and the setting that points at it), a 4xx ``Refused``, a 5xx
``ServerFailed``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import quote

import httpx

from ragstream_cli.config import ENVIRONMENT, Config
from ragstream_cli.errors import CliError, Refused, ServerFailed, Unreachable
from ragstream_cli.sse import SseEvent, parse_sse

Service = Literal["gateway", "progress", "chat"]
_SETTING: dict[Service, str] = {"gateway": "url", "progress": "progress_url", "chat": "chat_url"}


def segment(value: str) -> str:
    """``value`` as one path segment: a ``/`` or ``?`` in an id cannot reach another route."""
    return quote(value, safe="")


def error_message(status: int, body: Any) -> str:
    """The server's explanation of a refusal, as one line: its ``detail`` (FastAPI's validation
    errors joined), with the error's name and status."""
    name = ""
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error", body))
        name = str(body.get("error", "")) if "detail" in body else ""
        if isinstance(body.get("error"), dict):  # OpenAI-shaped errors
            detail = body["error"].get("message", detail)
            name = ""
    else:
        detail = body
    if isinstance(detail, list):  # FastAPI request validation: [{"loc": [...], "msg": ...}]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append(f"{where}: {item.get('msg', item)}" if where else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        detail = "; ".join(parts)
    text = str(detail).strip() or "(no explanation)"
    suffix = f"HTTP {status} {name}".rstrip()
    return f"{text} ({suffix})"


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def raise_for_answer(response: httpx.Response, body: Any) -> None:
    """Raise ``Refused`` for a 4xx and ``ServerFailed`` for a 5xx, with the server's message."""
    status = response.status_code
    if status < 400:
        return
    message = error_message(status, body)
    if status in (401, 403):
        message += "; check RAGSTREAM_API_KEY or the profile's api_key"
    if status >= 500:
        raise ServerFailed(message, status=status, body=body)
    raise Refused(message, status=status, body=body)


class Api:
    """One client for the three services of one configuration."""

    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    def base(self, service: Service) -> str:
        return str(getattr(self.config, _SETTING[service]))

    def unreachable(self, service: Service, exc: httpx.TransportError) -> Unreachable:
        setting = _SETTING[service]
        reason = str(exc) or type(exc).__name__
        return Unreachable(
            f"cannot reach the {service} at {self.base(service)}: {reason}; "
            f"is it running? set ${ENVIRONMENT[setting]} or {setting} in the profile {self.config.profile!r}"
        )

    async def call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Any = None,
    ) -> Any:
        """The JSON answer of one request; raises ``CliError`` for anything but a 2xx/207."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self.http.request(
                method,
                f"{self.base(service)}{path}",
                params=query,
                json=json_body,
                files=files,
                headers=self.config.headers(),
            )
        except httpx.TransportError as exc:
            raise self.unreachable(service, exc) from None
        body = _decode(response)
        raise_for_answer(response, body)
        return body

    @contextlib.asynccontextmanager
    async def events(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        last_event_id: str | None = None,
    ) -> AsyncIterator[AsyncIterator[SseEvent]]:
        """A Server-Sent Events stream; a refusal before it starts raises like ``call``."""
        headers = {**self.config.headers(), "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        query = {k: v for k, v in (params or {}).items() if v is not None}
        request = self.http.build_request(
            method,
            f"{self.base(service)}{path}",
            params=query,
            json=json_body,
            headers=headers,
            timeout=httpx.Timeout(30.0, read=None),
        )
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self.unreachable(service, exc) from None
        try:
            if response.status_code >= 400:
                await response.aread()
                raise_for_answer(response, _decode(response))
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                await response.aread()
                raise ServerFailed(f"the {service} answered {path} without an event stream: {response.text[:200]}")
            yield parse_sse(response.aiter_lines())
        finally:
            await response.aclose()


def event_json(event: SseEvent) -> dict[str, Any]:
    """The JSON object an event carries."""
    try:
        data = json.loads(event.data)
    except ValueError:
        raise ServerFailed(
            f"an {event.event!r} event carried something that is not JSON: {event.data[:200]!r}"
        ) from None
    if not isinstance(data, dict):
        raise ServerFailed(f"an {event.event!r} event carried {type(data).__name__}, not a JSON object")
    return data


__all__ = ["Api", "CliError", "Service", "error_message", "event_json", "raise_for_answer", "segment"]
