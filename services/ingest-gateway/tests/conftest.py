"""The gateway's ports over real servers: PostgreSQL (session), JetStream (per test), a local object store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.bus import Bus
from ragstream_core.events import EVENTS_STREAM, SUBJECT_OF
from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded
from ragstream_core.storage import LocalObjectStore, ObjectStore
from ragstream_devstack.servers import Postgres
from ragstream_devstack.testing import migrated_pool
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.repository import DocumentRepository
from ragstream_gateway.settings import GatewaySettings


@dataclass
class Ports:
    """Real adapters, shaped like the composition root's ``Ports``."""

    settings: GatewaySettings
    documents: DocumentRepository
    objects: ObjectStore
    events: Bus


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

    def make(settings: GatewaySettings | None = None) -> GatewayPorts:
        return Ports(
            settings=settings or GatewaySettings(),
            documents=DocumentRepository(gateway_pool),
            objects=LocalObjectStore(tmp_path / "objects"),
            events=bus,
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
