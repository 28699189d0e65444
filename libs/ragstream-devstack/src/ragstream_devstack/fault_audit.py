"""The end state of a batch after a fault, checked against every store that holds a part of it.

``audit_batch`` compares, for each accepted upload, the progress projection (the job), the
gateway (the document's version), the object store (the chunks object) and the index (Qdrant
points per version), and the collection as a whole (one document and one job per upload).
``consumer_backlog`` and ``dead_letters`` read JetStream itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
from google.protobuf.message import DecodeError
from nats.js.errors import NotFoundError

from ragstream_core.events import DEAD_LETTER_STREAM, EVENTS_STREAM, TYPE_OF_SUBJECT, chunks_key
from ragstream_devstack.e2e import FINAL, Client

T = TypeVar("T")
TENANT = "default"
#: requests the audit sends at once (the stack shares two cores with the test)
_PARALLEL = 8


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter stream, with the job it belonged to."""

    sequence: int
    job_id: str
    stage: str
    reason: str
    deliveries: int
    subject: str


@dataclass
class Audit:
    """What is wrong with a batch, one line per finding, sorted into the table's columns.

    - ``lost``: an accepted document that did not end indexed (and was not expected to fail), or
      has fewer points than chunks, or no chunks object;
    - ``duplicated``: more points than chunks, points of another version, ``indexed`` applied twice,
      or more documents or jobs in the collection than uploads;
    - ``stuck``: a job still unfinished when the batch's time ran out;
    - ``inconsistent``: the projection, the gateway and the chunks object disagree on a count or status;
    - ``other``: anything else (chat cannot answer from the batch, an expected failure without reason).
    """

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [
            *(f"lost: {p}" for p in self.lost),
            *(f"duplicated: {p}" for p in self.duplicated),
            *(f"stuck: {p}" for p in self.stuck),
            *(f"inconsistent: {p}" for p in self.inconsistent),
            *self.other,
        ]


async def _bounded(calls: list[Callable[[], Awaitable[T]]]) -> list[T]:
    limit = asyncio.Semaphore(_PARALLEL)

    async def run(call: Callable[[], Awaitable[T]]) -> T:
        async with limit:
            return await call()

    return list(await asyncio.gather(*(run(c) for c in calls)))


def _chunk_count(path: Path) -> int | None:
    if not path.is_file():
        return None
    return len(json.loads(path.read_bytes())["chunks"])


async def audit_batch(
    client: Client,
    collection: str,
    job_of: dict[str, str],
    *,
    ends: Mapping[str, str] | None = None,
) -> Audit:
    """Check every accepted upload of ``collection`` (file name -> job id) in every store.

    A document named in ``ends`` must end with that status (``failed`` with a reason, or
    ``cancelled``) and have no points; every other one ``indexed``. Never raises for what it
    finds: each finding is a line of the returned ``Audit``.
    """
    ends = ends or {}
    audit = Audit()
    names = sorted(job_of)
    jobs = await _bounded([functools.partial(client.job, job_of[n]) for n in names])
    audit.jobs = {job_of[n]: job for n, job in zip(names, jobs, strict=True)}
    gateway = await client.http.get(
        f"{client.stack.url('ingest-gateway')}/v1/collections/{collection}/documents", params={"limit": 1000}
    )
    gateway.raise_for_status()
    versions = {d["document_id"]: d for d in gateway.json()["documents"]}
    listed = await client.http.get(
        f"{client.stack.url('progress')}/v1/jobs", params={"collection_id": collection, "limit": 1000}
    )
    listed.raise_for_status()
    if len(versions) > len(job_of):
        audit.duplicated.append(f"{len(versions)} documents in the collection for {len(job_of)} uploads")
    if len(listed.json()["jobs"]) > len(job_of):
        audit.duplicated.append(f"{len(listed.json()['jobs'])} jobs in the collection for {len(job_of)} uploads")

    finished = [(n, job) for n, job in zip(names, jobs, strict=True) if job["status"] in FINAL]
    for name, job in zip(names, jobs, strict=True):
        if job["status"] not in FINAL:
            audit.stuck.append(f"{name} is {job['status']!r}")
    points = await _bounded([functools.partial(client.points, job["document_id"]) for _, job in finished])
    objects = client.stack.data_dir / "objects"
    paths = [objects / chunks_key(TENANT, job["document_id"], job["version"]) for _, job in finished]
    chunk_files = await asyncio.to_thread(lambda: [_chunk_count(path) for path in paths])
    for (name, job), index, stored in zip(finished, points, chunk_files, strict=True):
        version = versions.get(job["document_id"])
        if name in ends:
            _check_expected_end(audit, name, job, index, ends[name])
            continue
        _check_indexed(audit, name, job, index, stored, version)
    return audit


def _check_expected_end(audit: Audit, name: str, job: dict[str, Any], index: dict[str, int], ends: str) -> None:
    if job["status"] != ends:
        audit.other.append(f"{name} should have ended {ends!r} but is {job['status']!r}: {job.get('error')!r}")
    elif not (job.get("error") or {}).get("reason"):
        audit.other.append(f"{name} ended {ends!r} without a reason: {job.get('error')!r}")
    if any(index.values()):
        audit.inconsistent.append(f"{name} ended {job['status']!r} but has points {index}")


def _check_indexed(
    audit: Audit,
    name: str,
    job: dict[str, Any],
    index: dict[str, int],
    stored: int | None,
    version: dict[str, Any] | None,
) -> None:
    if job["status"] != "indexed":
        audit.lost.append(f"{name} ended {job['status']!r}: {job.get('error')!r}")
        return
    chunks = job["counts"]["chunks"]
    own = index.get(str(job["version"]), 0)
    if own < chunks:
        audit.lost.append(f"{name}: {own} points for {chunks} chunks")
    elif own > chunks:
        audit.duplicated.append(f"{name}: {own} points for {chunks} chunks")
    others = {v: n for v, n in index.items() if v != str(job["version"]) and n}
    if others:
        audit.duplicated.append(f"{name}: points of other versions {others}")
    if [h["status"] for h in job.get("history", [])].count("indexed") > 1:
        audit.duplicated.append(f"{name}: 'indexed' applied more than once")
    if stored is None:
        audit.lost.append(f"{name}: no chunks object")
    elif stored != chunks:
        audit.inconsistent.append(f"{name}: the chunks object holds {stored} chunks, the job counts {chunks}")
    if job["counts"]["chunks_embedded"] != chunks:
        audit.inconsistent.append(f"{name}: {job['counts']['chunks_embedded']} of {chunks} chunks embedded")
    if version is None:
        audit.inconsistent.append(f"{name}: the gateway does not list document {job['document_id']}")
    elif version["status"] != "indexed" or version["chunk_count"] != chunks:
        audit.inconsistent.append(
            f"{name}: the gateway says {version['status']!r} with {version['chunk_count']} chunks,"
            f" progress says indexed with {chunks}"
        )


@dataclass(frozen=True)
class StreamState:
    """What JetStream holds of the event stream: messages, last sequence, durable consumers."""

    messages: int
    last_sequence: int
    consumers: frozenset[str]


async def stream_state(nats_url: str) -> StreamState:
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(EVENTS_STREAM)).state
        consumers = frozenset(info.name for info in await js.consumers_info(EVENTS_STREAM))
        return StreamState(state.messages, state.last_seq, consumers)
    finally:
        await nc.close()


async def consumer_backlog(nats_url: str) -> dict[str, tuple[int, int]]:
    """Each durable consumer of the event stream: (messages not yet delivered, delivered but unacked)."""
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3, allow_reconnect=True)
    try:
        infos = await nc.jetstream().consumers_info(EVENTS_STREAM)
        return {info.name: (info.num_pending or 0, info.num_ack_pending or 0) for info in infos}
    finally:
        await nc.close()


async def settled_backlog(nats_url: str, *, within_s: float = 30.0) -> dict[str, tuple[int, int]]:
    """``consumer_backlog`` once every consumer is at zero, or the last one seen after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        backlog = await consumer_backlog(nats_url)
        if not any(p or a for p, a in backlog.values()) or time.monotonic() > deadline:
            return backlog
        await asyncio.sleep(0.5)


async def dead_letters(nats_url: str) -> list[DeadLetter]:
    """Every message of the dead-letter stream, oldest first, with the job of the event it holds."""
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(DEAD_LETTER_STREAM)).state
        found: list[DeadLetter] = []
        if not state.messages:
            return found
        for sequence in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await js.get_msg(DEAD_LETTER_STREAM, sequence)
            except NotFoundError:
                continue
            headers = msg.headers or {}
            subject = headers.get("Ragstream-Dlq-Subject", "")
            event_type = TYPE_OF_SUBJECT.get(subject)
            job_id = ""
            if event_type is not None:
                try:
                    job_id = event_type.FromString(msg.data or b"").meta.job_id  # type: ignore[attr-defined]
                except DecodeError:
                    job_id = ""
            found.append(
                DeadLetter(
                    sequence=sequence,
                    job_id=job_id,
                    stage=headers.get("Ragstream-Dlq-Stage", ""),
                    reason=headers.get("Ragstream-Dlq-Reason", ""),
                    deliveries=int(headers.get("Ragstream-Dlq-Deliveries", "0")),
                    subject=subject,
                )
            )
        return found
    finally:
        await nc.close()
