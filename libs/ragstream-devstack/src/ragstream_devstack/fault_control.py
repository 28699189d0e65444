"""Faults made through the gateway's job-control API: a collection paused mid-batch, a job
cancelled while it is embedded (fault suite, scenarios 5 and 6).

The API (``POST /v1/collections/{c}/jobs:pause|:resume|:cancel``, ``POST /v1/jobs/{id}:cancel``,
``GET /v1/jobs/{id}/control``) is the gateway's; an answer other than 200 fails the scenario
with the route and the answer, so a missing route reads as such (404), never as a skip.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ragstream_devstack.e2e import FINAL, Client, long_markdown
from ragstream_devstack.faults import PARSED, Fault, FaultDocument


class ControlRefused(AssertionError):
    """The job-control API answered with something else than 200 (404: it is not there)."""


async def _control(client: Client, method: str, path: str) -> dict[str, Any]:
    response = await client.http.request(method, f"{client.stack.url('ingest-gateway')}{path}")
    if response.status_code != 200:
        raise ControlRefused(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
    return dict(response.json())


async def _control_states(client: Client, collection: str) -> dict[str, dict[str, Any]]:
    """The gateway's view (state, released_at) of every job of the collection's documents."""
    listed = await client.http.get(
        f"{client.stack.url('ingest-gateway')}/v1/collections/{collection}/documents", params={"limit": 1000}
    )
    listed.raise_for_status()
    job_ids = [d["job_id"] for d in listed.json()["documents"]]
    states = await asyncio.gather(*(_control(client, "GET", f"/v1/jobs/{j}/control") for j in job_ids))
    return dict(zip(job_ids, states, strict=True))


@dataclass
class CollectionPause:
    """Pause a collection mid-batch, hold it ``hold_s`` seconds once its running jobs finished,
    then resume it.

    While held, no job may be released that was not released when the pause began (jobs
    uploaded meanwhile stay queued); ``violations`` lists any, ``held`` counts the jobs that
    were waiting when the hold ended (a pause that held nothing proves nothing).
    """

    client: Client
    collection: str
    hold_s: float = 4.0
    drain_s: float = 120.0
    violations: list[str] = field(default_factory=list)
    held: int = 0

    def fault(self) -> Fault:
        return Fault(f"pause collection ({self.hold_s:g} s)", self.inject, PARSED)

    async def inject(self, _: dict[str, str]) -> None:
        await _control(self.client, "POST", f"/v1/collections/{self.collection}/jobs:pause")
        states = await _control_states(self.client, self.collection)
        released = {j for j, s in states.items() if s["released_at"] is not None}
        deadline = time.monotonic() + self.drain_s
        while any(s["state"] == "running" for s in states.values()):  # running jobs finish
            if time.monotonic() > deadline:
                self.violations.append(f"jobs still running {self.drain_s:g} s after the pause")
                break
            await asyncio.sleep(0.25)
            states = await _control_states(self.client, self.collection)
            released |= {j for j, s in states.items() if s["released_at"] is not None and s["state"] == "running"}
        hold_until = time.monotonic() + self.hold_s
        while time.monotonic() < hold_until:
            states = await _control_states(self.client, self.collection)
            for job_id, state in states.items():
                if state["released_at"] is not None and job_id not in released:
                    self.violations.append(f"job {job_id} released while its collection was paused: {state}")
                    released.add(job_id)
            await asyncio.sleep(0.25)
        self.held = sum(1 for s in states.values() if s["state"] == "queued")
        await _control(self.client, "POST", f"/v1/collections/{self.collection}/jobs:resume")


@dataclass
class CancelWhileEmbedding:
    """Upload a long document mid-batch and cancel its job once the embedder works on it.

    The document must end ``cancelled`` with no points (nothing of a cancelled run shows);
    ``answer`` is the gateway's answer to the cancel.
    """

    client: Client
    name: str = "long-report.md"
    #: the document may wait in the gateway's queue behind the first half of the batch
    within_s: float = 600.0
    answer: dict[str, Any] = field(default_factory=dict)

    def fault(self) -> Fault:
        # 128 chunks (seconds of embedding): the embedder is still at it when the cancel arrives
        document = FaultDocument(long_markdown(7_000_001, sections=64, sentences=30), ends="cancelled")
        return Fault("cancel a job mid-embedding", self.inject, PARSED, {self.name: document})

    async def inject(self, job_of: dict[str, str]) -> None:
        job_id = job_of[self.name]
        deadline = time.monotonic() + self.within_s
        status = ""
        while status != "embedding":
            job = await self.client.job(job_id)
            status = job["status"]
            if status in FINAL or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} was never seen embedding; it is {status!r}: {job.get('error')}")
            await asyncio.sleep(0.05)
        try:
            self.answer = await _control(self.client, "POST", f"/v1/jobs/{job_id}:cancel")
        except httpx.HTTPError as exc:
            raise ControlRefused(f"POST /v1/jobs/{job_id}:cancel failed: {exc!r}") from exc
