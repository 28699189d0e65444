"""How far a parse has got, from the parser's worker thread to ``StageProgress`` events.

Docling converts and chunks on a worker thread and tells a ``Progress`` callback how far it is,
as often as it likes (every page, every chunk, every row). ``ProgressPublisher`` turns those
calls into ``StageProgress`` events published from the event loop, in order, at most one per
``interval_s`` and each ``done`` value at most once (a ``StageProgress`` id derives from job,
stage, ``done`` and attempt).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from ragstream_core.events import next_meta
from ragstream_core.proto.ragstream.v1.events_pb2 import EventMeta, StageProgress

__all__ = ["DEFAULT_INTERVAL_S", "Progress", "ProgressPublisher"]

#: ``(done, total, unit)``: units of work done so far out of ``total``; callable from any thread
Progress = Callable[[int, int, str], None]

#: at most one event per interval: a long document moves steadily without flooding JetStream
DEFAULT_INTERVAL_S = 0.5

_Update = tuple[int, int, str]


class ProgressPublisher:
    """Publishes the progress of one stage run as ``StageProgress`` events while it works.

    ``report`` may be called from any thread, as often as the work likes; it never blocks
    on the bus. Published events have strictly increasing ``done`` (so distinct ids), the
    first one ``interval_s`` after entering the context at the earliest, so short work
    publishes none. Leaving the context without an error waits until the events reported
    are stored (a bus error raises there); leaving it with an error drops those not yet sent.
    Reports after leaving are ignored (the worker thread may outlive a cancelled handler).
    """

    def __init__(
        self,
        publish: Callable[[StageProgress], Awaitable[None]],
        meta: EventMeta,
        *,
        stage: str,
        attempt: int,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self._publish = publish
        self._meta = meta
        self._stage = stage
        self._attempt = attempt
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._done = 0  # the start (done=0) is the stage's first event, published by the handler
        self._next_at = 0.0
        self._closed = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Update | None] | None = None
        self._sender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._sender = asyncio.create_task(self._send(self._queue))
        with self._lock:
            self._next_at = time.monotonic() + self._interval_s
            self._closed = False
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        with self._lock:
            self._closed = True
        sender, queue, loop = self._sender, self._queue, self._loop
        if sender is None or queue is None or loop is None:
            return
        if exc_type is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            return
        loop.call_soon(queue.put_nowait, None)  # after the reports already scheduled: they are sent first
        await sender

    def report(self, done: int, total: int, unit: str) -> None:
        """Note that ``done`` of ``total`` units are done; publishes it if it is time. Thread-safe."""
        with self._lock:
            if self._closed or done <= self._done:
                return
            now = time.monotonic()
            if now < self._next_at:
                return
            self._done = done
            self._next_at = now + self._interval_s
            loop, queue = self._loop, self._queue
        if loop is not None and queue is not None:
            loop.call_soon_threadsafe(queue.put_nowait, (done, total, unit))

    async def _send(self, queue: asyncio.Queue[_Update | None]) -> None:
        while (update := await queue.get()) is not None:
            done, total, unit = update
            await self._publish(
                StageProgress(
                    meta=next_meta(self._meta),
                    stage=self._stage,
                    done=done,
                    total=total,
                    unit=unit,
                    attempt=self._attempt,
                )
            )
