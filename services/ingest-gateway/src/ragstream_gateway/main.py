"""Composition root of the ingest gateway: ``python -m ragstream_gateway [migrate]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from google.protobuf.message import Message

from ragstream_core.auth import ROLES, Action, AuthInterceptor, RateLimits, Role, authenticator_from
from ragstream_core.auth.keys import MIN_BOOTSTRAP_KEY_CHARS
from ragstream_core.bus import Bus
from ragstream_core.db import apply_migrations, check_pool, open_pool
from ragstream_core.events import EVENTS_SUBJECTS
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import ingest_pb2_grpc
from ragstream_core.runtime import allow_origins, ops_routes, run_service, serve_http
from ragstream_core.storage import ObjectStore, open_object_store
from ragstream_core.telemetry import configure_telemetry
from ragstream_gateway.app import create_app
from ragstream_gateway.auth_repository import AuthRepository
from ragstream_gateway.consistency import ConsistencyCheck, NatsIndexAdmin
from ragstream_gateway.consistency_repository import ConsistencyRepository
from ragstream_gateway.direct_upload import sweep_uploads_until
from ragstream_gateway.grpc_api import IngestServicer
from ragstream_gateway.handlers import check_identifier, republish_unpublished
from ragstream_gateway.jobs import run_scheduler, track_version
from ragstream_gateway.ports import REGISTRY_DURABLE, Wakeup
from ragstream_gateway.repository import DocumentRepository
from ragstream_gateway.settings import GatewaySettings
from ragstream_gateway.upload_repository import UploadRepository
from ragstream_gateway.web_repository import CrawlRepository
from ragstream_gateway.web_sources import WebSources

log = structlog.get_logger(__name__)

#: the role of each gRPC method (a method not named here is refused)
GRPC_ROLES: dict[str, Role] = {
    "/ragstream.v1.IngestService/GetDocument": "viewer",
    "/ragstream.v1.IngestService/ListDocuments": "viewer",
    "/ragstream.v1.IngestService/Upload": "editor",
}
#: the gRPC methods that count against the upload rate limits
GRPC_RATES: dict[str, Action] = {"/ragstream.v1.IngestService/Upload": "upload"}
#: the gRPC methods that change state: their refusals and failures are audited
GRPC_CHANGES = frozenset({"/ragstream.v1.IngestService/Upload"})


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
    bootstrap_key = settings.core.bootstrap_admin_key.get_secret_value()
    if bootstrap_key and len(bootstrap_key) < MIN_BOOTSTRAP_KEY_CHARS:
        raise SystemExit(
            f"RAGSTREAM_BOOTSTRAP_ADMIN_KEY has {len(bootstrap_key)} characters; it needs at least"
            f" {MIN_BOOTSTRAP_KEY_CHARS} (e.g. openssl rand -base64 32)"
        )
    if bootstrap_key:
        await AuthRepository(pool).install_bootstrap_key(settings.default_tenant, bootstrap_key)
    authenticator = authenticator_from(
        mode=settings.core.auth_mode,
        cache_s=settings.core.auth_cache_s,
        default_tenant=settings.default_tenant,
        pool=pool,
        listen_hosts=(settings.http_host, settings.grpc_host),
        rate_limits=RateLimits.from_settings(settings.core),
    )
    app = create_app(ports, progress_url=settings.progress_url, authenticator=authenticator)
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
        durable=REGISTRY_DURABLE,
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
        interceptors=[AuthInterceptor(authenticator, GRPC_ROLES, rates=GRPC_RATES, changes=GRPC_CHANGES)],
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


async def create_key(settings: GatewaySettings, argv: list[str]) -> dict[str, object]:
    """``create-key --tenant T --role R [--account A] [--name N] [--expires-days D]``: an operator's way
    to a tenant's first key (the tenant and account are made if new); prints the key once, as JSON."""
    parser = argparse.ArgumentParser(prog="python -m ragstream_gateway create-key")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--account", default="admin")
    parser.add_argument("--name", default="")
    parser.add_argument("--expires-days", type=float, default=None)
    args = parser.parse_args(argv)
    tenant, account = check_identifier("tenant", args.tenant), check_identifier("account", args.account)
    expires_at = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
    pool = await open_pool(settings.core.postgres_url)
    try:
        row = await AuthRepository(pool).create_key(
            tenant, account, args.role, name=args.name, expires_at=expires_at, actor="operator", create_account=True
        )
    finally:
        await pool.close()
    return {"tenant_id": tenant, "account_id": account, "role": row["role"], "key_id": row["key_id"], "key": row["key"]}


def main() -> None:
    settings = GatewaySettings()
    if sys.argv[1:] == ["migrate"]:
        asyncio.run(apply_migrations(settings.core.postgres_url, service="gateway", package="ragstream_gateway"))
        return
    if sys.argv[1:2] == ["create-key"]:
        sys.stdout.write(json.dumps(asyncio.run(create_key(settings, sys.argv[2:]))) + "\n")
        return
    run_service(lambda stop: serve(stop, settings))
