"""Browser access across origins: CORS for HTTP and the origin check of WebSocket handshakes."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from ragstream_core.runtime import allow_origins
from ragstream_core.settings import CoreSettings

PAGE = "http://127.0.0.1:8080"


def app_allowing(*origins: str) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    @app.websocket("/v1/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"type": "hello"})
        await websocket.close()

    allow_origins(app, list(origins))
    return app


async def preflight(app: FastAPI, origin: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat.test") as client:
        return await client.options(
            "/v1/echo",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )


async def test_a_page_of_an_allowed_origin_may_post_with_a_bearer_key() -> None:
    response = await preflight(app_allowing(PAGE, "http://shop.example"), "http://shop.example")

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://shop.example"
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


async def test_a_page_of_another_origin_is_refused() -> None:
    response = await preflight(app_allowing(PAGE), "http://evil.example")

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_a_simple_request_from_an_allowed_page_carries_the_allow_header() -> None:
    app = app_allowing(PAGE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat.test") as client:
        response = await client.post("/v1/echo", json={"a": "b"}, headers={"Origin": PAGE})

    assert response.json() == {"a": "b"}
    assert response.headers["access-control-allow-origin"] == PAGE


def test_a_websocket_from_an_allowed_page_or_without_origin_is_accepted() -> None:
    client = TestClient(app_allowing(PAGE))

    with client.websocket_connect("/v1/feed", headers={"Origin": PAGE}) as socket:
        assert socket.receive_json() == {"type": "hello"}
    with client.websocket_connect("/v1/feed") as socket:  # not a browser: no Origin
        assert socket.receive_json() == {"type": "hello"}


def test_a_websocket_from_another_origins_page_is_refused() -> None:
    client = TestClient(app_allowing(PAGE))

    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/v1/feed", headers={"Origin": "http://evil.example"}) as socket,
    ):
        socket.receive_json()
    assert refused.value.code == 1008


def test_the_origins_setting_is_a_comma_separated_list() -> None:
    settings = CoreSettings(cors_origins=" http://a.example/, http://b.example:8080 ,")

    assert settings.cors_origin_list == ["http://a.example", "http://b.example:8080"]
    assert CoreSettings().cors_origin_list == ["http://localhost:8080", "http://127.0.0.1:8080"]
