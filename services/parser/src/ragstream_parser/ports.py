"""What the parser's handler needs."""

from __future__ import annotations

from typing import Protocol

from google.protobuf.message import Message

from ragstream_core.storage import ObjectStore
from ragstream_parser.docling_parser import DEFAULT_OPTIONS, ParsedDocument, ParseOptions
from ragstream_parser.progress import Progress


class DocumentParser(Protocol):
    async def parse(
        self,
        data: bytes,
        *,
        file_name: str,
        media_type: str,
        options: ParseOptions = DEFAULT_OPTIONS,
        progress: Progress | None = None,
    ) -> ParsedDocument: ...


class EventPublisher(Protocol):
    async def publish(self, event: Message) -> None: ...


class ParserPorts(Protocol):
    @property
    def objects(self) -> ObjectStore: ...

    @property
    def parser(self) -> DocumentParser: ...

    @property
    def events(self) -> EventPublisher: ...
