"""The embedding model behind a queue that pools the texts of concurrent callers.

Padding is the model's hidden cost: a batch is as long as its longest text, so mixing a 20-token
chunk with a 250-token one wastes most of the short one's work. The pool gathers the texts of
every document in flight, sorts each round by token length and cuts batches from that order,
so a batch holds texts of similar length whatever document they come from. Search queries are
urgent: they run before the next batch of document chunks, so a question waits for at most
one batch, never for a whole bulk import.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ragstream_embedder.model import MiniLMEmbedder


@dataclass(eq=False)
class _Call:
    texts: list[str]
    future: asyncio.Future[NDArray[np.float32]]
    vectors: NDArray[np.float32] = field(init=False)
    remaining: int = field(init=False)

    dimensions: int = 384

    def __post_init__(self) -> None:
        self.vectors = np.zeros((len(self.texts), self.dimensions), dtype=np.float32)
        self.remaining = len(self.texts)

    def fill(self, index: int, vector: NDArray[np.float32]) -> None:
        self.vectors[index] = vector
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(self.vectors)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


_Item = tuple[_Call, int]


class PooledModel:
    """Async face of the model: one model thread, length-sorted batches across callers.

    Guarantee: ``embed`` returns exactly the vectors ``MiniLMEmbedder.embed`` would give for the
    same texts (batching changes only which texts share a call, and padding is masked out).
    """

    def __init__(
        self, model: MiniLMEmbedder, *, batch_size: int = 32, round_size: int = 512, linger_s: float = 0.02
    ) -> None:
        self._model = model
        self.name = model.name
        self.dimensions = model.dimensions
        self.batch_size = batch_size
        self.round_size = round_size
        self.linger_s = linger_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._chunks: deque[_Item] = deque()
        self._urgent: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def embed(self, texts: list[str], *, urgent: bool = False) -> NDArray[np.float32]:
        """Unit-length vectors of ``texts``; ``urgent`` (queries) jumps the queue of chunks."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        call = _Call(texts, asyncio.get_running_loop().create_future(), self.dimensions)
        (self._urgent if urgent else self._chunks).extend((call, i) for i in range(len(texts)))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="model-pool")
        self._wakeup.set()
        return await call.future

    async def count_tokens(self, texts: list[str]) -> list[int]:
        result: list[int] = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._model.count_tokens, texts
        )
        return result

    async def _run_batch(self, items: list[_Item]) -> None:
        texts = [call.texts[i] for call, i in items]
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(self._executor, self._model.embed, texts)
        except Exception as exc:  # the callers get the error; the pool keeps serving
            for call, _ in items:
                call.fail(exc)
            return
        for (call, i), vector in zip(items, vectors, strict=True):
            call.fill(i, vector)

    def _take(self, queue: deque[_Item], limit: int) -> list[_Item]:
        return [queue.popleft() for _ in range(min(limit, len(queue)))]

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._urgent or self._chunks:
                if self._urgent:
                    await self._run_batch(self._take(self._urgent, self.batch_size))
                    continue
                if len(self._chunks) < self.round_size and self.linger_s:
                    # documents arrive one after another: a moment's wait fills the round
                    await asyncio.sleep(self.linger_s)
                round_items = self._take(self._chunks, self.round_size)
                lengths = await self.count_tokens([call.texts[i] for call, i in round_items])
                ordered = [item for _, item in sorted(zip(lengths, round_items, strict=True), key=lambda p: p[0])]
                for start in range(0, len(ordered), self.batch_size):
                    while self._urgent:
                        await self._run_batch(self._take(self._urgent, self.batch_size))
                    await self._run_batch(ordered[start : start + self.batch_size])

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False)
