"""Async face of the index, on its own thread (qdrant-client's local mode is not thread-safe).

The model has its own async face with batching across callers: ``pooling.PooledModel``.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ragstream_embedder.index import ChunkIndex, ChunkPoint, Hit, Mode, VersionInventory

T = TypeVar("T")


class AsyncIndex:
    """A ``ChunkIndex`` with every call on the one index thread."""

    def __init__(self, index: ChunkIndex) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index")
        self._index = index

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def upsert(self, points: list[ChunkPoint], vectors: NDArray[np.float32]) -> None:
        await self._call(self._index.upsert, points, vectors)

    async def activate(
        self,
        tenant_id: str,
        document_id: str,
        version: int,
        chunk_count: int,
        *,
        tags: list[str] | None = None,
        tags_revision: int = 0,
    ) -> int:
        result: int = await self._call(
            self._index.activate, tenant_id, document_id, version, chunk_count, tags=tags, tags_revision=tags_revision
        )
        return result

    async def set_tags(self, tenant_id: str, document_id: str, tags: list[str], revision: int) -> int:
        result: int = await self._call(self._index.set_tags, tenant_id, document_id, tags, revision)
        return result

    async def discard(self, tenant_id: str, document_id: str, version: int, chunk_count: int) -> None:
        await self._call(self._index.discard, tenant_id, document_id, version, chunk_count)

    async def is_deleted(self, tenant_id: str, document_id: str, version: int) -> bool:
        result: bool = await self._call(self._index.is_deleted, tenant_id, document_id, version)
        return result

    async def delete_document(self, tenant_id: str, document_id: str, up_to_version: int) -> int:
        result: int = await self._call(self._index.delete_document, tenant_id, document_id, up_to_version)
        return result

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
    ) -> list[Hit]:
        result: list[Hit] = await self._call(
            self._index.search,
            vector,
            tenant_id=tenant_id,
            collection_id=collection_id,
            top_k=top_k,
            document_ids=document_ids,
            query=query,
            mode=mode,
            media_types=media_types,
            file_names=file_names,
            tags=tags,
            date_from=date_from,
            date_to=date_to,
        )
        return result

    async def count(self, tenant_id: str, document_id: str) -> dict[int, int]:
        result: dict[int, int] = await self._call(self._index.count, tenant_id, document_id)
        return result

    async def inventory(self, tenant_id: str, collection_id: str | None = None) -> list[VersionInventory]:
        result: list[VersionInventory] = await self._call(self._index.inventory, tenant_id, collection_id)
        return result

    async def delete_versions(self, tenant_id: str, document_id: str, versions: list[int]) -> int:
        result: int = await self._call(self._index.delete_versions, tenant_id, document_id, versions)
        return result

    async def check(self) -> None:
        """Readiness: a Qdrant server must answer (asked beside the index thread, so that a long
        write does not make the embedder look unready); an in-process engine is always there."""
        if self.engine == "qdrant-server":
            await asyncio.to_thread(self._index.check)  # type: ignore[attr-defined]

    @property
    def engine(self) -> str:
        """Which engine answers: ``edge``, ``qdrant-local`` or ``qdrant-server``."""
        return str(getattr(self._index, "engine", type(self._index).__name__))

    async def snapshot(self, archive: Path) -> tuple[Path, int]:
        """Write the index as a tar archive (``EdgeIndex.snapshot``); its own directory and points.

        Raises ``NotImplementedError`` for an engine without snapshots of its files (a Qdrant
        server has its own snapshot API; local mode is not supported)."""
        snapshot = getattr(self._index, "snapshot", None)
        if snapshot is None:
            raise NotImplementedError(
                f"the {type(self._index).__name__} engine has no file snapshot; only the embedded edge engine "
                "(RAGSTREAM_EMBEDDER_ENGINE=edge, no RAGSTREAM_EMBEDDER_QDRANT_URL) is backed up this way"
            )
        points: int = await self._call(snapshot, archive)
        return Path(self._index.path), points  # type: ignore[attr-defined]

    async def close(self) -> None:
        await self._call(self._index.close)
