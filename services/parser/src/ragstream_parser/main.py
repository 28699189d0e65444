"""Composition root of the parser: ``python -m ragstream_parser``."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

import structlog
from fastapi import FastAPI

from ragstream_core.bus import Bus
from ragstream_core.proto.ragstream.v1.events_pb2 import DocReleased
from ragstream_core.runtime import ops_routes, run_service, serve_http
from ragstream_core.storage import ObjectStore, open_object_store
from ragstream_core.telemetry import configure_telemetry
from ragstream_parser.docling_parser import DoclingParser, ThreadedParser
from ragstream_parser.handlers import parse_document
from ragstream_parser.settings import ParserSettings

log = structlog.get_logger(__name__)


@dataclass
class Ports:
    objects: ObjectStore
    parser: ThreadedParser
    events: Bus


async def serve(stop: asyncio.Event, settings: ParserSettings) -> None:
    core = settings.core
    configure_telemetry("parser", core)
    app = FastAPI(title="ragstream parser")
    loaded = asyncio.Event()

    async def docling_loaded() -> None:
        if not loaded.is_set():
            raise RuntimeError("Docling is loading")

    bus = await Bus.from_settings(core, service="parser")
    objects = open_object_store(core)
    ops_routes(app, {"docling": docling_loaded, "nats": bus.check, "objects": objects.check})
    http = asyncio.create_task(serve_http(app, host=settings.metrics_host, port=settings.metrics_port, stop=stop))
    parser = await asyncio.to_thread(DoclingParser, max_tokens=settings.max_chunk_tokens, max_pages=settings.max_pages)
    ports = Ports(objects, ThreadedParser(parser), bus)
    # released jobs only: the gateway's scheduler decides when an upload is parsed
    bus.consume(
        DocReleased,
        durable="parser-released",
        stage="parsing",
        handler=functools.partial(parse_document, ports=ports),
        batch=settings.pull_batch,
        controlled=True,
    )
    loaded.set()
    log.info("parser.started", metrics_port=settings.metrics_port)
    await stop.wait()
    await bus.stop()
    await http


def main() -> None:
    run_service(lambda stop: serve(stop, ParserSettings()))
