"""What the gateway's handlers need from the outside world."""

from __future__ import annotations

import asyncio
from typing import Protocol

from google.protobuf.message import Message

from ragstream_core.control import JobControl
from ragstream_core.storage import ObjectStore
from ragstream_gateway.repository import DocumentRepository
from ragstream_gateway.settings import GatewaySettings
from ragstream_gateway.upload_repository import UploadRepository

#: the durable consumer that keeps the version registry (each version's status) current
REGISTRY_DURABLE = "gateway-versions"
#: how long a request waits for the registry to catch up before it refuses on a job it sees running
REGISTRY_SETTLE_S = 5.0


class EventPublisher(Protocol):
    async def publish(self, event: Message) -> None: ...

    async def job_control(self) -> JobControl: ...

    async def caught_up(self, durable: str, *, timeout_s: float) -> bool: ...


async def registry_caught_up(events: EventPublisher) -> bool:
    """Whether the version registry has read every event stored so far (waiting at most
    ``REGISTRY_SETTLE_S``): a job the progress service reports done may not have reached it yet,
    since each follows the events with its own consumer."""
    return await events.caught_up(REGISTRY_DURABLE, timeout_s=REGISTRY_SETTLE_S)


class Wakeup:
    """Wakes the job scheduler: an upload queued work, a job finished, an order changed the queue."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.event.set()


class GatewayPorts(Protocol):
    # read-only members, so that a port of a narrower type (a ``Bus`` as ``events``) satisfies them
    @property
    def settings(self) -> GatewaySettings: ...
    @property
    def documents(self) -> DocumentRepository: ...
    @property
    def objects(self) -> ObjectStore: ...
    @property
    def events(self) -> EventPublisher: ...
    @property
    def uploads(self) -> UploadRepository: ...
    @property
    def scheduler(self) -> Wakeup: ...
