"""Browser access in ``keys`` mode over the real PostgreSQL: per-tenant CORS origins and sign-out.

Two tenants, each with its own allowed site. A preflight is answered for any tenant's site; an
actual request is allowed only from the global list or the key's own tenant's sites.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth import Authenticator
from ragstream_core.runtime import allow_origins
from ragstream_gateway.app import create_app
from ragstream_gateway.auth_repository import AuthRepository
from ragstream_gateway.ports import GatewayPorts

PAGE = "http://page.test"  # the global list: the gateway's own web page


@dataclass
class Tenant:
    tenant_id: str
    admin_key: str
    site: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}


@dataclass
class Browsers:
    """A keys-mode gateway with the origin policy of ``main`` and two tenants with their own sites."""

    http: httpx.AsyncClient
    a: Tenant
    b: Tenant


async def _tenant(pool: AsyncConnectionPool, http: httpx.AsyncClient) -> Tenant:
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    made = await AuthRepository(pool).create_key(
        tenant_id, "admin", "admin", name="", expires_at=None, actor="operator", create_account=True
    )
    tenant = Tenant(tenant_id, made["key"], f"https://{uuid.uuid4().hex[:8]}.example")
    answer = await http.put("/v1/tenant/origins", json={"origins": [tenant.site]}, headers=tenant.auth())
    assert answer.status_code == 200, answer.text
    return tenant


@pytest.fixture
async def browsers(
    make_ports: Callable[..., GatewayPorts], gateway_pool: AsyncConnectionPool
) -> AsyncIterator[Browsers]:
    authenticator = Authenticator(mode="keys", default_tenant="default", pool=gateway_pool, cache_s=0)
    app = create_app(make_ports(), progress_url="http://progress.test", authenticator=authenticator)
    allow_origins(app, [PAGE])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as http:
        a = await _tenant(gateway_pool, http)
        b = await _tenant(gateway_pool, http)
        yield Browsers(http, a, b)


async def _preflight(http: httpx.AsyncClient, origin: str) -> httpx.Response:
    return await http.options(
        "/v1/collections",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


async def test_an_admin_sets_the_tenants_origins_and_the_change_is_audited(
    browsers: Browsers, gateway_pool: AsyncConnectionPool
) -> None:
    a = browsers.a

    answer = await browsers.http.put(
        "/v1/tenant/origins",
        json={"origins": ["HTTPS://App.Example.com/", a.site, "http://localhost:3000"]},
        headers=a.auth(),
    )
    shown = await browsers.http.get("/v1/tenant/origins", headers=a.auth())

    assert answer.status_code == 200, answer.text
    expected = sorted(["https://app.example.com", a.site, "http://localhost:3000"])
    assert answer.json()["origins"] == expected
    assert shown.json() == {"tenant_id": a.tenant_id, "origins": expected, "global_origins": [PAGE]}
    async with gateway_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT actor, outcome, detail->'added', detail->'removed' FROM gateway.audit_log"
            " WHERE tenant_id = %s AND action = 'tenant.origins' ORDER BY audit_id DESC LIMIT 1",
            (a.tenant_id,),
        )
        row = await cur.fetchone()
    assert row == ("admin", "ok", ["http://localhost:3000", "https://app.example.com"], [])


async def test_an_origin_that_is_not_scheme_host_and_port_is_refused_saying_what_is_accepted(
    browsers: Browsers,
) -> None:
    answer = await browsers.http.put(
        "/v1/tenant/origins", json={"origins": ["https://shop.example/path"]}, headers=browsers.a.auth()
    )

    assert answer.status_code == 422
    assert "https://shop.example/path" in answer.json()["detail"]
    assert "e.g. https://shop.example.com" in answer.json()["detail"]


async def test_only_an_admin_reads_or_sets_the_tenants_origins(browsers: Browsers) -> None:
    a = browsers.a
    made = await browsers.http.post("/v1/keys", json={"role": "editor"}, headers=a.auth())
    editor = made.json()["key"]

    read = await browsers.http.get("/v1/tenant/origins", headers=a.auth(editor))
    written = await browsers.http.put("/v1/tenant/origins", json={"origins": []}, headers=a.auth(editor))

    assert (read.status_code, written.status_code) == (403, 403)
    assert "needs the role admin" in written.json()["detail"]


async def test_a_preflight_is_answered_for_the_global_list_and_any_tenants_site_only(browsers: Browsers) -> None:
    for origin in (PAGE, browsers.a.site, browsers.b.site):
        answer = await _preflight(browsers.http, origin)
        assert answer.status_code == 200, (origin, answer.text)
        assert answer.headers["access-control-allow-origin"] == origin
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()

    refused = await _preflight(browsers.http, "https://evil.example")

    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert "PUT /v1/tenant/origins" in refused.json()["detail"]


async def test_a_tenants_site_may_use_that_tenants_key(browsers: Browsers) -> None:
    a = browsers.a

    answer = await browsers.http.get("/v1/collections", headers={"Origin": a.site, **a.auth()})

    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == a.site


async def test_another_tenants_site_cannot_drive_a_key_and_the_refusal_is_audited(
    browsers: Browsers, gateway_pool: AsyncConnectionPool
) -> None:
    a, b = browsers.a, browsers.b

    answer = await browsers.http.get("/v1/collections", headers={"Origin": b.site, **a.auth()})

    assert answer.status_code == 403
    assert answer.json()["error"] == "OriginNotAllowed"
    assert f"pages of {b.site} may not use keys of tenant {a.tenant_id}" in answer.json()["detail"]
    assert "access-control-allow-origin" not in answer.headers
    async with gateway_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT outcome, detail->>'reason' FROM gateway.audit_log WHERE tenant_id = %s AND action = 'auth.refused'"
            " ORDER BY audit_id DESC LIMIT 1",
            (a.tenant_id,),
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == "forbidden"
    assert b.site in row[1]


async def test_a_write_from_another_tenants_site_has_no_effect(browsers: Browsers) -> None:
    a, b = browsers.a, browsers.b
    collection = f"c-{uuid.uuid4().hex[:8]}"

    answer = await browsers.http.post(
        "/v1/collections", json={"collection_id": collection}, headers={"Origin": b.site, **a.auth()}
    )
    listed = await browsers.http.get("/v1/collections", headers=a.auth())

    assert answer.status_code == 403
    assert collection not in {c["collection_id"] for c in listed.json()["collections"]}


async def test_the_global_list_is_allowed_with_every_tenants_key(browsers: Browsers) -> None:
    for tenant in (browsers.a, browsers.b):
        answer = await browsers.http.get("/v1/me", headers={"Origin": PAGE, **tenant.auth()})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == PAGE


async def test_a_site_removed_from_the_list_is_refused_at_once(browsers: Browsers) -> None:
    a = browsers.a
    await browsers.http.put("/v1/tenant/origins", json={"origins": []}, headers=a.auth())

    answer = await browsers.http.get("/v1/me", headers={"Origin": a.site, **a.auth()})
    preflight = await _preflight(browsers.http, a.site)

    assert answer.status_code == 403
    assert preflight.status_code == 400


async def test_without_a_valid_key_the_route_refuses_and_only_a_known_site_may_read_why(browsers: Browsers) -> None:
    known = await browsers.http.get("/v1/collections", headers={"Origin": browsers.a.site})
    unknown = await browsers.http.get("/v1/collections", headers={"Origin": "https://evil.example"})

    assert (known.status_code, unknown.status_code) == (401, 401)
    assert known.headers["access-control-allow-origin"] == browsers.a.site
    assert "access-control-allow-origin" not in unknown.headers


async def test_requests_without_an_origin_are_not_affected(browsers: Browsers) -> None:
    answer = await browsers.http.get("/v1/me", headers=browsers.a.auth())

    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


async def test_signing_out_revokes_the_session_at_once(browsers: Browsers) -> None:
    a = browsers.a
    session = (await browsers.http.post("/v1/sessions", headers=a.auth())).json()

    ended = await browsers.http.delete("/v1/sessions/current", headers=a.auth(session["key"]))
    after = await browsers.http.get("/v1/me", headers=a.auth(session["key"]))

    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "revoked"
    assert after.status_code == 401
    assert "was revoked" in after.json()["detail"]


async def test_signing_out_with_an_api_key_is_refused_and_keeps_the_key(browsers: Browsers) -> None:
    a = browsers.a

    ended = await browsers.http.delete("/v1/sessions/current", headers=a.auth())
    after = await browsers.http.get("/v1/me", headers=a.auth())

    assert ended.status_code == 422
    assert "is not a session" in ended.json()["detail"]
    assert "DELETE /v1/keys/{key_id}" in ended.json()["detail"]
    assert after.status_code == 200


async def test_the_page_is_told_the_auth_mode(browsers: Browsers) -> None:
    config = await browsers.http.get("/ui/config.json")

    assert config.json()["auth_mode"] == "keys"


async def test_a_public_chat_keys_own_origins_are_answered_and_allowed_for_that_key_only(browsers: Browsers) -> None:
    a = browsers.a
    widget_site = f"https://{uuid.uuid4().hex[:8]}.shop.example"
    made = await browsers.http.post(
        "/v1/keys",
        json={"role": "viewer", "collection_ids": ["handbook"], "origins": [widget_site]},
        headers=a.auth(),
    )
    chat_key = made.json()["key"]

    preflight = await _preflight(browsers.http, widget_site)
    with_its_key = await browsers.http.get("/v1/me", headers={"Origin": widget_site, **a.auth(chat_key)})
    with_the_admin_key = await browsers.http.get("/v1/me", headers={"Origin": widget_site, **a.auth()})

    assert preflight.status_code == 200
    # the page may read the answer; the key's scope (chat only) still refuses the route itself
    assert with_its_key.status_code == 403
    assert with_its_key.headers["access-control-allow-origin"] == widget_site
    assert "public chat key" in with_its_key.json()["detail"]
    assert with_the_admin_key.status_code == 403
    assert with_the_admin_key.json()["error"] == "OriginNotAllowed"
