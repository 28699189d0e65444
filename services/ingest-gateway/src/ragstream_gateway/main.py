"""Composition root of the ingest gateway: ``python -m ragstream_gateway [migrate]``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from dataclasses import dataclass

import structlog
from google.protobuf.message import Message

from ragstream_core.bus import Bus
from ragstream_core.db import apply_migrations, check_pool, open_pool
from ragstream_core.events import EVENTS_SUBJECTS
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import ingest_pb2_grpc
from ragstream_core.runtime import allow_origins, ops_routes, run_service, serve_http
from ragstream_core.storage import ObjectStore, open_object_store
from ragstream_core.telemetry import configure_telemetry
from ragstream_gateway.app import create_app
from ragstream_gateway.consistency import ConsistencyCheck, NatsIndexAdmin
from ragstream_gateway.consistency_repository import ConsistencyRepository
from ragstream_gateway.direct_upload import sweep_uploads_until
from ragstream_gateway.grpc_api import IngestServicer
from ragstream_gateway.handlers import republish_unpublished
from ragstream_gateway.jobs import run_scheduler, track_version
from ragstream_gateway.ports import Wakeup
from ragstream_gateway.repository import DocumentRepository
from ragstream_gateway.settings import GatewaySettings
from ragstream_gateway.upload_repository import UploadRepository
from ragstream_gateway.web_repository import CrawlRepository
from ragstream_gateway.web_sources import WebSources

log = structlog.get_logger(__name__)


@dataclass
class Ports:
    settings: GatewaySettings
    documents: DocumentRepository
    objects: ObjectStore
    events: Bus
    uploads: UploadRepository
    scheduler: Wakeup


async def serve(stop: asyncio.Event, settings: GatewaySettings) -> None:
    configure_telemetry("ingest-gateway", settings.core)
    pool = await open_pool(settings.core.postgres_url)
    bus = await Bus.from_settings(settings.core, service="ingest-gateway")
    ports = Ports(
        settings, DocumentRepository(pool), open_object_store(settings.core), bus, UploadRepository(pool), Wakeup()
    )
    await bus.job_control()
    app = create_app(ports, progress_url=settings.progress_url)
    app.state.consistency = ConsistencyCheck(
        ConsistencyRepository(pool),
        ports.objects,
        NatsIndexAdmin(bus, timeout_s=settings.index_timeout_s),
        min_age_s=settings.consistency_min_age_s,
    )
    allow_origins(app, settings.core.cors_origin_list)

    ops_routes(
        app, {"nats": bus.check, "postgres": functools.partial(check_pool, pool), "objects": ports.objects.check}
    )
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"])

    async def republish_loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.republish_after_s)
            try:
                await republish_unpublished(ports)
            except Exception as exc:  # a dependency is down: the next round tries again
                log.warning("gateway.republish_failed", error=str(exc))

    republisher = asyncio.create_task(republish_loop())
    scheduler = asyncio.create_task(run_scheduler(ports, stop, ports.scheduler.event))
    upload_sweeper = asyncio.create_task(sweep_uploads_until(stop, ports))
    # crawls of web sources run in the background; those left by a previous run are resumed
    web_sources = WebSources(ports, CrawlRepository(pool))
    app.state.web_sources = web_sources
    await web_sources.start()
    # each version's status and counts, from the pipeline's own events
    bus.consume(
        Message,
        durable="gateway-versions",
        stage="gateway",
        handler=functools.partial(track_version, ports=ports),
        batch=32,
        subject=EVENTS_SUBJECTS,
        fail_jobs=False,
    )
    servicer = IngestServicer(ports)
    server = await start_grpc_server(
        [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.IngestService"],
        host=settings.grpc_host,
        port=settings.grpc_port,
    )
    log.info("gateway.started", http_port=settings.http_port, grpc_port=settings.grpc_port)
    try:
        await serve_http(app, host=settings.http_host, port=settings.http_port, stop=stop)
    finally:
        await server.stop(grace=5)
        republisher.cancel()
        scheduler.cancel()
        upload_sweeper.cancel()
        await web_sources.stop()
        await bus.stop()
        await pool.close()


def main() -> None:
    settings = GatewaySettings()
    if sys.argv[1:] == ["migrate"]:
        asyncio.run(apply_migrations(settings.core.postgres_url, service="gateway", package="ragstream_gateway"))
        return
    run_service(lambda stop: serve(stop, settings))
