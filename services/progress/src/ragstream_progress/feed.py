"""The live feed of job changes: every change, in order, resumable from a position.

Each change of a job takes the next value of ``progress.change_seq`` in the projection's
transaction and notifies the ``ragstream_job_changes`` channel (PostgreSQL LISTEN/NOTIFY, so
the watchers of every replica hear every change). A watcher reads the jobs changed after its
position, sends them, and waits for the next notification. A client that reconnects with the
last position it saw misses nothing: the projection applies events one at a time, so change
numbers are committed in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import structlog

from ragstream_progress.projection import CHANGES_CHANNEL, JobStore
from ragstream_progress.queries import JobFilter

log = structlog.get_logger(__name__)


class ChangeSignal:
    """A counter that moves whenever the projection commits a change (one LISTEN per process)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.generation = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="change-signal")

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    await self._bump()  # anything committed while not listening is read again
                    async for _ in conn.notifies():
                        await self._bump()
            except psycopg.OperationalError as exc:
                log.warning("feed.listen_lost", error=str(exc))
                await asyncio.sleep(1)

    async def _bump(self) -> None:
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    async def wait_beyond(self, generation: int, *, timeout_s: float) -> None:
        """Return once a change newer than ``generation`` happened, or after ``timeout_s``."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.generation > generation), timeout=timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def watch_changes(
    jobs: JobStore,
    signal: ChangeSignal,
    tenant_id: str,
    *,
    after: int = 0,
    filters: JobFilter | None = None,
    heartbeat_s: float = 15.0,
) -> AsyncIterator[dict[str, Any] | None]:
    """Jobs ``filters`` select as they change, after position ``after``, in the order of their
    changes (``None`` as a heartbeat when nothing changed for ``heartbeat_s``)."""
    position = after
    while True:
        generation = signal.generation
        rows = await jobs.changes_since(tenant_id, position, filters=filters)
        for row in rows:
            position = int(row["change_seq"])
            yield row
        if not rows:
            await signal.wait_beyond(generation, timeout_s=heartbeat_s)
            if signal.generation == generation:
                yield None
