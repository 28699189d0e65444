"""Timings and ETAs: from the timestamps, the job's own rates and the tenant's observed rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from ragstream_devstack.testing import new_id
from ragstream_progress.estimates import Backlog, Rates, aggregate_eta, eta_of, timings_of

if TYPE_CHECKING:
    from conftest import NewJob

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job_row(status: str, **fields: Any) -> dict[str, Any]:
    """A projected job as the store reads it."""
    row: dict[str, Any] = {
        "status": status,
        "paused": False,
        "pages": 0,
        "pages_parsed": 0,
        "chunks": 0,
        "chunks_embedded": 0,
        "timestamps": {},
        "updated_at": T0,
    }
    return {**row, **fields}


RATES = Rates(parse_pages_per_s=2.0, chunks_per_page=3.0, embed_chunks_per_s=10.0)


def test_eta_of_a_parsing_job_uses_its_own_page_rate_and_estimated_chunks() -> None:
    # 4 of 10 pages in 8 s: 0.5 pages/s -> 6 pages left = 12 s; 10 pages x 3 chunks / 10 per s = 3 s
    job = job_row("parsing", pages=10, pages_parsed=4, timestamps={"parsing": T0.isoformat()}, updated_at=at(8))

    assert eta_of(job, RATES) == 15.0


def test_eta_of_a_parsing_job_without_pages_done_uses_the_tenant_page_rate() -> None:
    job = job_row("parsing", pages=10, timestamps={"parsing": T0.isoformat()}, updated_at=at(1))

    assert eta_of(job, RATES) == 5.0 + 3.0


def test_eta_of_an_embedding_job_uses_its_own_chunk_rate() -> None:
    # 20 of 100 chunks in 4 s: 5 chunks/s -> 80 left = 16 s
    job = job_row(
        "embedding", chunks=100, chunks_embedded=20, timestamps={"embedding": T0.isoformat()}, updated_at=at(4)
    )

    assert eta_of(job, RATES) == 16.0


def test_eta_of_a_parsed_job_uses_the_tenant_chunk_rate() -> None:
    assert eta_of(job_row("parsed", pages=3, pages_parsed=3, chunks=50), RATES) == 5.0


@pytest.mark.parametrize(
    ("job", "rates"),
    [
        (job_row("released"), RATES),  # nobody knows its pages yet
        (job_row("parsing", pages=10), Rates()),  # nothing observed
        (job_row("parsed", chunks=50), Rates(parse_pages_per_s=2.0)),  # no embedding rate
        (job_row("embedding", chunks=50, paused=True), RATES),
        (job_row("failed", chunks=50), RATES),
        (job_row("cancelled"), RATES),
    ],
)
def test_eta_is_unknown_without_the_numbers_it_needs(job: dict[str, Any], rates: Rates) -> None:
    assert eta_of(job, rates) is None


def test_eta_of_an_indexed_job_is_zero() -> None:
    assert eta_of(job_row("indexed", chunks=50, chunks_embedded=50), Rates()) == 0.0


def test_timings_measure_each_finished_stage_of_the_run() -> None:
    stamps = {"uploaded": at(0), "released": at(5), "parsing": at(6), "parsed": at(9.5), "embedding": at(10)}
    stamps["indexed"] = at(30)
    job = job_row("indexed", timestamps={k: v.isoformat() for k, v in stamps.items()})

    assert timings_of(job) == {"queued_seconds": 5.0, "parse_seconds": 3.5, "embed_seconds": 20.0}


def test_timings_of_a_queued_job_are_unknown() -> None:
    job = job_row("uploaded", timestamps={"uploaded": T0.isoformat()})

    assert timings_of(job) == {"queued_seconds": None, "parse_seconds": None, "embed_seconds": None}


def backlog(**fields: Any) -> Backlog:
    values: dict[str, Any] = {
        "active_jobs": 0,
        "paused_jobs": 0,
        "remaining_known": 0,
        "unknown_jobs": 0,
        "known_jobs": 0,
        "known_chunks": 0,
        "since": None,
        "embedded_since": 0,
    }
    return Backlog(**{**values, **fields})


def test_aggregate_eta_is_remaining_chunks_over_observed_throughput() -> None:
    # 2 jobs known (100 chunks), 30 left of them, 2 unknown jobs ~ 50 each: 130 chunks left;
    # 65 chunks embedded in the 13 s since the backlog began: 5 chunks/s -> 26 s
    work = backlog(
        active_jobs=3, remaining_known=30, unknown_jobs=2, known_jobs=2, known_chunks=100, since=T0, embedded_since=65
    )

    assert aggregate_eta(work, RATES, now=at(13)) == 26.0


def test_aggregate_eta_before_anything_was_embedded_uses_the_tenant_rate() -> None:
    work = backlog(active_jobs=1, remaining_known=40, known_jobs=1, known_chunks=40, since=T0)

    assert aggregate_eta(work, RATES, now=at(13)) == 4.0


def test_aggregate_eta_of_finished_work_is_zero_and_of_paused_work_unknown() -> None:
    assert aggregate_eta(backlog(), Rates(), now=T0) == 0.0
    assert aggregate_eta(backlog(paused_jobs=1), RATES, now=T0) is None


async def test_observed_rates_are_kept_per_tenant_as_moving_averages(new_job: NewJob) -> None:
    tenant = new_id("tenant")
    first, second = new_job(tenant_id=tenant), new_job(tenant_id=tenant)
    await first.apply(first.parsed(pages=10, chunks=20, seconds=5.0), first.indexed(chunks=20, seconds=2.0))

    await second.apply(second.parsed(pages=10, chunks=40, seconds=10.0), second.indexed(chunks=40, seconds=1.0))

    async with first.store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT metric, value, samples FROM progress.rates WHERE tenant_id = %s ORDER BY metric", (tenant,)
        )
        rows = await cur.fetchall()
    # the second sample moves each mean by a fifth of the way
    assert [(metric, round(value, 3), samples) for metric, value, samples in rows] == [
        ("chunks_per_page", 2.4, 2),  # 2 then 4
        ("embed_chunks_per_s", 16.0, 2),  # 10 then 40
        ("parse_pages_per_s", 1.8, 2),  # 2 then 1
    ]


async def test_a_job_read_from_the_store_carries_its_eta_and_timings(new_job: NewJob) -> None:
    tenant = new_id("tenant")
    earlier = new_job(tenant_id=tenant)
    await earlier.apply(earlier.parsed(pages=2, chunks=10, seconds=1.0), earlier.indexed(chunks=10, seconds=1.0))
    job = new_job(tenant_id=tenant)
    job.at = T0
    await job.apply(job.uploaded())
    job.at = at(2)
    await job.apply(job.released())
    job.at = at(3)
    await job.apply(job.parsing(done=0, total=4))
    job.at = at(5)

    await job.apply(job.parsing(done=2, total=4))

    state = await job.state()
    assert state is not None
    # 2 pages left at 1 page/s; 4 pages x 5 chunks/page at 10 chunks/s
    assert state["eta_seconds"] == 2.0 + 2.0
    assert state["timings"] == {"queued_seconds": 2.0, "parse_seconds": None, "embed_seconds": None}
