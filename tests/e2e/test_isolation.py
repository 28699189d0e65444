"""Tenant isolation in ``keys`` mode, proven by walking every route, feed and gRPC method.

Tenant B, with its own admin key (the strongest role: the role is never what stops it), calls every
REST route, WebSocket and SSE feed and gRPC method of the gateway, progress and chat with tenant
A's ids (collection, document, version, job, batch, direct upload, dead letter, crawl,
conversation, key, account). Each answer must be indistinguishable from the answer for an id that
exists nowhere, and carry none of A's data. The routes are read from the apps themselves:
a route missing from ``EXPECTED`` fails the walk, so a new route cannot be forgotten.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc
import httpx
import pytest
import websockets
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from ragstream_chat.api import create_app as chat_app
from ragstream_chat.main import GRPC_ROLES as CHAT_GRPC
from ragstream_core.proto.ragstream.v1 import (
    chat_pb2,
    chat_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    progress_pb2,
    progress_pb2_grpc,
)
from ragstream_core.settings import CoreSettings
from ragstream_devstack.e2e import Client
from ragstream_devstack.e2e import operator_key as create_key
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id
from ragstream_gateway.main import GRPC_ROLES as GATEWAY_GRPC
from ragstream_progress.api import create_app as progress_app
from ragstream_progress.main import GRPC_ROLES as PROGRESS_GRPC

from .conftest import E2E_ENV, OUTPUT, print_log_tails

Kind = Literal["absent", "nothing", "own", "stream"]
# absent: 404, exactly as for an id that exists nowhere
# nothing: the same status and body as for an id that exists nowhere (a list, an empty aggregate)
# own: B acts in its own namespace under A's id (creates its own collection, say): 2xx, never 409
# stream: a feed: whatever arrives in a few seconds holds nothing of A

GATEWAY, PROGRESS, CHAT = "ingest-gateway", "progress", "chat"


@dataclass(frozen=True)
class Probe:
    kind: Kind
    json: Any = None
    files: bool = False
    params: dict[str, str] = field(default_factory=dict)


MARKDOWN = b"# Note\n\nA short note about ordinary things.\n"
EXPECTED: dict[tuple[str, str, str], Probe] = {
    # ---- gateway: documents
    (GATEWAY, "POST", "/v1/collections/{collection_id}/documents"): Probe("own", files=True),
    (GATEWAY, "GET", "/v1/collections/{collection_id}/documents"): Probe("nothing"),
    (GATEWAY, "GET", "/v1/documents/{document_id}"): Probe("absent"),
    (GATEWAY, "GET", "/v1/documents/{document_id}/versions"): Probe("absent"),
    (GATEWAY, "GET", "/v1/documents/{document_id}/versions/{a}/compare/{b}"): Probe("absent"),
    (GATEWAY, "PATCH", "/v1/documents/{document_id}"): Probe("absent", json={"tags": ["x"]}),
    (GATEWAY, "DELETE", "/v1/documents/{document_id}"): Probe("absent"),
    (GATEWAY, "POST", "/v1/documents/{document_id}/reembed"): Probe("absent"),
    (GATEWAY, "POST", "/v1/documents/reembed"): Probe("nothing", json={"document_ids": ["{document_id}"]}),
    (GATEWAY, "GET", "/v1/audit"): Probe("nothing", params={"document_id": "{document_id}"}),
    # ---- gateway: collections
    (GATEWAY, "POST", "/v1/collections"): Probe("own", json={"collection_id": "{collection_id}"}),
    (GATEWAY, "POST", "/v1/collections/bulk"): Probe(
        "own", json={"collections": [{"collection_id": "{spare_collection_id}"}]}
    ),
    (GATEWAY, "GET", "/v1/collections"): Probe("nothing"),
    (GATEWAY, "GET", "/v1/collections/{collection_id}"): Probe("absent"),
    (GATEWAY, "PATCH", "/v1/collections/{collection_id}"): Probe("absent", json={"description": "mine now"}),
    (GATEWAY, "POST", "/v1/collections/{collection_id}/reembed"): Probe("absent", json={}),
    (GATEWAY, "DELETE", "/v1/collections/{collection_id}"): Probe("absent"),
    (GATEWAY, "POST", "/v1/collections/{collection_id}/documents:batch"): Probe("own", files=True),
    # ---- gateway: direct uploads (the PUT is public: its one-time token is the credential)
    (GATEWAY, "POST", "/v1/collections/{collection_id}/uploads"): Probe("own", json={"file_name": "mine.md"}),
    (GATEWAY, "PUT", "/v1/uploads/{upload_id}"): Probe("absent", params={"token": "guessed"}),
    (GATEWAY, "POST", "/v1/uploads/{upload_id}/finalize"): Probe("absent"),
    # ---- gateway: jobs, dead letters, queue
    (GATEWAY, "POST", "/v1/jobs/{job_id}:pause"): Probe("absent"),
    (GATEWAY, "POST", "/v1/jobs/{job_id}:resume"): Probe("absent"),
    (GATEWAY, "POST", "/v1/jobs/{job_id}:cancel"): Probe("absent"),
    (GATEWAY, "POST", "/v1/jobs/{failed_job_id}:retry"): Probe("absent"),
    (GATEWAY, "PATCH", "/v1/jobs/{job_id}"): Probe("absent", json={"priority": "high"}),
    (GATEWAY, "GET", "/v1/jobs/{job_id}/control"): Probe("absent"),
    (GATEWAY, "POST", "/v1/collections/{collection_id}/jobs:{action}"): Probe("nothing"),
    (GATEWAY, "POST", "/v1/batches/{batch_id}/jobs:{action}"): Probe("nothing"),
    (GATEWAY, "GET", "/v1/dead-letters"): Probe("nothing"),
    (GATEWAY, "GET", "/v1/dead-letters/{sequence}"): Probe("absent"),
    (GATEWAY, "POST", "/v1/dead-letters/{sequence}:replay"): Probe("absent"),
    (GATEWAY, "GET", "/v1/queue"): Probe("nothing", params={"collection_id": "{collection_id}"}),
    # ---- gateway: web sources, consistency
    (GATEWAY, "POST", "/v1/collections/{collection_id}/sources/web"): Probe("own", json={"url": "http://127.0.0.1:9/"}),
    (GATEWAY, "GET", "/v1/crawls/{crawl_id}"): Probe("absent"),
    (GATEWAY, "GET", "/v1/admin/consistency"): Probe("absent", params={"collection_id": "{collection_id}"}),
    (GATEWAY, "POST", "/v1/admin/consistency/repair"): Probe("absent", json={"collection_id": "{collection_id}"}),
    # ---- gateway: identity
    (GATEWAY, "GET", "/v1/me"): Probe("nothing"),
    (GATEWAY, "POST", "/v1/sessions"): Probe("own"),
    (GATEWAY, "DELETE", "/v1/sessions/current"): Probe("nothing"),  # B's key is no session: 422 either way
    (GATEWAY, "GET", "/v1/tenant/origins"): Probe("nothing"),
    (GATEWAY, "PUT", "/v1/tenant/origins"): Probe("own", json={"origins": ["https://b-site.example"]}),
    (GATEWAY, "POST", "/v1/keys"): Probe("absent", json={"role": "viewer", "account_id": "{account_id}"}),
    (GATEWAY, "GET", "/v1/keys"): Probe("nothing"),
    (GATEWAY, "GET", "/v1/keys/{key_id}"): Probe("absent"),
    (GATEWAY, "DELETE", "/v1/keys/{key_id}"): Probe("absent"),
    (GATEWAY, "POST", "/v1/accounts"): Probe("own", json={"account_id": "{account_id}", "role": "viewer"}),
    (GATEWAY, "GET", "/v1/accounts"): Probe("nothing"),
    (GATEWAY, "PATCH", "/v1/accounts/{account_id}"): Probe("absent", json={"role": "viewer"}),
    (GATEWAY, "GET", "/v1/tenant/limits"): Probe("nothing"),
    (GATEWAY, "PUT", "/v1/tenant/limits"): Probe("own", json={}),
    # ---- progress
    (PROGRESS, "GET", "/v1/jobs/events"): Probe("stream", params={"job_id": "{job_id}"}),
    (PROGRESS, "WEBSOCKET", "/v1/jobs/stream"): Probe("stream", params={"job_id": "{job_id}"}),
    (PROGRESS, "GET", "/v1/jobs/{job_id}"): Probe("absent"),
    (PROGRESS, "GET", "/v1/jobs"): Probe("nothing", params={"document_id": "{document_id}"}),
    (PROGRESS, "GET", "/v1/collections/{collection_id}/progress"): Probe("nothing"),
    (PROGRESS, "GET", "/v1/batches/{batch_id}/progress"): Probe("absent"),
    # ---- chat
    (CHAT, "POST", "/v1/collections/{collection_id}/chat"): Probe("own", json={"question": "{question}"}),
    (CHAT, "WEBSOCKET", "/v1/collections/{collection_id}/chat/ws"): Probe("stream", json={"question": "{question}"}),
    (CHAT, "POST", "/v1/collections/{collection_id}/conversations"): Probe("own", json={"title": "mine"}),
    (CHAT, "GET", "/v1/conversations"): Probe("nothing"),
    (CHAT, "GET", "/v1/collections/{collection_id}/conversations"): Probe("nothing"),
    (CHAT, "GET", "/v1/conversations/{conversation_id}"): Probe("absent"),
    (CHAT, "DELETE", "/v1/conversations/{conversation_id}"): Probe("absent"),
    (CHAT, "GET", "/v1/collections/{collection_id}/chat/settings"): Probe("nothing"),
    (CHAT, "PUT", "/v1/collections/{collection_id}/chat/settings"): Probe("own", json={"min_score": 0.5}),
    (CHAT, "POST", "/v1/chat/completions"): Probe(
        "own", json={"model": "{collection_id}", "messages": [{"role": "user", "content": "{question}"}]}
    ),
    (CHAT, "GET", "/v1/models"): Probe("nothing"),
}


# ---- the routes the apps serve --------------------------------------------------------------------


class _Settings:
    max_upload_bytes = 1
    core = CoreSettings()
    chat_url = "http://chat.test"
    default_tenant = "default"


class _Documents:
    pool = None


class _GatewayPorts:
    settings = _Settings()
    documents = _Documents()


def _leaves(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's lazily included router
        if included is not None:
            yield from _leaves(included.routes)
        else:
            yield route


def served_routes() -> set[tuple[str, str, str]]:
    """(service, method, path) of every /v1 route and WebSocket of the three apps."""
    from ragstream_gateway.app import create_app as gateway_app

    apps: dict[str, FastAPI] = {
        GATEWAY: gateway_app(_GatewayPorts(), progress_url="http://progress.test"),  # type: ignore[arg-type]
        PROGRESS: progress_app(None, default_tenant="default"),  # type: ignore[arg-type]
        CHAT: chat_app(None, default_tenant="default"),  # type: ignore[arg-type]
    }
    served: set[tuple[str, str, str]] = set()
    for service, app in apps.items():
        for route in _leaves(app.routes):
            if isinstance(route, APIRoute) and route.path.startswith("/v1/"):
                served |= {(service, method, route.path) for method in route.methods}
            elif isinstance(route, APIWebSocketRoute):
                served.add((service, "WEBSOCKET", route.path))
    return served


def test_every_route_of_every_app_has_an_isolation_expectation() -> None:
    served = served_routes()
    # the retry probe names the failed job; every other id-addressed route the indexed one
    expected = {(s, m, p.replace("{failed_job_id}", "{job_id}")) for s, m, p in EXPECTED}

    assert served - expected == set(), "routes without an isolation expectation: add them to EXPECTED"
    assert expected - served == set(), "EXPECTED names routes no app serves"


def test_every_grpc_method_has_a_role() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (ingest_pb2, progress_pb2, chat_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }

    assert methods == set(GATEWAY_GRPC) | set(PROGRESS_GRPC) | set(CHAT_GRPC)


# ---- a stack in keys mode, and tenant A's things ----------------------------------------------------


@dataclass
class TenantA:
    tenant_id: str
    ids: dict[str, str]
    #: what must never reach B: A's ids, names and words
    markers: list[str]
    shared_collection: str


@dataclass
class World:
    stack: Stack
    a_key: str
    b_key: str
    a: TenantA


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    log_dir = OUTPUT / "logs-isolation"
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    # keys mode; a revocation reaches every service within a second
    env = {**E2E_ENV, "RAGSTREAM_AUTH_MODE": "keys", "RAGSTREAM_AUTH_CACHE_S": "1"}
    stack = Stack(data_dir=tmp_path_factory.mktemp("keyed"), log_dir=log_dir, env=env).start()
    yield stack
    stack.stop()
    if request.session.testsfailed:
        print_log_tails(log_dir)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _poll(check: Any, *, within_s: float = 120.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within_s
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"not reached within {within_s}s; last: {last!r}")


@pytest.fixture(scope="module")
async def world(keyed_stack: Stack) -> World:
    stack = keyed_stack
    tenant_a, tenant_b = new_id("tenant-a"), new_id("tenant-b")
    a_admin = new_id("alice")
    a = create_key(stack, tenant_a, "admin", a_admin)
    b = create_key(stack, tenant_b, "admin", new_id("bob"))
    word = "quillfeather" + new_id("w").split("-")[1][:6]
    collection, shared, spare, batch = new_id("handbook"), new_id("shared"), new_id("spare"), new_id("batch")
    text = (
        f"# The {word} protocol\n\n"
        f"The {word} protocol governs how zebras migrate across the northern plains. Every herd follows the"
        f" {word} protocol in early spring, crossing the river at dawn.\n"
    ).encode()
    gateway, progress, chat = stack.url(GATEWAY), stack.url(PROGRESS), stack.url(CHAT)
    async with httpx.AsyncClient(timeout=60, headers=_auth(a["key"])) as http:
        client = Client(stack, http)
        first = await http.post(
            f"{gateway}/v1/collections/{collection}/documents",
            files={"file": (f"{word}-notes.md", text)},
            headers={"X-Batch-Id": batch},
        )
        assert first.status_code == 202, first.text
        second = await client.upload(shared, f"{word}-shared.md", text)
        broken = await client.upload(collection, f"{word}-broken.pdf", b"%PDF-1.4\n" + b"\x00garbage" * 50)
        assert second.status_code == 202, second.text
        assert broken.status_code == 202, broken.text
        jobs = await client.wait_done([first.json()["job_id"], second.json()["job_id"], broken.json()["job_id"]])
        assert [j["status"] for j in jobs] == ["indexed", "indexed", "failed"], jobs

        async def dead_letter() -> int | None:
            listed = (await http.get(f"{gateway}/v1/dead-letters")).json()
            found = [d["sequence"] for d in listed["dead_letters"] if d.get("job_id") == broken.json()["job_id"]]
            return found[0] if found else None

        sequence = await _poll(dead_letter)
        upload = await http.post(f"{gateway}/v1/collections/{collection}/uploads", json={"file_name": "later.md"})
        spared = await http.post(f"{gateway}/v1/collections", json={"collection_id": spare})
        crawl = await http.post(
            f"{gateway}/v1/collections/{collection}/sources/web", json={"url": "http://127.0.0.1:9/"}
        )
        asked = await http.post(
            f"{chat}/v1/collections/{collection}/chat", json={"question": f"What is the {word} protocol?"}
        )
        settings = await http.put(f"{chat}/v1/collections/{collection}/chat/settings", json={"min_score": 0.137})
        key = await http.post(f"{gateway}/v1/keys", json={"role": "viewer", "name": f"{word}-key"})
        for response in (upload, spared, crawl, asked, settings, key):
            assert response.status_code < 300, response.text
        assert asked.json()["citations"], "A's own question must be answered from A's document"
        assert (await http.get(f"{progress}/v1/jobs/{first.json()['job_id']}")).status_code == 200
    ids = {
        "collection_id": collection,
        "spare_collection_id": spare,
        "document_id": first.json()["document_id"],
        "a": "1",
        "b": "1",
        "job_id": first.json()["job_id"],
        "failed_job_id": broken.json()["job_id"],
        "batch_id": batch,
        "upload_id": upload.json()["upload_id"],
        "sequence": str(sequence),
        "crawl_id": crawl.json()["crawl_id"],
        "conversation_id": asked.json()["conversation_id"],
        "key_id": key.json()["key_id"],
        "account_id": a_admin,
        "action": "pause",
        "question": f"What is the {word} protocol?",
    }
    markers = [word, ids["document_id"], ids["job_id"], ids["failed_job_id"], ids["conversation_id"]]
    markers += [ids["key_id"], a["key_id"], a_admin, tenant_a, ids["upload_id"], ids["crawl_id"], "0.137", spare]
    return World(stack, a["key"], b["key"], TenantA(tenant_a, ids, markers, shared))


# ---- B against A ------------------------------------------------------------------------------------


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _nowhere(ids: dict[str, str]) -> dict[str, str]:
    """The same kinds of ids, existing in no tenant."""
    fresh = {k: new_id("none") for k in ids}
    fresh.update({"a": "1", "b": "1", "action": "pause", "sequence": "987654321", "question": ids["question"]})
    fresh["key_id"] = "rs_live_000000000000"
    return fresh


def _normalised(text: str, ids: dict[str, str]) -> str:
    """``text`` with the ids named, numbers masked (a dead letter's sequence is a small number)."""
    for name, value in ids.items():
        if len(value) >= 6 and name not in ("question", "sequence"):
            text = text.replace(value, f"<{name}>")
    text = re.sub(r'"trace_id":\s*"[^"]*"', '"trace_id": ""', text)
    return re.sub(r"\b\d+\b", "N", text)


async def _call(
    http: httpx.AsyncClient, base: str, method: str, path: str, probe: Probe, ids: dict[str, str]
) -> httpx.Response:
    files = {"file": ("mine.md", MARKDOWN)} if probe.files else None
    if probe.files and path.endswith(":batch"):
        files = {"files": ("mine.md", MARKDOWN)}
    return await http.request(
        method,
        base + _fill(path, ids),
        params=_fill(probe.params, ids),
        json=_fill(probe.json, ids) if probe.json is not None else None,
        files=files,
    )


async def _read_stream(world: World, service: str, path: str, probe: Probe, ids: dict[str, str]) -> str:
    """What a feed sends B within three seconds."""
    base = world.stack.url(service)
    received: list[str] = []
    if path.endswith("/stream") or path.endswith("/ws"):
        url = base.replace("http://", "ws://") + _fill(path, ids)
        query = {**_fill(probe.params, ids), "access_token": world.b_key}
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        async with websockets.connect(url) as ws:
            if probe.json is not None:
                await ws.send(json.dumps(_fill(probe.json, ids)))
            try:
                async with asyncio.timeout(3):
                    while True:
                        received.append(str(await ws.recv()))
            except TimeoutError:
                pass
        return "\n".join(received)
    async with (
        httpx.AsyncClient(timeout=10, headers=_auth(world.b_key)) as http,
        http.stream("GET", base + _fill(path, ids), params=_fill(probe.params, ids)) as response,
    ):
        assert response.status_code == 200, f"{path}: {response.status_code}"
        try:
            async with asyncio.timeout(3):
                async for chunk in response.aiter_text():
                    received.append(chunk)
        except TimeoutError:
            pass
    return "".join(received)


async def test_tenant_b_learns_nothing_of_tenant_a_from_any_route_or_feed(world: World) -> None:
    ids, nowhere = world.a.ids, _nowhere(world.a.ids)
    markers = [m for m in world.a.markers if m != world.a.shared_collection]
    failures: list[str] = []
    # what B makes (its own collection under A's id, its own conversation) comes after the reads;
    # B's own collection is created before anything else puts something in it
    phase = {"absent": 0, "nothing": 0, "stream": 1, "own": 2}
    order = sorted(EXPECTED.items(), key=lambda item: (phase[item[1].kind], item[0][2] != "/v1/collections"))
    async with httpx.AsyncClient(timeout=60, headers=_auth(world.b_key)) as http:
        for (service, method, path), probe in order:
            where = f"{service} {method} {path}"
            if probe.kind == "stream":
                seen = await _read_stream(world, service, path, probe, ids)
                question = json.dumps(_fill(probe.json, ids))  # a chat feed may echo B's own question
                leaked = [m for m in markers if m in seen and m not in question]
                if leaked:
                    failures.append(f"{where}: the feed sent A's {leaked}")
                continue
            response = await _call(http, world.stack.url(service), method, path, probe, ids)
            asked = _fill(path, ids) + json.dumps(_fill(probe.json, ids)) + json.dumps(_fill(probe.params, ids))
            leaked = [m for m in markers if m in response.text and m not in asked]
            if leaked:
                failures.append(f"{where}: {response.status_code} carries A's {leaked}")
            if probe.kind == "absent" and response.status_code != 404:
                failures.append(f"{where}: {response.status_code} instead of 404: {response.text[:200]}")
            if probe.kind == "own" and not (200 <= response.status_code < 300):
                failures.append(f"{where}: B's own action got {response.status_code}: {response.text[:200]}")
            if probe.kind in ("absent", "nothing"):
                other = await _call(http, world.stack.url(service), method, path, probe, nowhere)
                if (response.status_code, _normalised(response.text, ids)) != (
                    other.status_code,
                    _normalised(other.text, nowhere),
                ):
                    failures.append(
                        f"{where}: A's ids answer {response.status_code} {_normalised(response.text, ids)[:160]!r},"
                        f" ids of nobody {other.status_code} {_normalised(other.text, nowhere)[:160]!r}"
                    )

    assert failures == [], "\n".join(failures)


async def test_a_chat_in_b_never_cites_a_even_when_a_holds_the_best_match(world: World) -> None:
    shared, question = world.a.shared_collection, world.a.ids["question"]
    async with httpx.AsyncClient(timeout=60, headers=_auth(world.b_key)) as http:
        client = Client(world.stack, http)
        mine = await client.upload(shared, "zebras.md", b"# Zebras\n\nZebras live on the plains and cross rivers.\n")
        assert mine.status_code == 202, mine.text
        await client.wait_done([mine.json()["job_id"]])

        answer = await client.chat(shared, question)

    cited = {c["document_id"] for c in answer["citations"]}
    assert cited <= {mine.json()["document_id"]}, answer["citations"]
    assert world.a.markers[0] not in answer["answer"] + json.dumps(answer["citations"])


async def test_grpc_gives_b_nothing_of_a_and_refuses_calls_without_a_key(world: World) -> None:
    ids, stack = world.a.ids, world.stack
    b = (("authorization", f"Bearer {world.b_key}"),)

    def channel(service: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"127.0.0.1:{stack.grpc_ports[service]}")

    async with channel(GATEWAY) as ingest, channel(PROGRESS) as progress, channel(CHAT) as chat:
        documents = ingest_pb2_grpc.IngestServiceStub(ingest)
        jobs = progress_pb2_grpc.ProgressServiceStub(progress)
        asking = chat_pb2_grpc.ChatServiceStub(chat)
        with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
            await documents.GetDocument(ingest_pb2.GetDocumentRequest(document_id=ids["document_id"]))
        with pytest.raises(grpc.aio.AioRpcError) as document:
            await documents.GetDocument(ingest_pb2.GetDocumentRequest(document_id=ids["document_id"]), metadata=b)
        listed = await documents.ListDocuments(
            ingest_pb2.ListDocumentsRequest(collection_id=ids["collection_id"]), metadata=b
        )
        with pytest.raises(grpc.aio.AioRpcError) as job:
            await jobs.GetJob(progress_pb2.GetJobRequest(job_id=ids["job_id"]), metadata=b)
        listed_jobs = await jobs.ListJobs(progress_pb2.ListJobsRequest(), metadata=b)
        # a tenant named in the request is no way around the key
        answer = await asking.Ask(
            chat_pb2.AskRequest(
                tenant_id=world.a.tenant_id, collection_id=ids["collection_id"], question=ids["question"]
            ),
            metadata=b,
        )

    assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert document.value.code() == grpc.StatusCode.NOT_FOUND
    assert ids["document_id"] not in str(listed)
    assert world.a.markers[0] not in str(listed)
    assert job.value.code() == grpc.StatusCode.NOT_FOUND
    assert ids["job_id"] not in str(listed_jobs)
    assert ids["document_id"] not in str(answer.citations)
    assert world.a.markers[0] not in answer.answer


async def test_a_revoked_key_is_refused_by_every_service(world: World) -> None:
    created = create_key(world.stack, world.a.tenant_id, "viewer", new_id("carol"))
    urls = [
        f"{world.stack.url(GATEWAY)}/v1/collections",
        f"{world.stack.url(PROGRESS)}/v1/jobs",
        f"{world.stack.url(CHAT)}/v1/conversations",
    ]
    async with httpx.AsyncClient(timeout=30) as http:
        before = [(await http.get(u, headers=_auth(created["key"]))).status_code for u in urls]
        revoked = await http.delete(f"{urls[0].rsplit('/', 1)[0]}/keys/{created['key_id']}", headers=_auth(world.a_key))

        async def all_refused() -> list[int] | None:
            codes = [(await http.get(u, headers=_auth(created["key"]))).status_code for u in urls]
            return codes if codes == [401, 401, 401] else None

        after = await _poll(all_refused, within_s=10)

    assert before == [200, 200, 200]
    assert revoked.status_code == 200
    assert after == [401, 401, 401]


async def test_refusals_and_chat_changes_are_in_the_tenants_audit_log_without_secrets(world: World) -> None:
    viewer = create_key(world.stack, world.a.tenant_id, "viewer", new_id("dave"))
    gateway, chat = world.stack.url(GATEWAY), world.stack.url(CHAT)
    async with httpx.AsyncClient(timeout=30) as http:
        refused = await http.delete(
            f"{gateway}/v1/collections/{world.a.ids['collection_id']}", headers=_auth(viewer["key"])
        )
        audit = await http.get(f"{gateway}/v1/audit", params={"limit": "200"}, headers=_auth(world.a_key))
        settings = await http.get(
            f"{gateway}/v1/audit", params={"action": "chat_settings.update"}, headers=_auth(world.a_key)
        )
        unauthenticated = await http.get(f"{chat}/v1/conversations", headers=_auth(viewer["key"] + "x"))

    entries = audit.json()["entries"]
    refusals = [e for e in entries if e["action"] == "auth.refused" and e["actor"] == viewer["account_id"]]
    assert refused.status_code == 403
    assert unauthenticated.status_code == 401
    assert [r["outcome"] for r in refusals] == ["forbidden"]
    assert settings.json()["entries"][0]["actor"] == world.a.ids["account_id"]
    assert viewer["key"] not in audit.text
    assert world.a_key not in audit.text


async def test_the_widgets_public_chat_key_asks_its_collection_only_from_its_origin(world: World) -> None:
    gateway, chat = world.stack.url(GATEWAY), world.stack.url(CHAT)
    collection, question = world.a.ids["collection_id"], world.a.ids["question"]
    async with httpx.AsyncClient(timeout=60) as http:
        made = await http.post(
            f"{gateway}/v1/keys",
            json={"role": "viewer", "collection_ids": [collection], "origins": ["https://shop.example.com"]},
            headers=_auth(world.a_key),
        )
        public = _auth(made.json()["key"])
        url = f"{chat}/v1/collections/{collection}/chat"
        answered = await http.post(
            url, json={"question": question}, headers={**public, "Origin": "https://shop.example.com"}
        )
        elsewhere = await http.post(
            url, json={"question": question}, headers={**public, "Origin": "https://evil.example"}
        )
        other = await http.post(
            f"{chat}/v1/collections/{world.a.shared_collection}/chat",
            json={"question": question},
            headers={**public, "Origin": "https://shop.example.com"},
        )
        listing = await http.get(f"{chat}/v1/conversations", headers={**public, "Origin": "https://shop.example.com"})

    assert made.status_code == 201, made.text
    assert answered.status_code == 200, answered.text
    assert answered.json()["citations"]
    assert (elsewhere.status_code, other.status_code, listing.status_code) == (403, 403, 403)
    assert "https://evil.example" in elsewhere.json()["detail"]


async def test_no_key_secret_reaches_a_log_or_a_trace(world: World) -> None:
    chat = world.stack.url(CHAT)
    forged = f"rs_live_{'f' * 12}_{'S' * 43}"
    url = chat.replace("http://", "ws://") + f"/v1/collections/{world.a.ids['collection_id']}/chat/ws"
    async with httpx.AsyncClient(timeout=30) as http:
        await http.get(f"{chat}/v1/conversations", headers=_auth(forged))
        await http.get(f"{chat}/v1/conversations", headers=_auth(world.a_key))
    async with websockets.connect(f"{url}?access_token={world.b_key}") as ws:
        await ws.send(json.dumps({"question": "anything?"}))
        await ws.recv()
    # the part after "rs_live_<12 hex>_": the secret itself may contain "_" (URL-safe base64)
    secrets_used = {key.split("_", 3)[3] for key in (forged, world.a_key, world.b_key)}

    def leaks() -> list[str]:
        found = []
        assert world.stack.log_dir is not None
        for path in [*world.stack.log_dir.glob("*.log"), world.stack.traces_file]:
            text = path.read_text(errors="replace") if path.exists() else ""
            found += [f"{path.name}: …{secret[-6:]}" for secret in secrets_used if secret in text]
        return found

    async def websocket_traced() -> bool:
        # the span of that WebSocket (whose URL carried a key) is written: now look
        return world.stack.traces_file.exists() and "/chat/ws" in world.stack.traces_file.read_text(errors="replace")

    await _poll(websocket_traced, within_s=30)

    assert leaks() == []
