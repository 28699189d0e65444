"""The gateway's ports over real servers: PostgreSQL (session), JetStream (per test), a local object store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.bus import Bus
from ragstream_core.events import EVENTS_STREAM, SUBJECT_OF
from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded
from ragstream_core.storage import LocalObjectStore, ObjectStore
from ragstream_devstack.servers import Postgres
from ragstream_devstack.testing import migrated_pool
from ragstream_gateway.app import create_app
from ragstream_gateway.ports import GatewayPorts, Wakeup
from ragstream_gateway.repository import DocumentRepository
from ragstream_gateway.settings import GatewaySettings
from ragstream_gateway.upload_repository import UploadRepository


@dataclass
class Ports:
    """Real adapters, shaped like the composition root's ``Ports``."""

    settings: GatewaySettings
    documents: DocumentRepository
    objects: ObjectStore
    events: Bus
    uploads: UploadRepository
    scheduler: Wakeup = field(default_factory=Wakeup)


@pytest.fixture(scope="session")
async def gateway_pool(postgres: Postgres) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on the session PostgreSQL, with the gateway's tables."""
    async with migrated_pool(postgres.url, service="gateway", package="ragstream_gateway") as pool:
        yield pool


@pytest.fixture
async def bus(bus_factory: Callable[..., Awaitable[Bus]]) -> Bus:
    """A bus on this test's own nats-server: its stream holds only this test's events."""
    return await bus_factory(service="gateway-test")


@pytest.fixture
def make_ports(gateway_pool: AsyncConnectionPool, bus: Bus, tmp_path: Path) -> Callable[..., GatewayPorts]:
    """Ports of a gateway with the given settings (defaults if none)."""

    def make(settings: GatewaySettings | None = None, *, objects: ObjectStore | None = None) -> GatewayPorts:
        return Ports(
            settings=settings or GatewaySettings(),
            documents=DocumentRepository(gateway_pool),
            objects=objects or LocalObjectStore(tmp_path / "objects"),
            events=bus,
            uploads=UploadRepository(gateway_pool),
        )

    return make


@pytest.fixture
def uploaded_events(bus: Bus) -> Callable[..., Awaitable[list[DocUploaded]]]:
    """Read back the DocUploaded events stored in this test's stream (of one job, if given), oldest first."""

    async def read(job_id: str | None = None) -> list[DocUploaded]:
        info = await bus.js.stream_info(EVENTS_STREAM)
        events: list[DocUploaded] = []
        if info.state.messages == 0:
            return events
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await bus.js.get_msg(EVENTS_STREAM, sequence)
            if msg.subject == SUBJECT_OF[DocUploaded]:
                event = DocUploaded.FromString(msg.data or b"")
                if job_id is None or event.meta.job_id == job_id:
                    events.append(event)
        return events

    return read


PROGRESS_URL = "http://progress.test"  # job links point here


@dataclass
class Gateway:
    """One test's gateway: its ports, its bus, a REST client of its app, and what it announced."""

    ports: GatewayPorts
    bus: Bus
    client: httpx.AsyncClient
    uploaded_events: Callable[..., Awaitable[list[DocUploaded]]]

    async def upload(
        self,
        collection_id: str,
        file_name: str,
        data: bytes,
        *,
        force: bool = False,
        tenant: str | None = None,
        actor: str | None = None,
        **params: str,
    ) -> httpx.Response:
        headers = {"X-Tenant-Id": tenant} if tenant else {}
        if actor:
            headers["X-Actor"] = actor
        return await self.client.post(
            f"/v1/collections/{collection_id}/documents",
            files={"file": (file_name, data)},
            params={"force": "true", **params} if force else params,
            headers=headers,
        )


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway_factory(
    make_ports: Callable[..., GatewayPorts],
    bus: Bus,
    uploaded_events: Callable[..., Awaitable[list[DocUploaded]]],
) -> AsyncIterator[GatewayFactory]:
    """Build a gateway app with the given settings over this test's ports."""
    clients: list[httpx.AsyncClient] = []

    async def make(settings: GatewaySettings | None = None, *, objects: ObjectStore | None = None) -> Gateway:
        ports = make_ports(settings, objects=objects)
        app = create_app(ports, progress_url=PROGRESS_URL)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")
        clients.append(client)
        return Gateway(ports, bus, client, uploaded_events)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory()
