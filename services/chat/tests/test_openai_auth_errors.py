"""The OpenAI-compatible routes refuse keys in OpenAI's error shape, as OpenAI clients parse it.

Chat runs in ``keys`` mode over the real PostgreSQL holding ``auth.api_keys`` (the gateway's
tables, created by its migrations as in a deployment); keys are made as the gateway makes them.
The official ``openai`` client must raise ``AuthenticationError`` and ``PermissionDeniedError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from psycopg_pool import AsyncConnectionPool

from ragstream_chat.api import create_app
from ragstream_core.auth import Authenticator
from ragstream_core.auth.keys import key_hash, new_key
from ragstream_devstack.servers import Postgres
from ragstream_devstack.testing import migrated_pool, new_id

if TYPE_CHECKING:
    from conftest import Ports


@pytest.fixture(scope="module")
async def auth_pool(postgres: Postgres) -> AsyncIterator[AsyncConnectionPool]:
    """The session PostgreSQL with the gateway's tables (``auth.api_keys``, ``gateway.audit_log``)."""
    async with migrated_pool(postgres.url, service="gateway", package="ragstream_gateway") as pool:
        yield pool


async def make_key(
    pool: AsyncConnectionPool, tenant: str, *, role: str = "viewer", collections: list[str] | None = None
) -> str:
    """A key of a new account of ``tenant``; ``collections``: a public chat key limited to them."""
    key_id, key = new_key()
    account = new_id("acct")
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO auth.tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))
        await conn.execute(
            "INSERT INTO auth.accounts (tenant_id, account_id, role, created_by) VALUES (%s, %s, %s, 'test')",
            (tenant, account, role),
        )
        await conn.execute(
            "INSERT INTO auth.api_keys (key_id, key_hash, tenant_id, account_id, role, created_by, collection_ids)"
            " VALUES (%s, %s, %s, %s, %s, 'test', %s)",
            (key_id, key_hash(key), tenant, account, role, collections),
        )
    return key


@pytest.fixture
async def keyed_chat(ports: Ports, auth_pool: AsyncConnectionPool) -> AsyncIterator[httpx.AsyncClient]:
    """Chat in keys mode, in process."""
    authenticator = Authenticator(mode="keys", default_tenant="default", pool=auth_pool, cache_s=0)
    app = create_app(ports, default_tenant="default", authenticator=authenticator)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat.test") as http:
        yield http


def llm(http: httpx.AsyncClient, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url="http://chat.test/v1", api_key=key, http_client=http, max_retries=0)


async def test_an_unknown_key_is_openais_authentication_error(keyed_chat: httpx.AsyncClient) -> None:
    _, unknown = new_key()

    with pytest.raises(openai.AuthenticationError) as refused:
        await llm(keyed_chat, unknown).chat.completions.create(
            model="docs", messages=[{"role": "user", "content": "Hi?"}]
        )

    assert refused.value.status_code == 401
    assert refused.value.code == "invalid_api_key"
    assert refused.value.type == "authentication_error"
    assert "is not known" in refused.value.message
    assert unknown.rsplit("_", 1)[1] not in refused.value.message


async def test_a_missing_key_is_a_401_in_openai_shape_with_a_bearer_challenge(keyed_chat: httpx.AsyncClient) -> None:
    response = await keyed_chat.get("/v1/models")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("authentication_error", "invalid_api_key", None)
    assert "needs an API key" in error["message"]


async def test_a_public_chat_key_is_openais_permission_denied(
    keyed_chat: httpx.AsyncClient, auth_pool: AsyncConnectionPool
) -> None:
    key = await make_key(auth_pool, new_id("tenant"), collections=["docs"])

    with pytest.raises(openai.PermissionDeniedError) as refused:
        await llm(keyed_chat, key).models.list()

    assert refused.value.status_code == 403
    assert refused.value.code == "insufficient_permissions"
    assert "public chat key" in refused.value.message


async def test_a_valid_key_reaches_the_route_and_other_routes_keep_ragstreams_shape(
    keyed_chat: httpx.AsyncClient, auth_pool: AsyncConnectionPool
) -> None:
    key = await make_key(auth_pool, new_id("tenant"))

    models = await llm(keyed_chat, key).models.list()
    refused = await keyed_chat.get("/v1/conversations")

    assert models.data == []
    assert refused.status_code == 401
    assert refused.json()["error"] == "Unauthenticated"


async def test_only_an_admin_may_point_a_collection_at_another_endpoint_or_key(
    keyed_chat: httpx.AsyncClient, auth_pool: AsyncConnectionPool
) -> None:
    """Chat sends a collection's questions and passages to its endpoint: choosing it (or its key)
    is a tenant setting, an admin's; an editor keeps every other setting."""
    tenant, collection = new_id("tenant"), new_id("col")
    editor = {"Authorization": f"Bearer {await make_key(auth_pool, tenant, role='editor')}"}
    admin = {"Authorization": f"Bearer {await make_key(auth_pool, tenant, role='admin')}"}
    url = f"/v1/collections/{collection}/chat/settings"
    endpoint = {"openai_base_url": "http://127.0.0.1:9/v1", "openai_model": "m"}

    redirected = await keyed_chat.put(url, json=endpoint, headers=editor)
    tuned = await keyed_chat.put(url, json={"min_score": 0.3}, headers=editor)
    pointed = await keyed_chat.put(url, json=endpoint, headers=admin)
    kept = await keyed_chat.put(url, json={**endpoint, "min_score": 0.4}, headers=editor)
    keyed = await keyed_chat.put(url, json={**endpoint, "api_key": "sk-editor-chosen-key-123"}, headers=editor)

    assert redirected.status_code == 403, redirected.text
    assert "needs the role admin" in redirected.json()["detail"]
    assert (tuned.status_code, pointed.status_code, kept.status_code) == (200, 200, 200), (tuned.text, pointed.text)
    assert keyed.status_code == 403
    assert "sk-editor-chosen-key-123" not in keyed.text
