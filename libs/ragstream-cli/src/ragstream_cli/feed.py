"""The progress service's live feed of job changes (SSE ``/v1/jobs/events``), and waiting on it.

The feed replays every change after a position and then follows live, so a watcher that starts
after the uploads misses nothing; a dropped connection resumes from the last position seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from ragstream_cli.api import Api, event_json
from ragstream_cli.errors import Unreachable

#: statuses after which nothing more happens to a job
FINAL = frozenset({"indexed", "failed", "deleted", "cancelled"})
_RECONNECTS = 5


async def job_changes(
    api: Api,
    *,
    collection_id: str | None = None,
    batch_id: str | None = None,
    job_id: str | None = None,
    after: int = 0,
) -> AsyncIterator[dict[str, Any]]:
    """Each change of the jobs the filters select, in order, forever (the caller stops). A lost
    connection is resumed from the last position; after a few failed attempts ``Unreachable``."""
    position = after
    failures = 0
    params = {"collection_id": collection_id, "batch_id": batch_id, "job_id": job_id}
    while True:
        try:
            async with api.events("progress", "GET", "/v1/jobs/events", params={**params, "after": position}) as events:
                failures = 0
                async for event in events:
                    if event.event != "job":
                        continue
                    if event.id and event.id.isdigit():
                        position = int(event.id)
                    yield event_json(event)
        except Unreachable:
            failures += 1
            if failures > _RECONNECTS:
                raise
        await asyncio.sleep(min(0.2 * 2**failures, 5.0))


async def _pump(feed: AsyncIterator[dict[str, Any]], queue: asyncio.Queue[dict[str, Any]]) -> None:
    async for job in feed:
        await queue.put(job)


async def wait_for_jobs(
    api: Api,
    job_ids: Collection[str],
    *,
    batch_id: str | None = None,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    timeout_s: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Follow ``job_ids`` until each is final (indexed, failed, deleted, cancelled) or ``timeout_s``
    passes; returns the last state seen of each (missing: never seen). One feed for a batch,
    else one per job. ``on_change`` sees every change of a job of ``job_ids``."""
    wanted = set(job_ids)
    latest: dict[str, dict[str, Any]] = {}
    if not wanted:
        return latest
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    feeds = (
        [job_changes(api, batch_id=batch_id)] if batch_id else [job_changes(api, job_id=job) for job in sorted(wanted)]
    )
    tasks = [asyncio.create_task(_pump(feed, queue)) for feed in feeds]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while any(latest.get(job, {}).get("status") not in FINAL for job in wanted):
            errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
            for error in errors:
                if error is not None:
                    raise error
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                job = await asyncio.wait_for(queue.get(), timeout=min(remaining or 1.0, 1.0))
            except TimeoutError:
                continue
            if job.get("job_id") in wanted:
                latest[job["job_id"]] = job
                if on_change is not None:
                    on_change(job)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latest
