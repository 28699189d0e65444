"""``ragstream ingest``: upload files (streamed from disk), follow their jobs on the progress
feed, and sum up what became of each file."""

from __future__ import annotations

import asyncio
import glob
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.table import Table

from ragstream_cli.api import Api, segment
from ragstream_cli.errors import ExitCode, Refused, UsageProblem
from ragstream_cli.feed import FINAL, job_changes
from ragstream_cli.render import format_seconds, table

#: the CLI's lanes and the gateway's (``low`` is the gateway's ``bulk``)
PRIORITIES = {"high": "high", "normal": "normal", "low": "bulk"}
#: statuses of a file that count as a failure
FAILURES = frozenset({"failed", "refused", "cancelled"})


@dataclass
class FileResult:
    """What became of one file."""

    path: Path
    size: int
    status: str = "waiting"
    stage: str | None = None
    percent: float = 0.0
    uploaded_bytes: int = 0
    document_id: str | None = None
    version: int | None = None
    job_id: str | None = None
    chunks: int | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def final(self) -> bool:
        return self.status in FINAL or self.status in ("unchanged", "refused")

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.monotonic()) - self.started

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file_name,
            "path": str(self.path),
            "size_bytes": self.size,
            "status": self.status,
            "document_id": self.document_id,
            "version": self.version,
            "job_id": self.job_id,
            "chunks": self.chunks,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "error": self.error,
        }


def expand_paths(patterns: Sequence[str]) -> list[Path]:
    """The files ``patterns`` name: files as given, directories by every file under them, globs
    (``**`` recursive) by their matches; each file once, in order. ``UsageProblem`` for a
    pattern that matches no file."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file())
        else:
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not matches:
            raise UsageProblem(f"no file matches {pattern!r}: give files, directories or glob patterns")
        for match in matches:
            found.setdefault(match.resolve(), None)
    return list(found)


class _CountingReader:
    """A file read in chunks by httpx (never whole), counting the bytes sent."""

    def __init__(self, file: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._file = file
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()


def apply_job(result: FileResult, job: dict[str, Any]) -> None:
    """Take a job's state from the feed into its file's result."""
    result.status = str(job["status"])
    result.stage = job.get("stage")
    result.percent = float(job.get("percent") or 0)
    result.chunks = (job.get("counts") or {}).get("chunks") or result.chunks
    if result.status in FINAL:
        result.finished = result.finished or time.monotonic()
        result.percent = 100.0 if result.status == "indexed" else result.percent
    error = job.get("error")
    if isinstance(error, dict) and error.get("reason"):
        result.error = f"{error.get('stage')}: {error['reason']}"


async def upload_file(
    api: Api,
    result: FileResult,
    *,
    collection: str,
    priority: str,
    batch_id: str,
    force: bool,
    on_change: Callable[[FileResult], None],
) -> None:
    """Upload one file; a refusal (4xx) is recorded in ``result``, anything else raises."""
    result.status = "uploading"
    result.started = time.monotonic()
    on_change(result)

    def sent(count: int) -> None:
        result.uploaded_bytes += count
        on_change(result)

    params = {"priority": PRIORITIES[priority], "batch_id": batch_id, "force": "true" if force else None}
    with result.path.open("rb") as file:
        reader = _CountingReader(file, sent)
        try:
            body = await api.call(
                "gateway",
                "POST",
                f"/v1/collections/{segment(collection)}/documents",
                params=params,
                files={"file": (result.file_name, reader)},
            )
        except Refused as exc:
            result.status, result.error, result.finished = "refused", str(exc), time.monotonic()
            on_change(result)
            return
    result.document_id, result.version, result.job_id = body["document_id"], body["version"], body["job_id"]
    result.details = body
    if body.get("unchanged"):
        result.status, result.chunks, result.percent = "unchanged", body.get("chunk_count"), 100.0
        result.finished = time.monotonic()
    else:
        result.status = "uploaded"
    on_change(result)


def new_batch_id() -> str:
    """A batch id of its own for one ``ingest`` (its jobs are watched and steered together)."""
    return f"cli-{uuid.uuid4().hex[:16]}"


async def check_collection(api: Api, collection: str) -> None:
    """Refuse a collection id the gateway would refuse, before any upload (a missing collection
    is fine: the first upload creates it)."""
    try:
        await api.call("gateway", "GET", f"/v1/collections/{segment(collection)}")
    except Refused as exc:
        if exc.status == 404:
            return
        if exc.status in (400, 422):
            raise UsageProblem(f"--collection: {exc}") from None
        raise


async def ingest(
    api: Api,
    paths: Sequence[Path],
    *,
    collection: str,
    priority: str = "normal",
    wait: bool = False,
    force: bool = False,
    parallel: int = 4,
    timeout_s: float | None = None,
    on_change: Callable[[FileResult], None] = lambda _: None,
    batch_id: str | None = None,
) -> tuple[str, list[FileResult]]:
    """Upload ``paths`` as one batch (``parallel`` at a time); with ``wait`` follow their jobs
    until each is final or ``timeout_s`` passes. Returns the batch id and each file's result."""
    await check_collection(api, collection)
    batch_id = batch_id or new_batch_id()
    results = [FileResult(path=p, size=p.stat().st_size) for p in paths]
    for result in results:
        on_change(result)
    slots = asyncio.Semaphore(parallel)
    by_job: dict[str, FileResult] = {}
    early: dict[str, dict[str, Any]] = {}  # changes of jobs whose upload answer is not in yet
    uploads_done = False
    all_done = asyncio.Event()

    def check_done() -> None:
        if uploads_done and all(r.final for r in by_job.values()):
            all_done.set()

    def changed(job: dict[str, Any]) -> None:
        result = by_job.get(job["job_id"])
        if result is None:
            early[job["job_id"]] = job
        elif result.status not in FINAL:
            apply_job(result, job)
            on_change(result)
            check_done()

    async def one(result: FileResult) -> None:
        async with slots:
            await upload_file(
                api,
                result,
                collection=collection,
                priority=priority,
                batch_id=batch_id,
                force=force,
                on_change=on_change,
            )
        if wait and result.job_id and result.status == "uploaded":
            by_job[result.job_id] = result
            if result.job_id in early:
                changed(early.pop(result.job_id))

    async def follow() -> None:
        async for job in job_changes(api, batch_id=batch_id):
            changed(job)

    follower = asyncio.create_task(follow()) if wait else None
    try:
        await asyncio.gather(*(one(r) for r in results))
        if follower is None:
            return batch_id, results
        uploads_done = True
        check_done()
        finished = asyncio.create_task(all_done.wait())
        try:
            await asyncio.wait({follower, finished}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.cancel()
        if follower.done():
            follower.result()  # the feed's error (unreachable), if it ended
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    return batch_id, results


def summary_table(results: Sequence[FileResult], *, title: str) -> Table:
    """File, status, version, chunks, time, error (and the document) of each file."""
    rows = [
        (r.file_name, r.status, r.version, r.chunks, format_seconds(r.seconds), r.error, r.document_id) for r in results
    ]
    columns = ("file", "status", "version", "chunks", "time", "error", "document")
    return table(title, columns, rows, status_column=1, droppable=("document",))


def ingest_exit_code(results: Sequence[FileResult], *, wait: bool) -> ExitCode:
    """1 when a file failed, was refused or cancelled, or (waiting) is not done; else 0."""
    if any(r.status in FAILURES for r in results):
        return ExitCode.FAILED
    if wait and any(not r.final for r in results):
        return ExitCode.FAILED
    return ExitCode.OK


def counts(results: Sequence[FileResult]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for result in results:
        tally[result.status] = tally.get(result.status, 0) + 1
    return tally
