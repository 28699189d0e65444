"""Projecting events into job state: forward-only status, counts, timestamps, history, applied once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ragstream_core.bus import Delivery
from ragstream_core.events import SUBJECT_OF
from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded
from ragstream_progress.handlers import project_event
from ragstream_progress.projection import JobStore

if TYPE_CHECKING:
    from conftest import NewJob


@dataclass
class Ports:
    jobs: JobStore


async def test_a_job_moves_through_every_stage_to_indexed(new_job: NewJob) -> None:
    job = new_job()
    steps = [
        job.uploaded(),
        job.parsing(),
        job.parsed(pages=4, chunks=10),
        job.embedding(done=5, total=10),
        job.indexed(chunks=10),
    ]
    seen: list[tuple[str, int]] = []

    for event in steps:
        await job.apply(event)
        state = await job.state()
        assert state is not None
        seen.append((state["status"], state["percent"]))

    assert seen == [("uploaded", 0), ("parsing", 10), ("parsed", 40), ("embedding", 67), ("indexed", 100)]


async def test_counts_follow_pages_chunks_and_embedded_chunks(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.parsing(), job.parsed(pages=4, chunks=10), job.embedding(done=6, total=10))

    state = await job.state()

    assert state is not None
    assert (state["pages"], state["chunks"], state["chunks_embedded"]) == (4, 10, 6)


async def test_parsing_progress_in_rows_or_items_moves_the_percent_but_counts_no_pages(new_job: NewJob) -> None:
    table, page_less = new_job(), new_job()
    await table.apply(table.uploaded(), table.parsing(done=50, total=100, unit="rows"))
    await page_less.apply(page_less.uploaded(), page_less.parsing(done=381, total=381, unit="items"))
    await page_less.apply(page_less.parsed(pages=0, chunks=116))

    rows, items = await table.state(), await page_less.state()

    assert rows is not None
    assert items is not None
    assert (rows["percent"], rows["pages"], rows["pages_parsed"]) == (25, 0, 0)
    assert (items["pages"], items["chunks"]) == (0, 116)


async def test_indexed_job_has_every_chunk_embedded(new_job: NewJob) -> None:
    job = new_job()

    await job.run_to_indexed()

    state = await job.state()
    assert state is not None
    assert (state["status"], state["percent"], state["pages"], state["chunks"], state["chunks_embedded"]) == (
        "indexed",
        100,
        4,
        10,
        10,
    )


async def test_each_status_keeps_the_time_it_was_reached(new_job: NewJob) -> None:
    job = new_job()
    uploaded = job.uploaded()
    between = [job.parsing(), job.parsed(pages=4, chunks=10), job.embedding(done=10, total=10)]
    indexed = job.indexed(chunks=10)
    await job.apply(uploaded, *between, indexed)

    state = await job.state()

    assert state is not None
    stamps = {status: datetime.fromisoformat(at) for status, at in state["timestamps"].items()}
    assert set(stamps) == {"uploaded", "parsing", "parsed", "embedding", "indexed"}
    assert stamps["uploaded"] == uploaded.meta.occurred_at.ToDatetime(tzinfo=UTC)
    assert stamps["indexed"] == indexed.meta.occurred_at.ToDatetime(tzinfo=UTC)
    assert stamps["uploaded"] <= stamps["parsing"] <= stamps["parsed"] <= stamps["embedding"] <= stamps["indexed"]
    assert state["created_at"] == stamps["uploaded"]
    assert state["updated_at"] == stamps["indexed"]


async def test_history_lists_every_applied_event_in_stream_order(new_job: NewJob) -> None:
    job = new_job()
    events = [job.uploaded(), job.parsing(), job.parsed(pages=4, chunks=10), job.embedding(done=10, total=10)]
    events.append(job.indexed(chunks=10))
    await job.apply(*events)

    state = await job.state()

    assert state is not None
    assert [(h["status"], h["event_id"], h["stream_sequence"]) for h in state["history"]] == [
        ("uploaded", f"{job.job_id}:uploaded", 1),
        ("parsing", f"{job.job_id}:parsing:0:a1", 2),
        ("parsed", f"{job.job_id}:parsed", 3),
        ("embedding", f"{job.job_id}:embedding:10:a1", 4),
        ("indexed", f"{job.job_id}:indexed", 5),
    ]
    assert state["history"][3]["detail"] == {"done": 10, "total": 10, "attempt": 1}
    assert {h["trace_id"] for h in state["history"]} == {job.trace_id}


async def test_applying_the_same_event_twice_returns_false_and_changes_nothing(new_job: NewJob) -> None:
    job = new_job()
    parsed = job.parsed(pages=4, chunks=10)
    await job.apply(job.uploaded(), job.parsing(), parsed)
    before = await job.state()

    again = await job.apply(parsed)

    assert again == [False]
    assert await job.state() == before


async def test_redelivered_event_through_the_handler_is_applied_once(new_job: NewJob) -> None:
    job = new_job()
    uploaded = job.uploaded()

    for attempt in (1, 2):
        await project_event(uploaded, Delivery(attempt, 7, SUBJECT_OF[DocUploaded]), Ports(job.store))

    state = await job.state()
    assert state is not None
    assert [h["stream_sequence"] for h in state["history"]] == [7]


async def test_late_parsing_event_does_not_roll_an_indexed_job_back(new_job: NewJob) -> None:
    job = new_job()
    await job.run_to_indexed()
    before = await job.state()
    assert before is not None

    applied = await job.apply(job.parsing(done=2, total=4))

    state = await job.state()
    assert applied == [True]
    assert state is not None
    assert (state["status"], state["percent"], state["chunks_embedded"]) == ("indexed", 100, 10)
    assert state["history"][-1]["status"] == "parsing"


async def test_embedding_progress_arriving_out_of_order_never_lowers_percent(new_job: NewJob) -> None:
    job = new_job()
    later, earlier = job.embedding(done=8, total=10), job.embedding(done=2, total=10)
    await job.apply(job.uploaded(), job.parsed(pages=4, chunks=10), later)

    await job.apply(earlier)

    state = await job.state()
    assert state is not None
    assert (state["percent"], state["chunks_embedded"]) == (84, 8)


async def test_failed_job_records_stage_reason_and_attempts(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.parsing())

    await job.apply(job.failed(stage="parsing", reason="not a PDF after all", attempts=3))

    state = await job.state()
    assert state is not None
    assert (state["status"], state["error_stage"], state["error_reason"], state["attempts"]) == (
        "failed",
        "parsing",
        "not a PDF after all",
        3,
    )
    assert state["percent"] == 10
    assert "failed" in state["timestamps"]


async def test_failed_job_stays_failed_when_a_late_stage_event_arrives(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.failed(stage="parsing", reason="unreadable"))

    await job.apply(job.parsed(pages=4, chunks=10))

    state = await job.state()
    assert state is not None
    assert (state["status"], state["error_stage"]) == ("failed", "parsing")


async def test_job_of_another_tenant_is_not_visible(new_job: NewJob) -> None:
    job = new_job(tenant_id="tenant-a")
    await job.apply(job.uploaded())

    assert await job.store.get("tenant-b", job.job_id) is None


async def test_a_retried_stage_counts_its_attempt(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.parsing(attempt=1), job.parsing(attempt=2))

    state = await job.state()

    assert state is not None
    assert state["attempts"] == 2
    assert [h["status"] for h in state["history"]] == ["uploaded", "parsing", "parsing"]
