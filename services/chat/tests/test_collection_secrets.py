"""A collection's own OpenAI-compatible endpoint: its API key sealed at rest, write-only, rotated
without loss, and a key no configured key opens failing the answer with a reason.

The provider is a real HTTP server speaking ``/v1/chat/completions`` (JSON and SSE chunks) that
accepts only the keys it is given, and, refusing, quotes the key it was sent (as a careless
provider might). The database is the session's real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_chat.collection_provider import CollectionProviders
from ragstream_chat.collection_settings import CollectionStore, secret_context
from ragstream_core.errors import SecretUnavailable
from ragstream_core.secrets import SecretBox, generate_key
from ragstream_devstack.servers import Postgres, python_env
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."
REPLY = "Mallards migrate south in winter [1]."
MODEL = "collection-model-1"


@dataclass
class Provider:
    """What the fake provider accepts and what it saw."""

    base_url: str
    accepted: set[str] = field(default_factory=set)
    authorizations: list[str] = field(default_factory=list)


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": MODEL,
            "system_fingerprint": None, "choices": [choice]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class CompletionHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            sent = self.headers.get("Authorization", "")
            provider.authorizations.append(sent)
            if self.path != "/v1/chat/completions" or sent.removeprefix("Bearer ") not in provider.accepted:
                error = {"message": f"Incorrect API key provided: {sent.removeprefix('Bearer ')}.",
                         "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}  # fmt: skip
                self._send(401, "application/json", json.dumps({"error": error}).encode())
                return
            if request.get("stream"):
                body = _chunk({"role": "assistant", "content": ""}) + _chunk({"content": REPLY})
                body += _chunk({}, finish_reason="stop") + b"data: [DONE]\n\n"
                self._send(200, "text/event-stream", body)
                return
            message = {"role": "assistant", "content": REPLY, "refusal": None}
            completion = {"id": "chatcmpl-2", "object": "chat.completion", "created": int(time.time()),
                          "model": request["model"], "choices": [{"index": 0, "message": message,
                          "logprobs": None, "finish_reason": "stop"}]}  # fmt: skip
            self._send(200, "application/json", json.dumps(completion).encode())

        def log_message(self, format: str, *args: Any) -> None:
            return

    return CompletionHandler


@pytest.fixture(scope="module")
def provider_server() -> Iterator[Provider]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Provider("")))
    provider = Provider(f"http://127.0.0.1:{server.server_address[1]}/v1")
    server.RequestHandlerClass = _handler(provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield provider
    server.shutdown()
    thread.join(10)


@pytest.fixture
def provider(provider_server: Provider) -> Provider:
    """The module's provider, with what it accepts and saw reset."""
    provider_server.accepted.clear()
    provider_server.authorizations.clear()
    return provider_server


@pytest.fixture
def api_key(provider: Provider) -> str:
    key = "sk-collection-" + new_id("key")
    provider.accepted.add(key)
    return key


@pytest.fixture
def tenant() -> dict[str, str]:
    return {"X-Tenant-Id": new_id("tenant")}


def box(*keys: str) -> SecretBox:
    return SecretBox.from_config(",".join(keys))


def use_keys(ports: Ports, *keys: str) -> None:
    """Run chat with ``RAGSTREAM_SECRET_KEYS`` = ``keys`` from now on (as a restart would)."""
    ports.providers = CollectionProviders(box(*keys), timeout_s=5)


async def configure(
    client: httpx.AsyncClient, tenant: dict[str, str], collection: str, provider: Provider, key: str | None
) -> httpx.Response:
    body: dict[str, Any] = {"provider": "openai", "openai_base_url": provider.base_url, "openai_model": MODEL}
    if key is not None:
        body["api_key"] = key
    return await client.put(f"/v1/collections/{collection}/chat/settings", json=body, headers=tenant)


async def stored_row(pool: AsyncConnectionPool, tenant: dict[str, str], collection: str) -> tuple[Any, ...] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT api_key_sealed, api_key_key_id, api_key_hint, openai_base_url FROM chat.collection_settings"
            " WHERE tenant_id = %s AND collection_id = %s",
            (tenant["X-Tenant-Id"], collection),
        )
        return await cur.fetchone()


async def test_a_collection_key_is_stored_only_sealed_and_opens_only_with_its_key(
    client: httpx.AsyncClient, ports: Ports, chat_pool: AsyncConnectionPool, provider: Provider, api_key: str,
    tenant: dict[str, str],
) -> None:  # fmt: skip
    key = generate_key()
    use_keys(ports, key)
    collection = new_id("col")

    put = await configure(client, tenant, collection, provider, api_key)

    assert put.status_code == 200, put.text
    row = await stored_row(chat_pool, tenant, collection)
    assert row is not None
    sealed, key_id, hint, base_url = row
    assert api_key not in sealed
    assert key_id == box(key).key_ids[0]
    assert hint == api_key[-4:]
    context = secret_context(tenant["X-Tenant-Id"], collection, base_url)
    assert box(key).open(sealed, context=context, name="test") == api_key
    with pytest.raises(SecretUnavailable):
        box(generate_key()).open(sealed, context=context, name="test")


async def test_the_api_never_returns_the_key(
    client: httpx.AsyncClient, provider: Provider, api_key: str, tenant: dict[str, str]
) -> None:
    collection = new_id("col")

    put = await configure(client, tenant, collection, provider, api_key)
    get = await client.get(f"/v1/collections/{collection}/chat/settings", headers=tenant)

    for response in (put, get):
        assert api_key not in response.text
        assert response.json()["api_key_set"] is True
        assert response.json()["api_key_last4"] == api_key[-4:]
        assert response.json()["openai_base_url"] == provider.base_url
        assert response.json()["source"]["endpoint"] == "collection"


async def test_a_collection_key_reaches_its_provider_and_other_collections_keep_the_default(
    client: httpx.AsyncClient, responder: SearchResponder, provider: Provider, api_key: str, tenant: dict[str, str]
) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    own, other = new_id("col"), new_id("col")
    await configure(client, tenant, own, provider, api_key)
    question = {"question": "When do mallards migrate?"}

    answered = await client.post(f"/v1/collections/{own}/chat", json=question, headers=tenant)
    default = await client.post(f"/v1/collections/{other}/chat", json=question, headers=tenant)

    assert answered.status_code == 200, answered.text
    assert (answered.json()["answer"], answered.json()["mode"]) == (REPLY, "openai")
    assert provider.authorizations == [f"Bearer {api_key}"]
    assert default.json()["mode"] == "extractive"


async def test_rotation_to_a_new_key_loses_nothing(
    client: httpx.AsyncClient, ports: Ports, chat_pool: AsyncConnectionPool, responder: SearchResponder,
    provider: Provider, api_key: str, tenant: dict[str, str],
) -> None:  # fmt: skip
    responder.add_hit(MALLARDS, score=0.9)
    old, new = generate_key(), generate_key()
    use_keys(ports, old)
    collection = new_id("col")
    await configure(client, tenant, collection, provider, api_key)
    store = CollectionStore(chat_pool)

    use_keys(ports, new, old)  # 1) the new key first, the old one kept
    rotation = await store.rotate_secrets(box(new, old))  # 2) rotate
    again = await store.rotate_secrets(box(new, old))
    use_keys(ports, new)  # 3) the old key removed
    answered = await client.post(
        f"/v1/collections/{collection}/chat", json={"question": "When do mallards migrate?"}, headers=tenant
    )

    # rows of other tests are sealed with keys of their own: only this test's row opens here
    assert (rotation.rotated, rotation.current) == (1, 0)
    assert (again.rotated, again.current) == (0, 1)
    row = await stored_row(chat_pool, tenant, collection)
    assert row is not None
    assert row[1] == box(new).key_ids[0] != box(old).key_ids[0]
    assert answered.status_code == 200, answered.text
    assert answered.json()["answer"] == REPLY
    assert provider.authorizations[-1] == f"Bearer {api_key}"


async def test_the_rotate_secrets_command_reseals_and_reports_counts_as_json(
    client: httpx.AsyncClient, ports: Ports, chat_pool: AsyncConnectionPool, postgres: Postgres, provider: Provider,
    api_key: str, tenant: dict[str, str],
) -> None:  # fmt: skip
    old, new = generate_key(), generate_key()
    use_keys(ports, old)
    collection = new_id("col")
    await configure(client, tenant, collection, provider, api_key)
    env = python_env({"RAGSTREAM_POSTGRES_URL": postgres.url, "RAGSTREAM_SECRET_KEYS": f"{new},{old}"})

    command = [sys.executable, "-m", "ragstream_chat", "rotate-secrets"]
    ran = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)

    report = json.loads(ran.stdout.splitlines()[-1])
    assert report["rotated"] == 1, ran.stdout + ran.stderr
    # rows of other tests (their own keys) are reported unreadable: the command then exits 1
    assert ran.returncode == (1 if report["unreadable"] else 0)
    assert collection not in [u["collection_id"] for u in report["unreadable"]]
    row = await stored_row(chat_pool, tenant, collection)
    assert row is not None
    assert row[1] == box(new).key_ids[0]
    assert old not in ran.stdout + ran.stderr
    assert api_key not in ran.stdout + ran.stderr


async def test_a_key_no_configured_key_opens_fails_the_answer_with_a_reason_and_is_reported(
    client: httpx.AsyncClient, ports: Ports, chat_pool: AsyncConnectionPool, responder: SearchResponder,
    provider: Provider, api_key: str, tenant: dict[str, str],
) -> None:  # fmt: skip
    responder.add_hit(MALLARDS, score=0.9)
    lost, other = generate_key(), generate_key()
    use_keys(ports, lost)
    collection = new_id("col")
    await configure(client, tenant, collection, provider, api_key)
    use_keys(ports, other)  # the key that sealed it is gone

    answered = await client.post(
        f"/v1/collections/{collection}/chat", json={"question": "When do mallards migrate?"}, headers=tenant
    )
    rotation = await CollectionStore(chat_pool).rotate_secrets(box(other))

    assert answered.status_code == 409, answered.text
    detail = answered.json()["detail"]
    assert f"collection {collection!r} of tenant {tenant['X-Tenant-Id']!r}" in detail
    assert box(lost).key_ids[0] in detail
    assert answered.json()["error"] == "SecretUnavailable"
    assert provider.authorizations == []
    unreadable = [(u["tenant_id"], u["collection_id"]) for u in rotation.unreadable]
    assert (tenant["X-Tenant-Id"], collection) in unreadable


async def test_without_a_secret_key_a_key_is_refused_rather_than_stored_in_plain_text(
    client: httpx.AsyncClient, ports: Ports, chat_pool: AsyncConnectionPool, provider: Provider, api_key: str,
    tenant: dict[str, str],
) -> None:  # fmt: skip
    use_keys(ports)  # RAGSTREAM_SECRET_KEYS empty
    collection = new_id("col")

    put = await configure(client, tenant, collection, provider, api_key)

    assert put.status_code == 409
    assert "RAGSTREAM_SECRET_KEYS" in put.json()["detail"]
    assert await stored_row(chat_pool, tenant, collection) is None


async def test_a_kept_key_stays_with_its_base_url(
    client: httpx.AsyncClient, provider: Provider, api_key: str, tenant: dict[str, str]
) -> None:
    collection = new_id("col")
    await configure(client, tenant, collection, provider, api_key)

    kept = await configure(client, tenant, collection, provider, None)  # key omitted, same URL
    moved = await client.put(
        f"/v1/collections/{collection}/chat/settings",
        json={"provider": "openai", "openai_base_url": "https://elsewhere.example.com/v1", "openai_model": MODEL},
        headers=tenant,
    )

    assert kept.json()["api_key_set"] is True
    assert (moved.json()["api_key_set"], moved.json()["openai_base_url"]) == (False, "https://elsewhere.example.com/v1")


async def test_a_provider_quoting_a_wrong_collection_key_never_shows_it(
    client: httpx.AsyncClient, responder: SearchResponder, provider: Provider, tenant: dict[str, str]
) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    wrong = "sk-wrong-" + new_id("key")
    collection = new_id("col")
    await configure(client, tenant, collection, provider, wrong)

    answered = await client.post(
        f"/v1/collections/{collection}/chat", json={"question": "When do mallards migrate?"}, headers=tenant
    )

    assert answered.status_code == 503
    assert "Incorrect API key provided: ***" in answered.json()["detail"]
    assert wrong not in answered.text
    assert provider.authorizations == [f"Bearer {wrong}"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"openai_base_url": "ftp://llm.example.com", "openai_model": MODEL}, "is not an http(s) URL"),
        ({"openai_base_url": "https://u:pw@llm.example.com/v1", "openai_model": MODEL}, "must not carry credentials"),
        ({"openai_base_url": "https://llm.example.com/v1"}, "needs openai_model"),
        ({"openai_base_url": "http://[::1/v1", "openai_model": MODEL}, "is not a URL"),
        ({"openai_base_url": "http://llm.example.com:99999/v1", "openai_model": MODEL}, "is not a URL"),
        ({"api_key": "sk-orphan-key-123456"}, "api_key needs openai_base_url"),
    ],
)
async def test_an_endpoint_that_is_not_complete_is_refused_saying_what_is_accepted(
    client: httpx.AsyncClient, tenant: dict[str, str], body: dict[str, str], reason: str
) -> None:
    response = await client.put(f"/v1/collections/{new_id('col')}/chat/settings", json=body, headers=tenant)

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert "pw@" not in response.text
    assert "sk-orphan-key-123456" not in response.text
