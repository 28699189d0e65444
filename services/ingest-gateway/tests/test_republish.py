"""Versions recorded but never announced (a crash between the two) are announced later, once."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.bus import Bus
from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded
from ragstream_devstack.servers import NatsServer
from ragstream_devstack.testing import eventually, new_id
from ragstream_gateway.handlers import Upload, accept_upload, republish_unpublished
from ragstream_gateway.media import MARKDOWN
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.repository import NewVersion, VersionRow
from ragstream_gateway.settings import GatewaySettings

ReadEvents = Callable[..., Awaitable[list[DocUploaded]]]


@pytest.fixture
def ports(make_ports: Callable[..., GatewayPorts]) -> GatewayPorts:
    """A gateway that re-sends versions left unannounced for more than a millisecond."""
    return make_ports(GatewaySettings(republish_after_s=0.001))


@pytest.fixture
async def unannounced(ports: GatewayPorts) -> AsyncIterator[VersionRow]:
    """A version recorded with ``published_at`` NULL, as after a crash before publishing.

    Marked published afterwards, so that no later test of the session finds it.
    """
    data = f"# Notes {new_id()}\n\nDucks swim.\n".encode()
    sha256 = hashlib.sha256(data).hexdigest()
    object_key = f"uploads/default/{sha256}"
    await ports.objects.put_bytes(object_key, data)
    row, _, _ = await ports.documents.add_version(
        NewVersion(
            tenant_id="default",
            collection_id=new_id("col"),
            file_name="notes.md",
            sha256=sha256,
            object_key=object_key,
            media_type=MARKDOWN,
            size_bytes=len(data),
        ),
        job_id=new_id("job"),
        model="all-MiniLM-L6-v2",
        dimensions=384,
    )
    yield row
    await ports.documents.mark_published(row.job_id)


async def republish_until_announced(ports: GatewayPorts, job_id: str, uploaded_events: ReadEvents) -> DocUploaded:
    async def republish_then_read() -> list[DocUploaded]:
        await republish_unpublished(ports)
        return await uploaded_events(job_id)

    events = await eventually(republish_then_read, until=lambda found: len(found) > 0, within_s=5)
    return events[0]


async def test_version_never_announced_is_announced_by_republishing(
    ports: GatewayPorts, unannounced: VersionRow, uploaded_events: ReadEvents
) -> None:
    event = await republish_until_announced(ports, unannounced.job_id, uploaded_events)

    assert event.meta.event_id == f"{unannounced.job_id}:uploaded"
    assert (event.meta.document_id, event.meta.version, event.meta.collection_id) == (
        unannounced.document_id,
        1,
        unannounced.collection_id,
    )
    assert (event.object_key, event.media_type, event.sha256, event.size_bytes) == (
        unannounced.object_key,
        MARKDOWN,
        unannounced.sha256,
        unannounced.size_bytes,
    )


async def test_republished_version_is_marked_published(
    ports: GatewayPorts, unannounced: VersionRow, uploaded_events: ReadEvents
) -> None:
    await republish_until_announced(ports, unannounced.job_id, uploaded_events)

    row = await ports.documents.get_version("default", unannounced.document_id, unannounced.version)

    assert row is not None
    assert row.published_at is not None


async def test_republishing_a_version_twice_stores_one_event(
    ports: GatewayPorts,
    unannounced: VersionRow,
    uploaded_events: ReadEvents,
    gateway_pool: AsyncConnectionPool,
) -> None:
    await republish_until_announced(ports, unannounced.job_id, uploaded_events)
    async with gateway_pool.connection() as conn:  # as if the process died before recording the publish
        await conn.execute(
            "UPDATE gateway.document_versions SET published_at = NULL WHERE job_id = %s", (unannounced.job_id,)
        )

    await republish_until_announced(ports, unannounced.job_id, uploaded_events)

    assert len(await uploaded_events(unannounced.job_id)) == 1
    row = await ports.documents.get_version("default", unannounced.document_id, unannounced.version)
    assert row is not None
    assert row.published_at is not None


async def test_version_younger_than_the_delay_is_not_republished(
    make_ports: Callable[..., GatewayPorts], unannounced: VersionRow, uploaded_events: ReadEvents
) -> None:
    patient = make_ports(GatewaySettings(republish_after_s=3600))

    await republish_unpublished(patient)

    assert await uploaded_events(unannounced.job_id) == []
    row = await patient.documents.get_version("default", unannounced.document_id, unannounced.version)
    assert row is not None
    assert row.published_at is None


async def test_upload_while_nats_is_down_is_accepted_and_announced_once_it_is_back(
    make_ports: Callable[..., GatewayPorts], isolated_nats: NatsServer, bus: Bus, uploaded_events: ReadEvents
) -> None:
    ports = make_ports(GatewaySettings(republish_after_s=0.001))
    upload = Upload("default", new_id("col"), "outage.md", io.BytesIO(f"# Outage {new_id()}\n".encode()))
    isolated_nats.stop()

    accepted = await accept_upload(upload, ports)
    isolated_nats.start()  # same port, same JetStream store
    await eventually(lambda: asyncio.sleep(0, bus.nc.is_connected), bool, within_s=20)
    announced = await republish_until_announced(ports, accepted.version.job_id, uploaded_events)

    assert accepted.unchanged is False
    assert announced.meta.document_id == accepted.version.document_id
    assert len(await uploaded_events(accepted.version.job_id)) == 1
