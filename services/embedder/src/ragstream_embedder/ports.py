"""What the embedder's handlers need: the model, the index, objects and the bus."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from google.protobuf.message import Message
from numpy.typing import NDArray

from ragstream_core.storage import ObjectStore
from ragstream_embedder.index import ChunkPoint, Hit, Mode


class EmbeddingModel(Protocol):
    name: str
    dimensions: int

    async def embed(self, texts: list[str], *, urgent: bool = False) -> NDArray[np.float32]: ...

    async def count_tokens(self, texts: list[str]) -> list[int]: ...


class Index(Protocol):
    async def upsert(self, points: list[ChunkPoint], vectors: NDArray[np.float32]) -> None: ...

    async def activate(
        self,
        tenant_id: str,
        document_id: str,
        version: int,
        chunk_count: int,
        *,
        tags: list[str] | None = None,
        tags_revision: int = 0,
    ) -> int: ...

    async def set_tags(self, tenant_id: str, document_id: str, tags: list[str], revision: int) -> int: ...

    async def is_deleted(self, tenant_id: str, document_id: str, version: int) -> bool: ...

    async def discard(self, tenant_id: str, document_id: str, version: int, chunk_count: int) -> None: ...

    async def delete_document(self, tenant_id: str, document_id: str, up_to_version: int) -> int: ...

    async def search(
        self,
        vector: NDArray[np.float32],
        *,
        tenant_id: str,
        collection_id: str,
        top_k: int,
        document_ids: list[str] | None = None,
        query: str = "",
        mode: Mode = "hybrid",
        media_types: list[str] | None = None,
        file_names: list[str] | None = None,
        tags: list[str] | None = None,
        date_from: int | None = None,
        date_to: int | None = None,
    ) -> list[Hit]: ...

    async def count(self, tenant_id: str, document_id: str) -> dict[int, int]: ...


class EventPublisher(Protocol):
    async def publish(self, event: Message) -> None: ...


class EmbedderPorts(Protocol):
    @property
    def objects(self) -> ObjectStore: ...

    @property
    def model(self) -> EmbeddingModel: ...

    @property
    def index(self) -> Index: ...

    @property
    def events(self) -> EventPublisher: ...

    @property
    def batch_size(self) -> int: ...
