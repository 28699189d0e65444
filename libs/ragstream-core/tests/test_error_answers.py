"""Error answers: a database data error is the client's 400, and every route documents its errors."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
from fastapi import FastAPI

from ragstream_core.errors import NotFound
from ragstream_core.runtime import error_handlers


def app_with_routes() -> FastAPI:
    app = FastAPI()
    error_handlers(app)

    @app.get("/v1/things")
    async def search(q: str = "") -> dict[str, Any]:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    @app.get("/v1/things/{thing_id}", responses={409: {"description": "It is busy."}})
    async def thing(thing_id: str) -> dict[str, Any]:
        raise NotFound(f"thing {thing_id!r} is not known")

    return app


async def test_a_data_error_of_the_database_is_400_saying_what_is_accepted() -> None:
    transport = httpx.ASGITransport(app=app_with_routes())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/v1/things", params={"q": "a\x00b"})

    assert response.status_code == 400
    assert response.json()["error"] == "InvalidInput"
    assert "cannot contain NUL" in response.json()["detail"]
    assert "accepted: text without NUL" in response.json()["detail"]


def test_every_operation_documents_the_errors_any_request_may_get() -> None:
    spec = app_with_routes().openapi()

    listing = spec["paths"]["/v1/things"]["get"]["responses"]
    one = spec["paths"]["/v1/things/{thing_id}"]["get"]["responses"]

    assert {"400", "422", "503"} <= set(listing)
    assert "404" not in listing, "only routes with an id in the path answer 404"
    assert {"400", "404", "409", "422", "503"} <= set(one)
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    assert all(one[code]["content"]["application/json"]["schema"] == error_body for code in ("404", "409", "422"))
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["detail"]


def test_a_route_declaring_its_own_error_body_keeps_it() -> None:
    from pydantic import BaseModel

    class Other(BaseModel):
        message: str

    app = FastAPI()
    error_handlers(app)

    @app.get("/v1/other", responses={400: {"model": Other}})
    async def other() -> dict[str, Any]:
        return {}

    schema = app.openapi()["paths"]["/v1/other"]["get"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Other"}
