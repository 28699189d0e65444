"""Scheduling, runs and steering: released jobs, page progress, retries, pause, priority, cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import JobEvents, NewJob


async def state_of(job: JobEvents) -> dict[str, Any]:
    state = await job.state()
    assert state is not None
    return state


async def test_a_released_job_sits_between_uploaded_and_parsing(new_job: NewJob) -> None:
    job = new_job()
    seen: list[tuple[str, str, int]] = []

    for event in (job.uploaded(), job.released(), job.parsing()):
        await job.apply(event)
        state = await state_of(job)
        seen.append((state["status"], state["stage"], state["percent"]))

    assert seen == [("uploaded", "queued", 0), ("released", "queued", 5), ("parsing", "parsing", 10)]


async def test_a_late_release_does_not_roll_a_parsing_job_back(new_job: NewJob) -> None:
    job = new_job()
    released = job.released()
    await job.apply(job.uploaded(), job.parsing())

    await job.apply(released)

    state = await state_of(job)
    assert (state["status"], state["percent"]) == ("parsing", 10)
    assert set(state["timestamps"]) == {"uploaded", "released", "parsing"}


async def test_parsing_percent_follows_pages_from_10_to_40(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.released(), job.parsing(done=0, total=8))
    percents = []

    for done in (2, 4, 8):
        await job.apply(job.parsing(done=done, total=8))
        state = await state_of(job)
        percents.append((state["percent"], state["pages_parsed"], state["pages"]))

    assert percents == [(17, 2, 8), (25, 4, 8), (40, 8, 8)]


async def test_batch_and_priority_of_the_upload_are_kept(new_job: NewJob) -> None:
    job = new_job(batch_id="batch-1", priority="bulk")

    await job.apply(job.uploaded())

    state = await state_of(job)
    assert (state["batch_id"], state["priority"], state["retry"], state["paused"]) == ("batch-1", "bulk", 0, False)


async def test_a_failure_keeps_its_hint(new_job: NewJob) -> None:
    job = new_job()

    await job.apply(job.uploaded(), job.failed(stage="parsing", reason="encrypted", hint="upload an unencrypted PDF"))

    state = await state_of(job)
    assert (state["status"], state["stage"], state["error_hint"]) == ("failed", "parsing", "upload an unencrypted PDF")


async def test_a_retried_job_is_queued_again_without_its_error(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.released(), job.parsing(attempt=3))
    await job.apply(job.failed(stage="parsing", reason="parser crashed", attempts=3, hint="try again"))
    job.retry = 1

    await job.apply(job.control("retried"))

    state = await state_of(job)
    assert (state["status"], state["stage"], state["retry"], state["percent"], state["attempts"]) == (
        "uploaded",
        "queued",
        1,
        0,
        1,
    )
    assert (state["error_stage"], state["error_reason"], state["error_hint"]) == (None, None, None)
    assert list(state["timestamps"]) == ["uploaded"]


async def test_a_retried_run_goes_to_indexed_with_the_history_of_both_runs(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.released(), job.failed(stage="parsing", reason="parser crashed"))
    created = (await state_of(job))["created_at"]
    job.retry = 1

    await job.apply(job.control("retried"), job.released())
    await job.run_to_indexed()

    state = await state_of(job)
    assert (state["status"], state["retry"], state["chunks_embedded"]) == ("indexed", 1, 10)
    assert state["created_at"] == created
    assert [(h["status"], h["retry"]) for h in state["history"][:4]] == [
        ("uploaded", 0),
        ("released", 0),
        ("failed", 0),
        ("retried", 1),
    ]
    assert state["history"][-1]["event_id"] == f"{job.job_id}:r1:indexed"


async def test_an_event_of_an_older_run_changes_nothing_but_the_history(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.released(), job.parsing())
    late_failure = job.failed(stage="parsing", reason="the old run finally gave up")
    job.retry = 1
    await job.apply(job.control("retried"))
    before = await state_of(job)

    applied = await job.apply(late_failure)

    after = await state_of(job)
    assert applied == [True]
    assert {k: v for k, v in after.items() if k != "history"} == {k: v for k, v in before.items() if k != "history"}
    assert after["history"][-1]["status"] == "failed"


async def test_attempts_are_counted_per_run(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.parsing(attempt=4), job.failed(stage="parsing", reason="x", attempts=5))
    job.retry = 1

    await job.apply(job.control("retried"), job.released(), job.parsing(attempt=2))

    assert (await state_of(job))["attempts"] == 2


async def test_a_paused_job_keeps_its_status_and_percent(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.released(), job.parsing(done=4, total=8))

    await job.apply(job.control("paused"))

    paused = await state_of(job)
    await job.apply(job.control("resumed"))
    resumed = await state_of(job)
    assert (paused["paused"], paused["status"], paused["percent"]) == (True, "parsing", 25)
    assert (resumed["paused"], resumed["status"]) == (False, "parsing")
    assert [h["status"] for h in resumed["history"]][-2:] == ["paused", "resumed"]


async def test_pause_and_resume_applied_out_of_order_follow_stream_order(new_job: NewJob) -> None:
    job = new_job()
    await job.apply_at(1, job.uploaded())
    paused, resumed = job.control("paused"), job.control("resumed")

    await job.apply_at(3, resumed)
    await job.apply_at(2, paused)

    assert (await state_of(job))["paused"] is False


async def test_a_paused_run_stopped_by_a_stage_waits_queued_as_the_next_run(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.released(), job.parsing(), job.control("paused"))

    await job.apply(job.control("requeued", actor="parser"))

    state = await state_of(job)
    assert (state["status"], state["retry"], state["paused"]) == ("uploaded", 1, True)


async def test_a_retried_job_is_no_longer_paused(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.control("paused"), job.failed(stage="queued", reason="x"))
    job.retry = 1

    await job.apply(job.control("retried"))

    assert (await state_of(job))["paused"] is False


async def test_prioritizing_changes_the_priority_later_stage_events_do_not(new_job: NewJob) -> None:
    job = new_job(priority="bulk")
    await job.apply(job.uploaded(), job.released())
    stale_progress = job.parsing()  # the parser copies the priority of the release
    job.priority = "high"

    await job.apply(job.control("prioritized"), stale_progress)

    state = await state_of(job)
    assert state["priority"] == "high"
    assert state["history"][-2]["detail"]["priority"] == "high"


async def test_a_cancel_order_ends_the_job_in_the_stage_it_was_in(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.released(), job.parsing(done=2, total=4))

    await job.apply(job.control("cancelled", actor="bob", reason="wrong file"))
    await job.apply(job.parsed(pages=4, chunks=10))  # the stage was already past its boundary

    state = await state_of(job)
    assert (state["status"], state["stage"], state["error_stage"]) == ("cancelled", "parsing", "parsing")
    assert state["error_reason"] == "cancelled by bob: wrong file"
    assert state["percent"] == 25


async def test_a_control_action_this_version_does_not_know_is_only_history(new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded())
    before = await state_of(job)

    await job.apply(job.control("teleported"))

    after = await state_of(job)
    assert (after["status"], after["paused"], after["retry"]) == (before["status"], before["paused"], 0)
    assert after["history"][-1]["status"] == "teleported"
