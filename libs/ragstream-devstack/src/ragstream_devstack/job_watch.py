"""A collection's jobs as the progress service lists them, followed in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ragstream_devstack.e2e import Client


@dataclass
class JobWatch:
    """The collection's jobs as the progress service lists them, polled in the background.

    Remembers when anything changed (a status, a percentage, embedded chunks, a new job), so the
    time to the first progress after a fault can be read afterwards. A poll that fails (the
    progress service or its database is away) is counted and skipped.
    """

    client: Client
    collection: str
    interval_s: float = 0.25
    statuses: dict[str, str] = field(default_factory=dict)
    changes: list[float] = field(default_factory=list)
    failed_polls: int = 0
    _seen: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _polled: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> JobWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        url = f"{self.client.stack.url('progress')}/v1/jobs"
        while True:
            try:
                response = await self.client.http.get(
                    url, params={"collection_id": self.collection, "limit": 1000}, timeout=5
                )
                response.raise_for_status()
            except httpx.HTTPError:
                self.failed_polls += 1
            else:
                jobs = response.json()["jobs"]
                seen = {j["job_id"]: (j["status"], j["percent"], j["counts"]["chunks_embedded"]) for j in jobs}
                if seen != self._seen:
                    self.changes.append(time.monotonic())
                self._seen = seen
                self.statuses = {job_id: state[0] for job_id, state in seen.items()}
                self._polled.set()
            await asyncio.sleep(self.interval_s)

    def count(self, statuses: Collection[str], job_ids: Iterable[str]) -> int:
        return sum(1 for j in job_ids if self.statuses.get(j) in statuses)

    async def wait_until(self, condition: Callable[[JobWatch], bool], *, within_s: float) -> float | None:
        """The time ``condition`` first held at a poll, or None once ``within_s`` passed."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            self._polled.clear()
            if condition(self):
                return time.monotonic()
            with_timeout = asyncio.wait_for(self._polled.wait(), timeout=max(deadline - time.monotonic(), 0.01))
            try:
                await with_timeout
            except TimeoutError:
                break
        return time.monotonic() if condition(self) else None

    def first_change_after(self, moment: float) -> float | None:
        return next((t for t in self.changes if t > moment), None)
