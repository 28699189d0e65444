"""Chat rate limits per key and per tenant over every way of asking (REST, SSE, WebSocket, gRPC,
OpenAI-compatible), in ``keys`` mode on the real PostgreSQL.

The ``auth`` tables (keys, tenant limits, rate buckets) are the gateway's: its migrations are
applied to this test's database, as ``make run`` does; keys are written as the gateway writes them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from websockets.asyncio.client import connect

from ragstream_chat.api import create_app
from ragstream_chat.grpc_api import ChatServicer
from ragstream_chat.main import GRPC_RATES, GRPC_ROLES
from ragstream_core.auth import Authenticator, AuthInterceptor, RateLimiter, RateLimits, key_hash, new_key
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import chat_pb2, chat_pb2_grpc
from ragstream_core.runtime import serve_http
from ragstream_devstack.servers import Postgres, free_port, wait_for_port
from ragstream_devstack.testing import eventually, migrated_pool, new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."
WINDOW_S = 2.0


@pytest.fixture(scope="session")
async def auth_pool(postgres: Postgres) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on the session PostgreSQL with the gateway's ``auth`` tables (it owns them)."""
    async with migrated_pool(postgres.url, service="gateway", package="ragstream_gateway") as pool:
        yield pool


@dataclass
class Tenant:
    tenant_id: str
    pool: AsyncConnectionPool

    async def key(self) -> str:
        """A new viewer key of this tenant, stored as the gateway stores keys (only its hash)."""
        key_id, key = new_key()
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO auth.tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (self.tenant_id,)
            )
            await conn.execute(
                "INSERT INTO auth.accounts (tenant_id, account_id, role, created_by) VALUES (%s, 'reader', 'viewer',"
                " 'test') ON CONFLICT DO NOTHING",
                (self.tenant_id,),
            )
            await conn.execute(
                "INSERT INTO auth.api_keys (key_id, key_hash, tenant_id, account_id, role, created_by)"
                " VALUES (%s, %s, %s, 'reader', 'viewer', 'test')",
                (key_id, key_hash(key), self.tenant_id),
            )
        return key

    async def limit_chat(self, *, per_key: int, per_tenant: int) -> None:
        """The tenant's own chat limits, as ``PUT /v1/tenant/limits`` stores them."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO auth.tenant_limits (tenant_id, chat_per_key, chat_per_tenant, updated_by)"
                " VALUES (%s, %s, %s, 'test')",
                (self.tenant_id, per_key, per_tenant),
            )


@pytest.fixture
def authenticator(auth_pool: AsyncConnectionPool) -> Authenticator:
    limiter = RateLimiter(auth_pool, RateLimits(window_s=WINDOW_S))
    return Authenticator(mode="keys", default_tenant="default", pool=auth_pool, cache_s=0, limiter=limiter)


def new_tenant(pool: AsyncConnectionPool) -> Tenant:
    return Tenant(f"t-{uuid.uuid4().hex[:10]}", pool)


@pytest.fixture
async def chat_url(ports: Ports, authenticator: Authenticator) -> AsyncIterator[str]:
    """The chat REST API in keys mode under a real uvicorn server."""
    port = free_port()
    stop = asyncio.Event()
    app = create_app(ports, default_tenant="default", authenticator=authenticator)
    task = asyncio.create_task(serve_http(app, host="127.0.0.1", port=port, stop=stop))
    await asyncio.to_thread(wait_for_port, port)
    yield f"http://127.0.0.1:{port}"
    stop.set()
    await task


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def ask(http: httpx.AsyncClient, key: str, collection: str, **body: object) -> httpx.Response:
    return await http.post(
        f"/v1/collections/{collection}/chat", json={"question": "Where do mallards go?", **body}, headers=bearer(key)
    )


async def test_a_key_over_its_chat_limit_gets_429_and_another_tenant_still_chats(
    responder: SearchResponder, chat_url: str, auth_pool: AsyncConnectionPool
) -> None:
    responder.add_hit(MALLARDS)
    limited, other = new_tenant(auth_pool), new_tenant(auth_pool)
    await limited.limit_chat(per_key=2, per_tenant=100)
    key, other_key = await limited.key(), await other.key()
    collection = new_id("col")

    async with httpx.AsyncClient(base_url=chat_url, timeout=10) as http:
        answered = [(await ask(http, key, collection)).status_code for _ in range(2)]
        refused = await ask(http, key, collection)
        streamed_refusal = await ask(http, key, collection, stream=True)
        others = [(await ask(http, other_key, collection)).status_code for _ in range(3)]

    assert answered == [200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    body = refused.json()
    assert (body["limit"], body["action"], body["limit_per_window"]) == ("key", "chat", 2)
    assert "at most 2 questions per 2 s" in body["detail"]
    assert streamed_refusal.status_code == 429
    assert others == [200, 200, 200]


async def test_the_tenant_limit_stops_its_second_key_and_frees_after_retry_after(
    responder: SearchResponder, chat_url: str, auth_pool: AsyncConnectionPool
) -> None:
    responder.add_hit(MALLARDS)
    tenant = new_tenant(auth_pool)
    await tenant.limit_chat(per_key=5, per_tenant=2)
    first, second = await tenant.key(), await tenant.key()
    collection = new_id("col")

    async with httpx.AsyncClient(base_url=chat_url, timeout=10) as http:
        assert (await ask(http, first, collection)).status_code == 200
        assert (await ask(http, first, collection)).status_code == 200
        refused = await ask(http, second, collection)
        later = await eventually(lambda: ask(http, second, collection), lambda r: r.status_code != 429, within_s=5)

    assert refused.status_code == 429
    assert refused.json()["limit"] == "tenant"
    assert later.status_code == 200


async def test_the_openai_endpoint_answers_429_in_openais_error_shape(
    responder: SearchResponder, chat_url: str, auth_pool: AsyncConnectionPool
) -> None:
    responder.add_hit(MALLARDS)
    tenant = new_tenant(auth_pool)
    await tenant.limit_chat(per_key=1, per_tenant=0)
    key = await tenant.key()
    request = {"model": new_id("col"), "messages": [{"role": "user", "content": "Where do mallards go?"}]}

    async with httpx.AsyncClient(base_url=chat_url, timeout=10) as http:
        first = await http.post("/v1/chat/completions", json=request, headers=bearer(key))
        refused = await http.post("/v1/chat/completions", json=request, headers=bearer(key))

    assert first.status_code == 200, first.text
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_exceeded", "rate_limit_exceeded")
    assert "at most 1 questions" in error["message"]


async def test_a_websocket_is_charged_per_question_and_stays_open_when_refused(
    responder: SearchResponder, chat_url: str, auth_pool: AsyncConnectionPool
) -> None:
    responder.add_hit(MALLARDS)
    tenant = new_tenant(auth_pool)
    await tenant.limit_chat(per_key=1, per_tenant=0)
    key = await tenant.key()
    url = chat_url.replace("http://", "ws://") + f"/v1/collections/{new_id('col')}/chat/ws?access_token={key}"

    async with connect(url) as socket:
        await socket.send(json.dumps({"question": "Where do mallards go?"}))
        events = [json.loads(await socket.recv())]
        while events[-1]["event"] != "done":
            events.append(json.loads(await socket.recv()))
        await socket.send(json.dumps({"question": "And in winter?"}))
        refused = json.loads(await socket.recv())
        await socket.send(json.dumps({"question": "And in winter?"}))
        still_open = json.loads(await socket.recv())

    assert events[0]["event"] == "started"
    assert (refused["event"], refused["data"]["error"], refused["data"]["limit"]) == ("error", "RateLimited", "key")
    assert refused["data"]["retry_after_s"] >= 1
    assert still_open["event"] == "error"  # refused again, on the same connection


async def test_grpc_ask_over_the_limit_is_resource_exhausted_with_retry_after(
    responder: SearchResponder, ports: Ports, authenticator: Authenticator, auth_pool: AsyncConnectionPool
) -> None:
    responder.add_hit(MALLARDS)
    tenant = new_tenant(auth_pool)
    await tenant.limit_chat(per_key=1, per_tenant=0)
    key = await tenant.key()
    port = free_port()
    servicer = ChatServicer(ports, default_tenant="default")
    server = await start_grpc_server(
        [lambda s: chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.ChatService"],
        host="127.0.0.1",
        port=port,
        interceptors=[AuthInterceptor(authenticator, GRPC_ROLES, rates=GRPC_RATES)],
    )
    request = chat_pb2.AskRequest(collection_id=new_id("col"), question="Where do mallards go?")
    metadata = (("authorization", f"Bearer {key}"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = chat_pb2_grpc.ChatServiceStub(channel)  # type: ignore[no-untyped-call]
            answered = await stub.Ask(request, metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for _ in stub.AskStream(request, metadata=metadata):
                    pass
    finally:
        await server.stop(grace=None)

    assert answered.answer
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(dict(raised.value.trailing_metadata() or ())["retry-after"]) >= 1
