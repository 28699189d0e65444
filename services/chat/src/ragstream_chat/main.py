"""Composition root of the chat service: ``python -m ragstream_chat [migrate | rotate-secrets]``.

``rotate-secrets`` seals every stored collection API key again with the first key of
``RAGSTREAM_SECRET_KEYS`` and prints the counts as JSON (its last line); it exits with 1 when a key could not be
opened by any configured key (those are listed by tenant and collection: keep the old key).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import sys
from dataclasses import dataclass

import structlog

from ragstream_chat.answers import Answerer, ExtractiveAnswerer, OpenAICompatibleAnswerer
from ragstream_chat.api import create_app
from ragstream_chat.collection_provider import CollectionProviders
from ragstream_chat.collection_settings import CollectionStore, Rotation
from ragstream_chat.conversations import ConversationStore
from ragstream_chat.grpc_api import ChatServicer
from ragstream_chat.handlers import on_index_updated
from ragstream_chat.local_model import LocalAnswerer, LocalModelUnavailable, check_local_model, load_local_answerer
from ragstream_chat.ports import Collections, Conversations, Search
from ragstream_chat.retrieval import Retriever
from ragstream_chat.settings import ChatSettings
from ragstream_core.auth import Action, AuthInterceptor, RateLimits, Role, authenticator_from
from ragstream_core.bus import Bus
from ragstream_core.db import apply_migrations, check_pool, open_pool
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import chat_pb2_grpc
from ragstream_core.proto.ragstream.v1.events_pb2 import IndexTagged, IndexUpdated
from ragstream_core.runtime import allow_origins, ops_routes, run_service, serve_http
from ragstream_core.secrets import SecretBox
from ragstream_core.telemetry import configure_telemetry

log = structlog.get_logger(__name__)

#: the role of each gRPC method (a method not named here is refused)
GRPC_ROLES: dict[str, Role] = {
    "/ragstream.v1.ChatService/Ask": "viewer",
    "/ragstream.v1.ChatService/AskStream": "viewer",
}
#: the gRPC methods that count against the chat rate limits
GRPC_RATES: dict[str, Action] = {
    "/ragstream.v1.ChatService/Ask": "chat",
    "/ragstream.v1.ChatService/AskStream": "chat",
}


@dataclass
class Ports:
    retriever: Search
    answerers: dict[str, Answerer]
    conversations: Conversations
    collections: Collections
    provider: str
    min_score: float
    top_k: int
    history_turns: int
    min_keyword_coverage: float
    providers: CollectionProviders


def build_answerers(settings: ChatSettings) -> dict[str, Answerer]:
    """Every provider that is configured: extractive always, ``openai`` when it has an endpoint,
    ``local`` when it has a model (loaded here: slow, call it off the event loop)."""
    answerers: dict[str, Answerer] = {"extractive": ExtractiveAnswerer()}
    if settings.openai_base_url and settings.openai_model:
        answerers["openai"] = OpenAICompatibleAnswerer(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            model=settings.openai_model,
            timeout_s=settings.openai_timeout_s,
        )
    if settings.local_model:
        answerers["local"] = load_local_answerer(
            settings.local_model,
            context_tokens=settings.local_context_tokens,
            max_tokens=settings.local_max_tokens,
            passages=settings.local_passages,
            threads=settings.local_threads,
            concurrency=settings.local_concurrency,
            max_waiting=settings.local_max_waiting,
        )
    return answerers


async def serve(stop: asyncio.Event, settings: ChatSettings) -> None:
    core = settings.core
    configure_telemetry("chat", core)
    answerers = await asyncio.to_thread(build_answerers, settings)
    pool = await open_pool(core.postgres_url)
    bus = await Bus.from_settings(core, service="chat")
    ports = Ports(
        Retriever(bus, timeout_s=settings.search_timeout_s, cache_entries=settings.cache_entries),
        answerers,
        ConversationStore(pool),
        CollectionStore(pool),
        settings.provider,
        settings.min_score,
        settings.top_k,
        settings.history_turns,
        settings.min_keyword_coverage,
        CollectionProviders(
            SecretBox.from_config(core.secret_keys.get_secret_value()), timeout_s=settings.openai_timeout_s
        ),
    )

    # Every index.updated, as it is stored: a plain subscription suffices, since the cache it
    # invalidates lives and dies with this process (each in a process span of the job's trace).
    await bus.subscribe(IndexUpdated, functools.partial(on_index_updated, ports=ports))
    # a document's tags changed in the index: filtered results did
    await bus.subscribe(IndexTagged, functools.partial(on_index_updated, ports=ports))
    authenticator = authenticator_from(
        mode=core.auth_mode,
        cache_s=core.auth_cache_s,
        default_tenant=settings.default_tenant,
        pool=pool,
        listen_hosts=(settings.http_host, settings.grpc_host),
        rate_limits=RateLimits.from_settings(core),
    )
    app = create_app(ports, default_tenant=settings.default_tenant, authenticator=authenticator)

    allow_origins(app, settings.core.cors_origin_list)
    ops_routes(app, {"postgres": functools.partial(check_pool, pool), "nats": bus.check})
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"])
    servicer = ChatServicer(ports, default_tenant=settings.default_tenant)
    server = await start_grpc_server(
        [lambda s: chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.ChatService"],
        host=settings.grpc_host,
        port=settings.grpc_port,
        interceptors=[AuthInterceptor(authenticator, GRPC_ROLES, rates=GRPC_RATES)],
    )
    log.info(
        "chat.started",
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        provider=settings.provider,
        providers=sorted(answerers),
        secret_key_ids=ports.providers.secrets.key_ids,
    )
    try:
        await serve_http(app, host=settings.http_host, port=settings.http_port, stop=stop)
    finally:
        await server.stop(grace=5)
        await bus.stop()
        await ports.providers.aclose()
        await pool.close()
        for answerer in answerers.values():
            if isinstance(answerer, LocalAnswerer):
                await asyncio.to_thread(answerer.close)


async def rotate_secrets(settings: ChatSettings) -> Rotation:
    """Seal every stored secret again with the first configured key (idempotent)."""
    box = SecretBox.from_config(settings.core.secret_keys.get_secret_value())
    if not box.configured:
        raise SystemExit("rotate-secrets needs RAGSTREAM_SECRET_KEYS: the new key first, then the old ones")
    pool = await open_pool(settings.core.postgres_url)
    try:
        rotation = await CollectionStore(pool).rotate_secrets(box)
    finally:
        await pool.close()
    log.info("chat.secrets_rotated", key_id=box.key_ids[0], rotated=rotation.rotated, current=rotation.current,
             unreadable=len(rotation.unreadable))  # fmt: skip
    return rotation


def main() -> None:
    settings = ChatSettings()
    if sys.argv[1:] == ["migrate"]:
        asyncio.run(apply_migrations(settings.core.postgres_url, service="chat", package="ragstream_chat"))
        return
    if sys.argv[1:] == ["rotate-secrets"]:
        rotation = asyncio.run(rotate_secrets(settings))
        sys.stdout.write(json.dumps(dataclasses.asdict(rotation)) + "\n")  # the last line: the report
        raise SystemExit(1 if rotation.unreadable else 0)
    if settings.local_model:
        try:  # refuse at once, saying what to install, rather than fail after connecting
            check_local_model(settings.local_model)
        except LocalModelUnavailable as exc:
            log.error("chat.local_model_unavailable", error=str(exc))
            raise SystemExit(f"chat cannot start: {exc}") from exc
    run_service(lambda stop: serve(stop, settings))
