"""API keys, accounts and roles at the gateway in ``keys`` mode, over the real PostgreSQL."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth import Authenticator
from ragstream_core.errors import Forbidden
from ragstream_gateway.app import create_app
from ragstream_gateway.auth_repository import AuthRepository
from ragstream_gateway.ports import GatewayPorts


@dataclass
class Tenant:
    tenant_id: str
    admin_key: str
    http: httpx.AsyncClient

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}


@pytest.fixture
async def keyed(make_ports: Callable[..., GatewayPorts], gateway_pool: AsyncConnectionPool) -> AsyncIterator[Tenant]:
    """A gateway in keys mode and a new tenant whose bootstrap admin key is known."""
    authenticator = Authenticator(mode="keys", default_tenant="default", pool=gateway_pool, cache_s=0)
    app = create_app(make_ports(), progress_url="http://progress.test", authenticator=authenticator)
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    key = secrets.token_urlsafe(40)
    await AuthRepository(gateway_pool).install_bootstrap_key(tenant, key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as http:
        yield Tenant(tenant, key, http)


async def _new_key(t: Tenant, role: str, **body: object) -> dict[str, object]:
    response = await t.http.post("/v1/keys", json={"role": role, **body}, headers=t.auth())
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


async def test_a_request_without_a_key_is_refused_with_401_and_a_bearer_challenge(keyed: Tenant) -> None:
    response = await keyed.http.get("/v1/collections")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["detail"]


async def test_an_unknown_key_is_refused_and_the_refusal_is_audited_without_the_secret(
    keyed: Tenant, gateway_pool: AsyncConnectionPool
) -> None:
    forged = f"rs_live_{'0' * 12}_{secrets.token_urlsafe(32)[:43]}"

    response = await keyed.http.get("/v1/collections", headers=keyed.auth(forged))

    assert response.status_code == 401
    assert "rs_live_000000000000 is not known" in response.json()["detail"]
    async with gateway_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT actor, outcome, detail::text FROM gateway.audit_log WHERE action = 'auth.refused'"
            " AND actor = 'rs_live_000000000000' ORDER BY audit_id DESC LIMIT 1"
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[1] == "unauthenticated"
    assert forged not in row[2]
    assert forged.split("_", 3)[3] not in row[2]


async def test_a_created_key_works_once_shown_and_is_stored_only_as_its_hash(
    keyed: Tenant, gateway_pool: AsyncConnectionPool
) -> None:
    created = await _new_key(keyed, "editor", name="ci")
    key = str(created["key"])

    me = await keyed.http.get("/v1/me", headers=keyed.auth(key))
    listed = await keyed.http.get("/v1/keys", headers=keyed.auth())

    assert key.startswith(str(created["key_id"]) + "_")
    assert me.json() == {
        "tenant_id": keyed.tenant_id,
        "account_id": "bootstrap-admin",
        "role": "editor",
        "key_id": created["key_id"],
    }
    assert all("key" not in k for k in listed.json()["keys"])
    assert created["key_id"] in [k["key_id"] for k in listed.json()["keys"]]
    async with gateway_pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM auth.api_keys WHERE key_hash = convert_to(%s, 'UTF8')", (key,))
        row = await cur.fetchone()
    assert row == (0,)


async def test_a_viewer_may_read_but_not_upload_and_the_403_names_the_role_needed(keyed: Tenant) -> None:
    viewer = str((await _new_key(keyed, "viewer"))["key"])

    read = await keyed.http.get("/v1/collections", headers=keyed.auth(viewer))
    upload = await keyed.http.post(
        "/v1/collections/c1/documents", files={"file": ("a.txt", b"hello")}, headers=keyed.auth(viewer)
    )

    assert read.status_code == 200
    assert upload.status_code == 403
    assert "needs the role editor" in upload.json()["detail"]
    assert upload.json()["needed_role"] == "editor"


async def test_only_an_admin_manages_keys(keyed: Tenant) -> None:
    editor = str((await _new_key(keyed, "editor"))["key"])

    response = await keyed.http.post("/v1/keys", json={"role": "viewer"}, headers=keyed.auth(editor))

    assert response.status_code == 403
    assert "needs the role admin" in response.json()["detail"]


async def test_a_revoked_key_is_refused_saying_so(keyed: Tenant) -> None:
    created = await _new_key(keyed, "viewer")

    revoked = await keyed.http.delete(f"/v1/keys/{created['key_id']}", headers=keyed.auth())
    response = await keyed.http.get("/v1/collections", headers=keyed.auth(str(created["key"])))

    assert revoked.json()["status"] == "revoked"
    assert response.status_code == 401
    assert "was revoked" in response.json()["detail"]


async def test_an_expired_key_is_refused_saying_so(keyed: Tenant, gateway_pool: AsyncConnectionPool) -> None:
    created = await _new_key(keyed, "viewer", expires_in_days=1)
    async with gateway_pool.connection() as conn:
        await conn.execute(
            "UPDATE auth.api_keys SET expires_at = now() - interval '1 second' WHERE key_id = %s",
            (created["key_id"],),
        )

    response = await keyed.http.get("/v1/collections", headers=keyed.auth(str(created["key"])))

    assert response.status_code == 401
    assert "expired at" in response.json()["detail"]


async def test_a_key_cannot_be_stronger_than_its_account_and_follows_its_account(keyed: Tenant) -> None:
    member = await keyed.http.post("/v1/accounts", json={"account_id": "bob", "role": "editor"}, headers=keyed.auth())
    too_strong = await keyed.http.post("/v1/keys", json={"role": "admin", "account_id": "bob"}, headers=keyed.auth())
    bob = str((await _new_key(keyed, "editor", account_id="bob"))["key"])

    demoted = await keyed.http.patch("/v1/accounts/bob", json={"role": "viewer"}, headers=keyed.auth())
    after_demotion = await keyed.http.get("/v1/me", headers=keyed.auth(bob))
    await keyed.http.patch("/v1/accounts/bob", json={"disabled": True}, headers=keyed.auth())
    after_disabling = await keyed.http.get("/v1/me", headers=keyed.auth(bob))

    assert member.status_code == 201
    assert too_strong.status_code == 422
    assert "at most its role 'editor'" in too_strong.json()["detail"]
    assert demoted.json()["role"] == "viewer"
    assert after_demotion.json()["role"] == "viewer"
    assert after_disabling.status_code == 401
    assert "disabled" in after_disabling.json()["detail"]


async def test_the_tenant_comes_from_the_key_never_from_the_header(keyed: Tenant) -> None:
    response = await keyed.http.get("/v1/me", headers={**keyed.auth(), "X-Tenant-Id": "someone-else"})

    assert response.json()["tenant_id"] == keyed.tenant_id


async def test_the_one_time_upload_url_needs_no_key(keyed: Tenant) -> None:
    response = await keyed.http.put("/v1/uploads/nope?token=wrong", content=b"x")

    assert response.status_code == 404


async def _chat_key(t: Tenant) -> str:
    created = await _new_key(t, "viewer", collection_ids=["docs"], origins=["https://Shop.example.com/"])
    assert created["collection_ids"] == ["docs"]
    assert created["origins"] == ["https://shop.example.com"]
    return str(created["key"])


CHAT_ROUTE = "/v1/collections/{collection_id}/chat"


async def test_a_public_chat_key_asks_its_collections_from_its_origins(
    keyed: Tenant, gateway_pool: AsyncConnectionPool
) -> None:
    key = await _chat_key(keyed)
    authenticator = Authenticator(
        mode="keys", default_tenant="default", pool=gateway_pool, cache_s=0, policy={("POST", CHAT_ROUTE): "viewer"}
    )

    principal = await authenticator.authorize(
        method="POST",
        route=CHAT_ROUTE,
        authorization=f"Bearer {key}",
        collection_id="docs",
        origin="https://shop.example.com",
    )

    assert principal is not None
    assert principal.tenant_id == keyed.tenant_id
    assert principal.collection_ids == ("docs",)


@pytest.mark.parametrize(
    ("route", "collection", "origin", "reason"),
    [
        (CHAT_ROUTE, "other", "https://shop.example.com", "may only ask the collections docs"),
        (CHAT_ROUTE, "docs", "https://evil.example.com", "comes from https://evil.example.com"),
        (CHAT_ROUTE, "docs", None, "no Origin header"),
        ("/v1/collections/{collection_id}/conversations", "docs", "https://shop.example.com", "public chat key"),
    ],
)
async def test_a_public_chat_key_is_refused_elsewhere(
    keyed: Tenant, gateway_pool: AsyncConnectionPool, route: str, collection: str, origin: str | None, reason: str
) -> None:
    key = await _chat_key(keyed)
    authenticator = Authenticator(mode="keys", default_tenant="default", pool=gateway_pool, cache_s=0)

    with pytest.raises(Forbidden) as refused:
        await authenticator.authorize(
            method="POST", route=route, authorization=f"Bearer {key}", collection_id=collection, origin=origin
        )

    assert reason in str(refused.value)


async def test_a_public_chat_key_cannot_read_the_gateway(keyed: Tenant) -> None:
    key = await _chat_key(keyed)

    response = await keyed.http.get(
        "/v1/collections/docs", headers={**keyed.auth(key), "Origin": "https://shop.example.com"}
    )

    assert response.status_code == 403
    assert "public chat key" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"role": "viewer", "collection_ids": ["docs"]}, "needs both collection_ids"),
        ({"role": "editor", "collection_ids": ["docs"], "origins": ["https://a.example"]}, "has the role viewer"),
        ({"role": "viewer", "collection_ids": ["docs"], "origins": ["shop.example.com"]}, "is not valid"),
    ],
)
async def test_a_public_chat_key_needs_collections_origins_and_the_viewer_role(
    keyed: Tenant, body: dict[str, object], reason: str
) -> None:
    response = await keyed.http.post("/v1/keys", json=body, headers=keyed.auth())

    assert response.status_code == 422
    assert reason in response.json()["detail"]


async def test_changes_are_audited_with_the_keys_account(keyed: Tenant) -> None:
    editor = str((await _new_key(keyed, "editor", name="importer"))["key"])

    opened = await keyed.http.post("/v1/collections/c1/uploads", json={"file_name": "a.md"}, headers=keyed.auth(editor))
    audit = await keyed.http.get("/v1/audit", params={"action": "upload.open"}, headers=keyed.auth())

    assert opened.status_code == 201
    [entry] = audit.json()["entries"]
    assert entry["actor"] == "bootstrap-admin"
    assert entry["detail"]["upload_id"] == opened.json()["upload_id"]
    assert editor not in audit.text


async def test_a_refused_change_is_audited_without_repeating_what_the_caller_sent(keyed: Tenant) -> None:
    """Not only the changes that worked: a delete of an id that is not the tenant's is on record,
    by a fingerprint of the id and the error's type (the id may be another tenant's, and the
    tenant's admins read this log); a role refusal is recorded once (as auth.refused), not twice."""
    editor = str((await _new_key(keyed, "editor", name="cleaner"))["key"])
    viewer = str((await _new_key(keyed, "viewer"))["key"])
    foreign = f"doc-{uuid.uuid4().hex[:8]}"

    deleted = await keyed.http.delete(f"/v1/documents/{foreign}", headers=keyed.auth(editor))
    forbidden = await keyed.http.delete(f"/v1/documents/{foreign}", headers=keyed.auth(viewer))
    invalid = await keyed.http.patch(f"/v1/documents/{foreign}", json={"file_name": 7}, headers=keyed.auth(editor))
    audit = await keyed.http.get(
        "/v1/audit", params={"action": "DELETE /v1/documents/{document_id}"}, headers=keyed.auth()
    )
    patched = await keyed.http.get(
        "/v1/audit", params={"action": "PATCH /v1/documents/{document_id}"}, headers=keyed.auth()
    )
    refusals = await keyed.http.get("/v1/audit", params={"action": "auth.refused"}, headers=keyed.auth())

    assert (deleted.status_code, forbidden.status_code, invalid.status_code) == (404, 403, 422)
    [entry] = audit.json()["entries"]
    assert (entry["actor"], entry["outcome"], entry["detail"]["status"]) == ("bootstrap-admin", "refused", 404)
    assert entry["detail"]["target"] == "sha256:" + hashlib.sha256(foreign.encode()).hexdigest()[:16]
    assert entry["detail"]["reason"] == "NotFound"
    [patch] = patched.json()["entries"]
    assert (patch["detail"]["status"], patch["detail"]["reason"]) == (422, "RequestValidationError")
    assert [e["detail"]["route"] for e in refusals.json()["entries"]] == ["/v1/documents/{document_id}"]
    assert foreign not in audit.text + patched.text + refusals.text
    assert editor not in audit.text
    assert viewer not in refusals.text


async def test_a_session_is_a_short_lived_key_of_the_callers_account_and_role(keyed: Tenant) -> None:
    viewer = str((await _new_key(keyed, "viewer"))["key"])

    made = await keyed.http.post("/v1/sessions", headers=keyed.auth(viewer))
    session = made.json()
    me = await keyed.http.get("/v1/me", headers=keyed.auth(session["key"]))

    assert made.status_code == 201
    assert (session["role"], session["name"], session["status"]) == ("viewer", "session", "active")
    lifetime = datetime.fromisoformat(session["expires_at"]) - datetime.fromisoformat(session["created_at"])
    assert timedelta(seconds=890) < lifetime <= timedelta(seconds=901)
    assert me.json()["role"] == "viewer"
    assert me.json()["key_id"] == session["key_id"]
