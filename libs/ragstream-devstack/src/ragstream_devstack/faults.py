"""The fault suite: a batch ingested while a part of the system breaks, then audited.

``run_fault_scenario`` uploads a batch of distinct documents in two halves. Once a quarter of
the first half has reached the statuses the fault aims after, it injects the fault and uploads
the second half while the fault is in effect (retrying refused and failed uploads, as a client
would), waits for every job to finish and audits the end state (``fault_audit``): nothing lost,
nothing duplicated, nothing stuck, the stores agree, no message pending or unacknowledged, no
dead letter but the expected ones. Its ``FaultRow`` goes into the session's table
(``fault_report``).

The batch size is ``RAGSTREAM_FAULT_DOCS`` (default 50; ``make soak`` uses 500).
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ragstream_devstack.e2e import FINAL, Client, long_markdown
from ragstream_devstack.fault_audit import (
    Audit,
    DeadLetter,
    audit_batch,
    dead_letters,
    settled_backlog,
    stream_state,
)
from ragstream_devstack.fault_report import FaultRow
from ragstream_devstack.job_watch import JobWatch
from ragstream_devstack.stack import Stack

DOCUMENTS_ENV = "RAGSTREAM_FAULT_DOCS"
#: deliveries before a message is dead-lettered, set for the stack so tests can check it
MAX_DELIVER = 5
#: the stack's settings: an interrupted message comes back within seconds, retries are quick
FAULT_ENV = {
    "RAGSTREAM_ACK_WAIT_S": "6",
    "RAGSTREAM_RETRY_DELAY_S": "0.5",
    "RAGSTREAM_MAX_DELIVER": str(MAX_DELIVER),
    "RAGSTREAM_LOG_LEVEL": "INFO",
}
#: statuses a job has reached once it was parsed (``after`` of a fault aimed at the embedder)
PARSED = frozenset({"parsed", "embedding"}) | FINAL


def document_count() -> int:
    """The batch size of each scenario: ``RAGSTREAM_FAULT_DOCS``, default 50, at least 4."""
    raw = os.environ.get(DOCUMENTS_ENV, "50")
    if not raw.isdigit() or int(raw) < 4:
        raise ValueError(f"{DOCUMENTS_ENV}={raw!r} is not valid: give a number of documents of at least 4")
    return int(raw)


def start_fault_stack(data_dir: Path, log_dir: Path) -> Stack:
    """A stack of the fault suite's own: its faults must not disturb other tests."""
    return Stack(data_dir=data_dir, log_dir=log_dir, env=dict(FAULT_ENV)).start()


def batch_documents(collection: str, count: int) -> dict[str, bytes]:
    """``count`` distinct Markdown documents (three chunks each), named after ``collection``."""
    seed = zlib.crc32(collection.encode()) * 10_000
    return {f"{collection}-{n:04d}.md": long_markdown(seed + n, sections=3, sentences=10) for n in range(count)}


@dataclass(frozen=True)
class FaultDocument:
    """A document a fault brings along, uploaded when the fault starts; it ends ``ends``."""

    data: bytes
    ends: str = "failed"


@dataclass(frozen=True)
class Fault:
    """What breaks, and when.

    ``inject`` gets the job ids of ``documents`` (by file name) and returns once the broken part
    is back (a restarted service is ready); the fault is over when, besides, each of its
    documents is finished.
    """

    scenario: str
    inject: Callable[[dict[str, str]], Awaitable[None]]
    #: inject once a quarter of the first half reached one of these statuses (empty: at once)
    after: frozenset[str] = FINAL
    documents: dict[str, FaultDocument] = field(default_factory=dict)


def kill_service(stack: Stack, name: str, *, after: frozenset[str] = FINAL) -> Fault:
    """SIGKILL one service, then start it again (as ``make run``'s supervisor does)."""

    def kill_and_restart() -> None:
        stack.kill_service(name)
        stack.start_service(name)

    return Fault(f"kill -9 {name}", lambda _: asyncio.to_thread(kill_and_restart), after)


@dataclass
class NatsRestart:
    """Stop NATS (SIGTERM, or SIGKILL with ``kill``), keep it away ``down_s`` seconds, start it
    on the same port and store.

    JetStream must come back with everything it held: ``violations`` lists what it lost (stored
    messages, sequence numbers, durable consumers), compared just before the stop and after.
    """

    stack: Stack
    down_s: float
    #: SIGKILL instead of SIGTERM: JetStream gets no chance to flush
    kill: bool = False
    violations: list[str] = field(default_factory=list)

    def fault(self) -> Fault:
        how = "kill -9" if self.kill else "restart"
        return Fault(f"{how} NATS ({self.down_s:g} s down)", self.inject)

    async def inject(self, _: dict[str, str]) -> None:
        assert self.stack.nats is not None
        before = await stream_state(self.stack.bus_url)
        await asyncio.to_thread(self.stack.restart_nats, down_s=self.down_s, kill=self.kill)
        after = await stream_state(self.stack.bus_url)
        if after.messages < before.messages or after.last_sequence < before.last_sequence:
            self.violations.append(f"the event stream went back from {before} to {after}")
        if before.consumers - after.consumers:
            self.violations.append(f"durable consumers lost: {sorted(before.consumers - after.consumers)}")


def restart_postgres(stack: Stack, *, down_s: float) -> Fault:
    """Stop PostgreSQL (fast shutdown), keep it away ``down_s`` seconds, start it on the same data."""
    return Fault(
        f"restart PostgreSQL ({down_s:g} s down)", lambda _: asyncio.to_thread(stack.restart_postgres, down_s=down_s)
    )


def poison_document(name: str = "poison.eml") -> Fault:
    """A document that fails the parser on every delivery, uploaded mid-batch (``poison_email``)."""

    async def nothing(_: dict[str, str]) -> None:
        return None

    return Fault("poison document", nothing, PARSED, {name: FaultDocument(poison_email(), ends="failed")})


def poison_email() -> bytes:
    """An e-mail whose HTML body makes the parser raise a *retryable* error on every delivery.

    BeautifulSoup rejects the marked section ``<![ x`` with ``ParserRejectedMarkup``, which the
    parser does not map to ``UnreadableDocument``, so the bus retries it until ``MAX_DELIVER``.
    Stand-in for a test-only parser hook (a document that kills the parser process on each
    try): if the parser learns to refuse such markup at once, this document fails after one try.
    """
    return (
        b"From: Finance <finance@example.com>\r\n"
        b"To: Board <board@example.com>\r\n"
        b"Subject: Quarterly figures\r\n"
        b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"\r\n"
        b"<html><body><p>The quarterly figures are attached.</p><![ x</body></html>\r\n"
    )


class UploadRefused(AssertionError):
    """The gateway answered an upload with a client error, or accepted it too late."""


async def upload_until_accepted(
    client: Client, collection: str, name: str, data: bytes, *, within_s: float = 120.0
) -> tuple[str, int]:
    """The job id of the upload and the number of failed tries before it.

    Retries refused connections and 5xx answers, as a client should: the same bytes again get
    the same job (``200 unchanged``) if an earlier try was accepted after all.
    """
    deadline = time.monotonic() + within_s
    failures = 0
    while True:
        try:
            response = await client.upload(collection, name, data)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code in (200, 202):
                return str(response.json()["job_id"]), failures
            if response.status_code < 500:
                raise UploadRefused(f"upload of {name} refused: {response.status_code} {response.text[:300]}")
            last = f"{response.status_code}: {response.text[:300]}"
        failures += 1
        if time.monotonic() > deadline:
            raise UploadRefused(f"{name} not accepted within {within_s}s; last answer: {last}")
        await asyncio.sleep(0.25)


async def upload_all(client: Client, collection: str, documents: dict[str, bytes]) -> tuple[dict[str, str], int]:
    """Upload in order, each until accepted: (file name -> job id, failed tries)."""
    job_of: dict[str, str] = {}
    failures = 0
    for name, data in documents.items():
        job_of[name], failed = await upload_until_accepted(client, collection, name, data)
        failures += failed
    return job_of, failures


@dataclass
class Outcome:
    """A scenario's row, what the audit found, the dead letters of its jobs and the upload retries."""

    row: FaultRow
    audit: Audit
    job_of: dict[str, str]
    dead_letters: list[DeadLetter]
    backlog: dict[str, tuple[int, int]]
    upload_failures: int

    @property
    def problems(self) -> list[str]:
        found = list(self.audit.problems)
        found += [f"unacked: consumer {c} has {p} pending, {a} unacked" for c, (p, a) in self.backlog.items() if p or a]
        return found

    def assert_clean(self, *, dead_letters: int = 0) -> None:
        """Fail with every finding, if there is one, or if the dead letters are not ``dead_letters``."""
        problems = self.problems
        if len(self.dead_letters) != dead_letters:
            problems.append(
                f"{len(self.dead_letters)} dead letters of the batch, expected {dead_letters}: "
                + "; ".join(f"{d.stage} after {d.deliveries}: {d.reason[:200]}" for d in self.dead_letters)
            )
        assert not problems, f"{self.row.scenario}: {len(problems)} problems\n" + "\n".join(problems[:40])


def batch_timeout_s(documents: int) -> float:
    """Time a batch gets to finish after its fault: generous, so a slow machine is not a failure."""
    return 120.0 + 0.6 * documents


async def run_fault_scenario(
    client: Client,
    fault: Fault,
    *,
    collection: str,
    documents: int,
) -> Outcome:
    """Ingest ``documents`` into ``collection`` with ``fault`` injected mid-batch; audit the result.

    The fault's own documents must end as they say (``failed`` with a reason, ``cancelled``),
    every other one ``indexed``. Raises only if the batch cannot be uploaded or the fault not
    injected; what the audit finds is in the ``Outcome``, for the table first, the assertion after.
    """
    started = time.monotonic()
    batch = batch_documents(collection, documents)
    names = list(batch)
    first = {n: batch[n] for n in names[: documents // 2]}
    second = {n: batch[n] for n in names[documents // 2 :]}
    async with JobWatch(client, collection) as watch:
        job_of, failures = await upload_all(client, collection, first)
        quarter = max(1, len(first) // 4)
        triggered = await watch.wait_until(
            lambda w: not fault.after or w.count(fault.after, job_of.values()) >= quarter,
            within_s=batch_timeout_s(len(first)),
        )
        assert triggered is not None, (
            f"{fault.scenario}: the batch never got to {sorted(fault.after)}: {watch.statuses}"
        )
        fault_at = time.monotonic()
        for name, document in fault.documents.items():
            job_of[name], failed = await upload_until_accepted(client, collection, name, document.data)
            failures += failed
        uploading = asyncio.create_task(upload_all(client, collection, second))
        try:
            await fault.inject({name: job_of[name] for name in fault.documents})
        except BaseException:
            uploading.cancel()
            raise
        own = [job_of[n] for n in fault.documents]
        await watch.wait_until(lambda w: w.count(FINAL, own) == len(own), within_s=batch_timeout_s(documents))
        back_at = time.monotonic()
        later, later_failures = await uploading
        job_of.update(later)
        failures += later_failures
        done_at = await watch.wait_until(
            lambda w: w.count(FINAL, job_of.values()) == len(job_of), within_s=batch_timeout_s(documents)
        )
        first_progress = watch.first_change_after(back_at)
    recovered_at = first_progress or (back_at if done_at is not None else None)
    # observers (the gateway's version tracking) may still be applying the last events
    backlog = await settled_backlog(client.stack.bus_url)
    ends = {name: document.ends for name, document in fault.documents.items()}
    audit = await audit_batch(client, collection, job_of, ends=ends)
    await _check_answerable(client, collection, batch, job_of, audit)
    ours = set(job_of.values())
    letters = [d for d in await dead_letters(client.stack.bus_url) if d.job_id in ours]
    row = FaultRow(
        scenario=fault.scenario,
        documents=len(job_of),
        lost=len(audit.lost),
        duplicated=len(audit.duplicated),
        stuck=len(audit.stuck),
        inconsistent=len(audit.inconsistent),
        unacked=sum(p + a for p, a in backlog.values()),
        dlq=len(letters),
        upload_retries=failures,
        recovery_s=None if recovered_at is None else recovered_at - fault_at,
        all_done_s=None if done_at is None else done_at - fault_at,
        wall_s=time.monotonic() - started,
    )
    return Outcome(row, audit, job_of, letters, backlog, failures)


async def _check_answerable(
    client: Client, collection: str, batch: dict[str, bytes], job_of: dict[str, str], audit: Audit
) -> None:
    """Chat answers a question on the batch from one of its documents (the index serves searches)."""
    name = next(iter(batch))
    if audit.jobs.get(job_of[name], {}).get("status") != "indexed":
        return
    words = batch[name].decode().split("\n")[3].split()[:12]  # the first sentence of the first section
    try:
        answer = await client.chat(collection, " ".join(words))
    except httpx.HTTPError as exc:
        audit.other.append(f"chat could not answer on the batch: {exc!r}")
        return
    documents = {job["document_id"] for job in audit.jobs.values()}
    if not any(c["document_id"] in documents for c in answer["citations"]):
        audit.other.append(f"chat cited nothing of the batch: {answer['citations']!r}")
