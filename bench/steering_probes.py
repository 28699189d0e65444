"""Watching and steering under load (issue 4): how late the live feed is, how fast a paused batch
gets back to full speed after its resume, and how fast the pipeline recovers from a SIGKILL of
the embedder.

- ``FeedLatency`` listens on the progress WebSocket feed of a collection during the bulk ingest
  and records, per job message, the seconds from the event it reflects (the job's
  ``updated_at``, the newest event time applied) until the message reached this process.
- ``measure_pause_resume`` and ``measure_embedder_kill`` ingest a batch into a collection of
  their own, measure the steady rate of embedded chunks (the sum of the jobs'
  ``chunks_embedded`` that the progress service reports for the collection), then pause and
  resume the collection, or SIGKILL the embedder and start it again. *Full speed* is reached
  at the first moment from which the next ``window_s`` seconds embed at least
  ``FULL_SPEED`` of the steady rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

import httpx
import websockets

from ragstream_devstack.stack import Stack

#: a share of the steady rate that counts as "back at full speed"
FULL_SPEED = 0.9
#: seconds of steady running measured before a fault
STEADY_S = 20.0
#: the forward window of the full-speed test
WINDOW_S = 10.0


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class _Background:
    """Runs ``_run`` in a task for the duration of an ``async with``; entered once ``_ready`` is set."""

    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), timeout=30)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class FeedLatency(_Background):
    """Seconds from a job's newest event until its feed message arrived, for one collection."""

    stack: Stack
    collection: str
    samples: list[float] = field(default_factory=list)
    messages: int = 0

    async def _run(self) -> None:
        url = f"ws://127.0.0.1:{self.stack.ports['progress']}/v1/jobs/stream?collection_id={self.collection}"
        async with websockets.connect(url, max_size=None) as ws:
            self._ready.set()
            connected_at = time.time()
            async for raw in ws:
                received = time.time()
                item = json.loads(raw)
                if item["type"] != "job":
                    continue
                self.messages += 1
                event_at = datetime.fromisoformat(item["job"]["updated_at"]).timestamp()
                if event_at >= connected_at:  # a change replayed from before the connection is history
                    self.samples.append(received - event_at)

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"messages": self.messages, "samples": 0}
        return {
            "messages": self.messages,
            "samples": len(self.samples),
            "p50_ms": round(percentile(self.samples, 0.5) * 1000, 1),
            "p95_ms": round(percentile(self.samples, 0.95) * 1000, 1),
            "max_ms": round(max(self.samples) * 1000, 1),
            "mean_ms": round(statistics.fmean(self.samples) * 1000, 1),
        }


@dataclass
class ChunkMeter(_Background):
    """The collection's embedded chunks and job counts, polled from the progress service."""

    client: httpx.AsyncClient
    progress: str
    collection: str
    interval_s: float = 0.25
    samples: list[tuple[float, int, dict[str, int]]] = field(default_factory=list)

    async def _run(self) -> None:
        url = f"{self.progress}/v1/collections/{self.collection}/progress"
        self._ready.set()
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await self.client.get(url, timeout=5)
                if response.status_code == 200:
                    body = response.json()
                    self.samples.append((time.monotonic(), int(body["chunks"]["embedded"]), body["counts"]))
            await asyncio.sleep(self.interval_s)

    @property
    def embedded(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    @property
    def counts(self) -> dict[str, int]:
        return self.samples[-1][2] if self.samples else {}

    def at(self, moment: float) -> int:
        """Embedded chunks at ``moment`` (the last sample not after it)."""
        value = 0
        for t, embedded, _ in self.samples:
            if t > moment:
                break
            value = embedded
        return value

    def rate(self, start: float, end: float) -> float:
        return (self.at(end) - self.at(start)) / (end - start)

    def first_increase_after(self, moment: float) -> float | None:
        base = self.at(moment)
        return next((t for t, embedded, _ in self.samples if t > moment and embedded > base), None)

    def full_speed_after(self, moment: float, steady: float) -> float | None:
        """The first sample time from ``moment`` on (callers pass the first chunk after the fault,
        so chunks reported late from before it do not count) from which the next ``WINDOW_S``
        embed ``FULL_SPEED`` of ``steady``."""
        last = self.samples[-1][0] if self.samples else moment
        for t, _, _ in self.samples:
            if t < moment or t + WINDOW_S > last:
                continue
            if self.rate(t, t + WINDOW_S) >= FULL_SPEED * steady:
                return t
        return None

    def best_window_after(self, moment: float) -> float:
        last = self.samples[-1][0] if self.samples else moment
        rates = [self.rate(t, t + WINDOW_S) for t, _, _ in self.samples if t >= moment and t + WINDOW_S <= last]
        return max(rates, default=0.0)


class SteeringError(RuntimeError):
    """A steering probe could not run; the message says what was seen."""


async def _upload_all(client: httpx.AsyncClient, gateway: str, collection: str, files: list[tuple[str, bytes]]) -> int:
    limit = asyncio.Semaphore(4)

    async def one(name: str, data: bytes) -> None:
        async with limit:
            response = await client.post(
                f"{gateway}/v1/collections/{collection}/documents",
                files={"file": (name, data, "application/octet-stream")},
                timeout=120,
            )
            if response.status_code != 202:
                raise SteeringError(f"upload of {name} answered {response.status_code}: {response.text[:300]}")

    await asyncio.gather(*(one(name, data) for name, data in files))
    return len(files)


async def _wait(meter: ChunkMeter, condition: str, check: Any, *, within_s: float) -> float:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise SteeringError(f"waited {within_s:g} s for {condition}; last counts {meter.counts}")
        await asyncio.sleep(0.1)
    return time.monotonic()


def _finished(meter: ChunkMeter, total: int) -> bool:
    counts = meter.counts
    return sum(counts.get(k, 0) for k in ("done", "failed", "cancelled")) >= total


async def _steady_rate(meter: ChunkMeter, total: int, *, within_s: float) -> float:
    """Wait for the first embedded chunk, then ``STEADY_S`` more: the rate over them.

    Raises ``SteeringError`` if the batch is over by then (a fault would find nothing to do).
    """
    first = await _wait(meter, "the first embedded chunk", lambda: meter.embedded > 0, within_s=within_s)
    await asyncio.sleep(max(0.0, first + STEADY_S - time.monotonic()))
    if _finished(meter, total) or meter.counts.get("queued", 0) == 0:
        raise SteeringError(
            f"the batch of {total} documents had nothing left queued {STEADY_S:g} s after its first chunk "
            f"({meter.counts}): give the probe more documents (--steering-docs)"
        )
    now = time.monotonic()
    return meter.rate(now - STEADY_S, now)


def _seconds(value: float | None, since: float) -> float | None:
    return None if value is None else round(value - since, 2)


async def measure_pause_resume(
    stack: Stack, files: list[tuple[str, bytes]], *, collection: str, hold_s: float = 3.0
) -> dict[str, Any]:
    """Pause a collection mid-batch, wait until its running jobs finished plus ``hold_s``, resume.

    Reports the steady rate before, the seconds from the resume to the first embedded chunk and
    to full speed, and the jobs held while paused.
    """
    gateway, progress = stack.url("ingest-gateway"), stack.url("progress")
    async with httpx.AsyncClient() as client, ChunkMeter(client, progress, collection) as meter:
        total = await _upload_all(client, gateway, collection, files)
        steady = await _steady_rate(meter, total, within_s=300)
        paused_at = time.monotonic()
        (await client.post(f"{gateway}/v1/collections/{collection}/jobs:pause", timeout=30)).raise_for_status()
        drained_at = await _wait(
            meter, "the running jobs to finish", lambda: meter.counts["running"] == 0, within_s=300
        )
        await asyncio.sleep(hold_s)
        held = meter.counts.get("paused", 0) + meter.counts.get("queued", 0)
        resumed_at = time.monotonic()
        (await client.post(f"{gateway}/v1/collections/{collection}/jobs:resume", timeout=30)).raise_for_status()
        done_at = await _wait(meter, "the batch to finish", lambda: _finished(meter, total), within_s=900)
        counts = meter.counts
        first = meter.first_increase_after(resumed_at)
        full = meter.full_speed_after(first or resumed_at, steady)
    return {
        "documents": total,
        "steady_chunks_per_s": round(steady, 2),
        "drain_seconds": round(drained_at - paused_at, 2),
        "held_jobs": held,
        "first_chunk_after_resume_s": _seconds(first, resumed_at),
        "full_speed_after_resume_s": _seconds(full, resumed_at),
        "best_window_chunks_per_s": round(meter.best_window_after(resumed_at), 2),
        "finished_after_resume_s": round(done_at - resumed_at, 2),
        "final_counts": counts,
    }


async def measure_embedder_kill(stack: Stack, files: list[tuple[str, bytes]], *, collection: str) -> dict[str, Any]:
    """SIGKILL the embedder mid-batch and start it again, as ``make run``'s supervisor does.

    Reports the steady rate before, how long the restart took (the model loads again), the
    seconds from the kill to the first embedded chunk and to full speed, and to the end of the
    batch, with its final counts (every job should be done).
    """
    gateway, progress = stack.url("ingest-gateway"), stack.url("progress")
    async with httpx.AsyncClient() as client, ChunkMeter(client, progress, collection) as meter:
        total = await _upload_all(client, gateway, collection, files)
        steady = await _steady_rate(meter, total, within_s=300)
        killed_at = time.monotonic()
        stack.kill_service("embedder")
        await asyncio.to_thread(stack.start_service, "embedder")
        ready_at = time.monotonic()
        done_at = await _wait(meter, "the batch to finish", lambda: _finished(meter, total), within_s=900)
        counts = meter.counts
        first = meter.first_increase_after(ready_at)
        full = meter.full_speed_after(first or ready_at, steady)
    return {
        "documents": total,
        "steady_chunks_per_s": round(steady, 2),
        "restart_seconds": round(ready_at - killed_at, 2),
        "first_chunk_after_kill_s": _seconds(first, killed_at),
        "full_speed_after_kill_s": _seconds(full, killed_at),
        "best_window_chunks_per_s": round(meter.best_window_after(ready_at), 2),
        "finished_after_kill_s": round(done_at - killed_at, 2),
        "final_counts": counts,
    }
