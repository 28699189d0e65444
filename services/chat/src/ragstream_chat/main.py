"""Composition root of the chat service: ``python -m ragstream_chat``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from nats.aio.msg import Msg

from ragstream_chat.answers import Answerer, ExtractiveAnswerer, OpenAICompatibleAnswerer
from ragstream_chat.api import ChatServicer, create_app
from ragstream_chat.handlers import on_index_updated
from ragstream_chat.retrieval import Retriever
from ragstream_chat.settings import ChatSettings
from ragstream_core.bus import Bus
from ragstream_core.events import SUBJECT_OF
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import chat_pb2_grpc
from ragstream_core.proto.ragstream.v1.events_pb2 import IndexUpdated
from ragstream_core.runtime import ops_routes, run_service, serve_http
from ragstream_core.telemetry import configure_telemetry

log = structlog.get_logger(__name__)


@dataclass
class Ports:
    retriever: Retriever
    answerer: Answerer
    min_score: float
    top_k: int


def build_answerer(settings: ChatSettings) -> Answerer:
    if settings.provider == "openai":
        return OpenAICompatibleAnswerer(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            model=settings.openai_model,
            timeout_s=settings.openai_timeout_s,
        )
    return ExtractiveAnswerer()


async def serve(stop: asyncio.Event, settings: ChatSettings) -> None:
    core = settings.core
    configure_telemetry("chat", core)
    bus = await Bus.from_settings(core, service="chat")
    ports = Ports(
        Retriever(bus, timeout_s=settings.search_timeout_s, cache_entries=settings.cache_entries),
        build_answerer(settings),
        settings.min_score,
        settings.top_k,
    )

    async def on_message(msg: Msg) -> None:
        await on_index_updated(IndexUpdated.FromString(msg.data), ports)

    # Every index.updated, as it is stored: a plain subscription suffices, since the cache it
    # invalidates lives and dies with this process.
    await bus.nc.subscribe(SUBJECT_OF[IndexUpdated], cb=on_message)
    app = create_app(ports, default_tenant=settings.default_tenant)

    ops_routes(app, {"nats": bus.check})
    servicer = ChatServicer(ports, default_tenant=settings.default_tenant)
    server = await start_grpc_server(
        [lambda s: chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.ChatService"],
        host=settings.grpc_host,
        port=settings.grpc_port,
    )
    log.info("chat.started", http_port=settings.http_port, grpc_port=settings.grpc_port, provider=settings.provider)
    try:
        await serve_http(app, host=settings.http_host, port=settings.http_port, stop=stop)
    finally:
        await server.stop(grace=5)
        await bus.stop()


def main() -> None:
    run_service(lambda stop: serve(stop, ChatSettings()))
