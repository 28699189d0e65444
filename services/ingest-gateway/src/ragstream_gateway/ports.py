"""What the gateway's handlers need from the outside world."""

from __future__ import annotations

from typing import Protocol

from google.protobuf.message import Message

from ragstream_core.storage import ObjectStore
from ragstream_gateway.repository import DocumentRepository
from ragstream_gateway.settings import GatewaySettings
from ragstream_gateway.upload_repository import UploadRepository


class EventPublisher(Protocol):
    async def publish(self, event: Message) -> None: ...


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
