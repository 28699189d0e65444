"""How long things took and how long they will take: stage timings, observed rates and ETAs.

**Rates.** Every ``DocParsed`` and ``IndexUpdated`` is a sample: pages per second of parsing
(``page_count / parse_seconds``), chunks per page, and chunks per second of embedding
(``chunk_count / embed_seconds``). ``progress.rates`` keeps an exponentially weighted mean of
each, per tenant and for all tenants (``*``): ``mean <- a * sample + (1 - a) * mean`` with
a = ``ALPHA``, so the last ten or so documents dominate. A tenant without samples of its own
uses the all-tenant mean.

**A job's ETA** (``eta_seconds``) is what is left of each stage divided by its rate:

    eta = (pages - pages_parsed) / parse_rate + (chunks - chunks_embedded) / embed_rate

- ``parse_rate`` is the job's own rate once it has parsed a page (pages parsed / seconds since
  its parsing started), else the tenant's mean pages/s; the parse term is 0 once parsed;
- before the parser reports chunks, ``chunks`` is estimated as pages x the mean chunks/page;
- ``embed_rate`` is the job's own rate once it has embedded a chunk, else the mean chunks/s.

It is 0 for a finished job and ``None`` (unknown) when a term cannot be computed (a queued job
whose page count nobody knows yet, no samples at all), while paused, and for failed or
cancelled jobs.

**An aggregate's ETA** (a collection or a batch) is its remaining chunks over the throughput
its backlog actually gets, contention with other work included:

    eta = remaining_chunks / (chunks embedded since the backlog's oldest run began / seconds since)

``remaining_chunks`` counts the unfinished, unpaused jobs: chunks not yet embedded where the
parser reported them, and for the rest the average chunk count of the aggregate's jobs that
are known. Before anything of the backlog is embedded, the throughput is the tenant's mean
per-document rate (pessimistic when documents are embedded side by side).

Timings and ETAs are computed when a job is read, never stored, so a rebuilt projection is
identical to the live one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from ragstream_core.proto.ragstream.v1.events_pb2 import DocParsed, IndexUpdated
from ragstream_progress.statuses import RANK

ALPHA = 0.2
PARSE_RATE = "parse_pages_per_s"
CHUNKS_PER_PAGE = "chunks_per_page"
EMBED_RATE = "embed_chunks_per_s"
ALL_TENANTS = "*"


@dataclass(frozen=True)
class Rates:
    """The observed means a tenant's estimates use; ``None`` where nothing was observed yet."""

    parse_pages_per_s: float | None = None
    chunks_per_page: float | None = None
    embed_chunks_per_s: float | None = None

    @classmethod
    def of(cls, values: dict[str, float]) -> Rates:
        return cls(values.get(PARSE_RATE), values.get(CHUNKS_PER_PAGE), values.get(EMBED_RATE))


def rate_samples(event: Message) -> dict[str, float]:
    """The rate samples ``event`` carries (none for most events)."""
    match event:
        case DocParsed() if event.page_count > 0:
            samples = {CHUNKS_PER_PAGE: event.chunk_count / event.page_count}
            if event.parse_seconds > 0:
                samples[PARSE_RATE] = event.page_count / event.parse_seconds
            return samples
        case IndexUpdated(deleted=False) if event.chunk_count > 0 and event.embed_seconds > 0:
            return {EMBED_RATE: event.chunk_count / event.embed_seconds}
    return {}


def _at(timestamps: dict[str, str], status: str) -> datetime | None:
    text = timestamps.get(status)
    return datetime.fromisoformat(text) if text else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return round((end - start).total_seconds(), 3)


def timings_of(job: dict[str, Any]) -> dict[str, float | None]:
    """Seconds each finished stage of the job's current run took (``None`` while unknown).

    Queued: uploaded (or retried) until released to the parser; parse: parsing started until
    parsed; embed: embedding started until indexed.
    """
    ts = job["timestamps"]
    released = _at(ts, "released") or _at(ts, "parsing")
    parse_start = _at(ts, "parsing") or _at(ts, "released")
    embed_start = _at(ts, "embedding") or _at(ts, "parsed")
    return {
        "queued_seconds": _seconds(_at(ts, "uploaded"), released),
        "parse_seconds": _seconds(parse_start, _at(ts, "parsed")),
        "embed_seconds": _seconds(embed_start, _at(ts, "indexed")),
    }


def _own_rate(done: int, since: datetime | None, until: datetime) -> float | None:
    elapsed = _seconds(since, until)
    return done / elapsed if done > 0 and elapsed else None


def eta_of(job: dict[str, Any], rates: Rates) -> float | None:
    """Seconds until ``job`` is indexed, by the formula of this module; ``None`` if unknown."""
    status = job["status"]
    if status in ("indexed", "deleted"):
        return 0.0
    if status in ("failed", "cancelled", "deleting") or job["paused"]:
        return None
    ts = job["timestamps"]
    parsed = RANK[status] >= RANK["parsed"]
    parse_left = 0.0
    chunks: float | None = float(job["chunks"])
    if not parsed:
        pages = job["pages"]
        parse_rate = _own_rate(job["pages_parsed"], _at(ts, "parsing"), job["updated_at"]) or rates.parse_pages_per_s
        if pages <= 0 or not parse_rate:
            return None
        parse_left = max(pages - job["pages_parsed"], 0) / parse_rate
        chunks = pages * rates.chunks_per_page if rates.chunks_per_page else None
    embed_rate = (
        _own_rate(job["chunks_embedded"], _at(ts, "embedding"), job["updated_at"]) if status == "embedding" else None
    ) or rates.embed_chunks_per_s
    if chunks is None or not embed_rate:
        return None
    embed_left: float = max(chunks - job["chunks_embedded"], 0) / embed_rate
    return round(parse_left + embed_left, 1)


@dataclass(frozen=True)
class Backlog:
    """What an aggregate query knows about the unfinished work of a collection or batch."""

    active_jobs: int  # unfinished and not paused
    paused_jobs: int
    remaining_known: int  # chunks not yet embedded, of active jobs whose chunks are known
    unknown_jobs: int  # active jobs whose chunks are not known yet
    known_jobs: int  # jobs whose chunks are known (any state but failed or cancelled)
    known_chunks: int
    since: datetime | None  # when the oldest active run began
    embedded_since: int  # chunks embedded by the aggregate's jobs since then


def chunks_per_job(backlog: Backlog) -> float | None:
    return backlog.known_chunks / backlog.known_jobs if backlog.known_jobs else None


def aggregate_eta(backlog: Backlog, rates: Rates, *, now: datetime) -> float | None:
    """Seconds until the active jobs of an aggregate are done (see this module); ``None`` if unknown."""
    if backlog.active_jobs == 0:
        return None if backlog.paused_jobs else 0.0
    remaining = float(backlog.remaining_known)
    if backlog.unknown_jobs:
        per_job = chunks_per_job(backlog)
        if per_job is None:
            return None
        remaining += backlog.unknown_jobs * per_job
    elapsed = _seconds(backlog.since, now)
    throughput = (backlog.embedded_since / elapsed if backlog.embedded_since and elapsed else None) or (
        rates.embed_chunks_per_s
    )
    if not throughput:
        return None
    return round(remaining / throughput, 1)


def estimated_chunk_percent(backlog: Backlog, embedded: int, unknown_jobs: int) -> int | None:
    """Percent of the aggregate's chunks embedded; jobs not yet parsed count with the average
    chunk count of those that are. ``None`` until some job's chunk count is known."""
    per_job = chunks_per_job(backlog)
    if per_job is None:
        return None
    total = backlog.known_chunks + unknown_jobs * per_job
    return min(100, int(100 * embedded / total)) if total > 0 else None


__all__ = [
    "ALL_TENANTS",
    "ALPHA",
    "Backlog",
    "Rates",
    "aggregate_eta",
    "estimated_chunk_percent",
    "eta_of",
    "rate_samples",
    "timings_of",
]
