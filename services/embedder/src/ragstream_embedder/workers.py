"""Async faces of the model and the index, each on its own thread.

The model runs on one thread (ONNX Runtime uses every core inside a call; two calls at once
would only compete). The index runs on one thread because embedded Qdrant is not thread-safe.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ragstream_embedder.index import ChunkPoint, Hit, VectorIndex
from ragstream_embedder.model import MiniLMEmbedder

T = TypeVar("T")


class _OnThread:
    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))


class AsyncModel(_OnThread):
    def __init__(self, model: MiniLMEmbedder) -> None:
        super().__init__("model")
        self._model = model
        self.name = model.name
        self.dimensions = model.dimensions

    async def embed(self, texts: list[str]) -> NDArray[np.float32]:
        result: NDArray[np.float32] = await self._call(self._model.embed, texts)
        return result

    async def count_tokens(self, texts: list[str]) -> list[int]:
        result: list[int] = await self._call(self._model.count_tokens, texts)
        return result


class AsyncIndex(_OnThread):
    def __init__(self, index: VectorIndex) -> None:
        super().__init__("index")
        self._index = index

    async def upsert(self, points: list[ChunkPoint], vectors: NDArray[np.float32]) -> None:
        await self._call(self._index.upsert, points, vectors)

    async def activate(self, tenant_id: str, document_id: str, version: int) -> int:
        result: int = await self._call(self._index.activate, tenant_id, document_id, version)
        return result

    async def search(
        self,
        vector: NDArray[np.float32],
        *,
        tenant_id: str,
        collection_id: str,
        top_k: int,
        document_ids: list[str] | None = None,
    ) -> list[Hit]:
        result: list[Hit] = await self._call(
            self._index.search,
            vector,
            tenant_id=tenant_id,
            collection_id=collection_id,
            top_k=top_k,
            document_ids=document_ids,
        )
        return result

    async def count(self, tenant_id: str, document_id: str) -> dict[int, int]:
        result: dict[int, int] = await self._call(self._index.count, tenant_id, document_id)
        return result

    async def close(self) -> None:
        await self._call(self._index.close)
