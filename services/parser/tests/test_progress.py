"""Progress told from a worker thread becomes ``StageProgress`` events, in order and spaced out."""

from __future__ import annotations

import asyncio
import time
import uuid

from ragstream_core.proto.ragstream.v1.events_pb2 import EventMeta, StageProgress
from ragstream_parser.progress import Progress, ProgressPublisher


class Recorder:
    """An ``EventPublisher.publish`` that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[StageProgress] = []

    async def publish(self, event: StageProgress) -> None:
        self.events.append(event)


def new_meta() -> EventMeta:
    return EventMeta(job_id=str(uuid.uuid4()), tenant_id="t", document_id="d", version=1, file_name="f.pdf")


def work_for(seconds: float, report: Progress) -> int:
    """Report ever more pages of 100 000 until ``seconds`` have passed; the last page reported."""
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        done += 1
        report(done, 100_000, "pages")
    return done


async def test_reports_from_a_worker_thread_are_published_in_order_at_most_once_per_interval() -> None:
    recorder = Recorder()
    meta = new_meta()

    async with ProgressPublisher(recorder.publish, meta, stage="parsing", attempt=2, interval_s=0.05) as progress:
        started = time.monotonic()
        last = await asyncio.to_thread(work_for, 0.4, progress.report)
        elapsed = time.monotonic() - started

    done = [event.done for event in recorder.events]
    assert 3 <= len(done) <= elapsed / 0.05 + 1
    assert done == sorted(set(done))
    assert done[0] > 0
    assert done[-1] <= last
    assert {(e.stage, e.total, e.unit, e.attempt) for e in recorder.events} == {("parsing", 100_000, "pages", 2)}
    assert {e.meta.job_id for e in recorder.events} == {meta.job_id}


async def test_work_shorter_than_the_interval_publishes_nothing() -> None:
    recorder = Recorder()

    async with ProgressPublisher(recorder.publish, new_meta(), stage="parsing", attempt=1) as progress:
        for done in range(1, 11):
            progress.report(done, 10, "pages")

    assert recorder.events == []


async def test_reports_after_the_work_ended_are_ignored() -> None:
    recorder = Recorder()

    async with ProgressPublisher(recorder.publish, new_meta(), stage="parsing", attempt=1, interval_s=0) as progress:
        progress.report(1, 3, "pages")
    progress.report(2, 3, "pages")

    assert [event.done for event in recorder.events] == [1]
