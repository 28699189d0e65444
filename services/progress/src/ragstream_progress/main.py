"""Composition root of the progress service: ``python -m ragstream_progress [migrate | rebuild]``."""

from __future__ import annotations

import asyncio
import functools
import sys
from dataclasses import dataclass

import structlog
from google.protobuf.message import Message

from ragstream_core.auth import AuthInterceptor, Role, authenticator_from
from ragstream_core.bus import Bus
from ragstream_core.db import apply_migrations, check_pool, open_pool
from ragstream_core.events import EVENTS_SUBJECTS
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import progress_pb2_grpc
from ragstream_core.runtime import allow_origins, ops_routes, run_service, serve_http
from ragstream_core.telemetry import configure_telemetry
from ragstream_progress.api import create_app
from ragstream_progress.feed import ChangeSignal
from ragstream_progress.grpc_api import ProgressServicer
from ragstream_progress.handlers import project_event
from ragstream_progress.projection import JobStore
from ragstream_progress.rebuild import rebuild_projection
from ragstream_progress.settings import ProgressSettings

log = structlog.get_logger(__name__)

#: the role of each gRPC method (a method not named here is refused)
GRPC_ROLES: dict[str, Role] = {
    "/ragstream.v1.ProgressService/GetJob": "viewer",
    "/ragstream.v1.ProgressService/ListJobs": "viewer",
    "/ragstream.v1.ProgressService/WatchJob": "viewer",
    "/ragstream.v1.ProgressService/WatchJobs": "viewer",
}


@dataclass
class Ports:
    jobs: JobStore


async def serve(stop: asyncio.Event, settings: ProgressSettings) -> None:
    core = settings.core
    configure_telemetry("progress", core)
    pool = await open_pool(core.postgres_url)
    jobs = JobStore(pool)
    bus = await Bus.from_settings(core, service="progress")
    bus.consume(
        Message,
        durable="progress",
        stage="progress",
        handler=functools.partial(project_event, ports=Ports(jobs)),
        batch=settings.pull_batch,
        subject=EVENTS_SUBJECTS,
        fail_jobs=False,
    )
    signal = ChangeSignal(core.postgres_url)
    await signal.start()
    authenticator = authenticator_from(
        mode=core.auth_mode,
        cache_s=core.auth_cache_s,
        default_tenant=settings.default_tenant,
        pool=pool,
        listen_hosts=(settings.http_host, settings.grpc_host),
    )
    app = create_app(jobs, default_tenant=settings.default_tenant, signal=signal, authenticator=authenticator)

    allow_origins(app, core.cors_origin_list)
    ops_routes(app, {"postgres": functools.partial(check_pool, pool), "nats": bus.check})
    servicer = ProgressServicer(
        jobs, default_tenant=settings.default_tenant, watch_interval_s=settings.watch_interval_s, signal=signal
    )
    server = await start_grpc_server(
        [lambda s: progress_pb2_grpc.add_ProgressServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.ProgressService"],
        host=settings.grpc_host,
        port=settings.grpc_port,
        interceptors=[AuthInterceptor(authenticator, GRPC_ROLES)],
    )
    log.info("progress.started", http_port=settings.http_port, grpc_port=settings.grpc_port)
    try:
        await serve_http(app, host=settings.http_host, port=settings.http_port, stop=stop)
    finally:
        await server.stop(grace=5)
        await signal.stop()
        await bus.stop()
        await pool.close()


async def rebuild(settings: ProgressSettings) -> None:
    """Replay every stored event into an emptied projection (see ``rebuild``)."""
    core = settings.core
    configure_telemetry("progress", core)
    await apply_migrations(core.postgres_url, service="progress", package="ragstream_progress")
    pool = await open_pool(core.postgres_url)
    bus = await Bus.from_settings(core, service="progress-rebuild")
    try:
        report = await rebuild_projection(Ports(JobStore(pool)), bus.js)
        log.info("progress.rebuilt", replayed=report.replayed, skipped=report.skipped, last=report.last_sequence)
    finally:
        await bus.stop()
        await pool.close()


def main() -> None:
    settings = ProgressSettings()
    if sys.argv[1:] == ["migrate"]:
        asyncio.run(apply_migrations(settings.core.postgres_url, service="progress", package="ragstream_progress"))
        return
    if sys.argv[1:] == ["rebuild"]:
        asyncio.run(rebuild(settings))
        return
    run_service(lambda stop: serve(stop, settings))
