"""The progress REST API: a job's public shape, filters, readable 404s and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import NewJob


async def test_failed_job_is_served_with_status_error_counts_timestamps_and_history(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    job = new_job()
    await job.apply(job.uploaded(), job.parsing(), job.failed(stage="parsing", reason="not a PDF after all"))

    response = await client.get(f"/v1/jobs/{job.job_id}")

    assert response.status_code == 200
    body = response.json()
    assert (body["job_id"], body["collection_id"], body["document_id"], body["version"], body["file_name"]) == (
        job.job_id,
        collection_id,
        job.document_id,
        1,
        "duck.md",
    )
    assert (body["status"], body["percent"]) == ("failed", 10)
    assert body["counts"] == {"pages": 0, "pages_parsed": 0, "chunks": 0, "chunks_embedded": 0}
    assert body["error"] == {"stage": "parsing", "reason": "not a PDF after all", "hint": None}
    assert set(body["timestamps"]) == {"uploaded", "parsing", "failed"}
    assert [h["status"] for h in body["history"]] == ["uploaded", "parsing", "failed"]
    assert body["history"][-1]["event_id"] == f"{job.job_id}:failed:parsing"
    assert body["trace_id"] == job.trace_id
    assert datetime.fromisoformat(body["created_at"]) <= datetime.fromisoformat(body["updated_at"])


async def test_indexed_job_is_served_complete_and_without_error(client: httpx.AsyncClient, new_job: NewJob) -> None:
    job = new_job()
    await job.run_to_indexed()

    body = (await client.get(f"/v1/jobs/{job.job_id}")).json()

    assert (body["status"], body["percent"], body["error"]) == ("indexed", 100, None)
    assert body["counts"] == {"pages": 4, "pages_parsed": 4, "chunks": 10, "chunks_embedded": 10}
    assert [h["status"] for h in body["history"]] == ["uploaded", "parsing", "parsed", "embedding", "indexed"]


async def test_unknown_job_is_404_with_a_readable_detail(client: httpx.AsyncClient) -> None:
    missing = new_id("job")

    response = await client.get(f"/v1/jobs/{missing}")

    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"
    assert response.json()["detail"] == f"job {missing!r} is not known (yet): the upload may still be on its way"


async def test_job_of_tenant_a_is_404_for_tenant_b(client: httpx.AsyncClient, new_job: NewJob) -> None:
    tenant_a, tenant_b = new_id("tenant"), new_id("tenant")
    job = new_job(tenant_id=tenant_a)
    await job.apply(job.uploaded())

    as_b = await client.get(f"/v1/jobs/{job.job_id}", headers={"X-Tenant-Id": tenant_b})
    as_a = await client.get(f"/v1/jobs/{job.job_id}", headers={"X-Tenant-Id": tenant_a})

    assert as_b.status_code == 404
    assert as_a.status_code == 200


async def test_jobs_are_filtered_by_collection_and_status(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    indexed, failed, parsing = new_job(), new_job(), new_job()
    elsewhere = new_job(collection_id=new_id("col"))
    await indexed.run_to_indexed()
    await failed.apply(failed.uploaded(), failed.failed(stage="parsing", reason="unreadable"))
    await parsing.apply(parsing.uploaded(), parsing.parsing())
    await elsewhere.run_to_indexed()

    in_collection = await client.get("/v1/jobs", params={"collection_id": collection_id})
    indexed_only = await client.get("/v1/jobs", params={"collection_id": collection_id, "status": "indexed"})

    assert {j["job_id"] for j in in_collection.json()["jobs"]} == {indexed.job_id, failed.job_id, parsing.job_id}
    assert [j["job_id"] for j in indexed_only.json()["jobs"]] == [indexed.job_id]


async def test_job_list_is_newest_first_and_omits_history(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    older, newer = new_job(), new_job()
    await older.apply(older.uploaded())
    await newer.apply(newer.uploaded())

    listed = (await client.get("/v1/jobs", params={"collection_id": collection_id})).json()["jobs"]

    assert [j["job_id"] for j in listed] == [newer.job_id, older.job_id]
    assert all("history" not in j for j in listed)


async def test_job_list_shows_only_the_callers_tenant(client: httpx.AsyncClient, new_job: NewJob) -> None:
    collection = new_id("col")
    mine = new_job(tenant_id=new_id("tenant"), collection_id=collection)
    theirs = new_job(tenant_id=new_id("tenant"), collection_id=collection)
    await mine.apply(mine.uploaded())
    await theirs.apply(theirs.uploaded())

    response = await client.get(
        "/v1/jobs", params={"collection_id": collection}, headers={"X-Tenant-Id": mine.tenant_id}
    )

    assert [j["job_id"] for j in response.json()["jobs"]] == [mine.job_id]


async def test_job_list_limit_out_of_range_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs", params={"limit": 0})

    assert response.status_code == 422


async def test_a_job_is_served_with_batch_priority_stage_eta_and_timings(
    client: httpx.AsyncClient, new_job: NewJob
) -> None:
    job = new_job(batch_id=new_id("batch"), priority="high")
    await job.run_to_indexed()

    body = (await client.get(f"/v1/jobs/{job.job_id}")).json()

    assert (body["batch_id"], body["priority"], body["paused"], body["retry"]) == (job.batch_id, "high", False, 0)
    assert (body["stage"], body["eta_seconds"]) == ("indexed", 0.0)
    assert set(body["timings"]) == {"queued_seconds", "parse_seconds", "embed_seconds"}
    assert body["timings"]["embed_seconds"] >= 0
    assert [h["retry"] for h in body["history"]] == [0] * 5


async def test_a_job_without_batch_has_batch_id_null(client: httpx.AsyncClient, new_job: NewJob) -> None:
    job = new_job()
    await job.apply(job.uploaded())

    assert (await client.get(f"/v1/jobs/{job.job_id}")).json()["batch_id"] is None


async def test_jobs_are_filtered_by_a_list_of_statuses(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    failed, cancelled, queued = new_job(), new_job(), new_job()
    await failed.apply(failed.uploaded(), failed.failed(stage="parsing", reason="unreadable"))
    await cancelled.apply(cancelled.uploaded(), cancelled.control("cancelled"))
    await queued.apply(queued.uploaded())

    listed = await client.get("/v1/jobs", params={"collection_id": collection_id, "status": "failed,cancelled"})

    assert {j["job_id"] for j in listed.json()["jobs"]} == {failed.job_id, cancelled.job_id}


async def test_an_unknown_status_is_400_naming_the_known_ones(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs", params={"status": "indexed,finished"})

    assert response.status_code == 400
    assert response.json()["detail"].startswith("unknown status 'finished'; known: cancelled, deleted, deleting,")


async def test_jobs_are_filtered_by_stage_including_where_failed_jobs_stopped(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    parsing, failed_parsing, embedding, queued = new_job(), new_job(), new_job(), new_job()
    await parsing.apply(parsing.uploaded(), parsing.parsing())
    await failed_parsing.apply(failed_parsing.uploaded(), failed_parsing.failed(stage="parsing", reason="x"))
    await embedding.apply(embedding.uploaded(), embedding.parsed(pages=1, chunks=2))
    await queued.apply(queued.uploaded(), queued.released())

    def ids(response: httpx.Response) -> set[str]:
        return {j["job_id"] for j in response.json()["jobs"]}

    in_parsing = await client.get("/v1/jobs", params={"collection_id": collection_id, "stage": "parsing"})
    in_queue = await client.get("/v1/jobs", params={"collection_id": collection_id, "stage": "queued"})

    assert ids(in_parsing) == {parsing.job_id, failed_parsing.job_id}
    assert ids(in_queue) == {queued.job_id}


async def test_jobs_are_filtered_by_batch_and_document(client: httpx.AsyncClient, new_job: NewJob) -> None:
    batch = new_id("batch")
    in_batch, other = new_job(batch_id=batch), new_job()
    await in_batch.apply(in_batch.uploaded())
    await other.apply(other.uploaded())

    by_batch = await client.get("/v1/jobs", params={"batch_id": batch})
    by_document = await client.get("/v1/jobs", params={"document_id": other.document_id})

    assert [j["job_id"] for j in by_batch.json()["jobs"]] == [in_batch.job_id]
    assert [j["job_id"] for j in by_document.json()["jobs"]] == [other.job_id]


async def test_jobs_are_filtered_by_creation_time(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    early, middle, late = new_job(), new_job(), new_job()
    for hours, job in ((0, early), (1, middle), (2, late)):
        job.at = t0 + timedelta(hours=hours)
        await job.apply(job.uploaded())

    response = await client.get(
        "/v1/jobs",
        params={
            "collection_id": collection_id,
            "created_after": (t0 + timedelta(minutes=30)).isoformat(),
            "created_before": (t0 + timedelta(minutes=90)).isoformat(),
        },
    )

    assert [j["job_id"] for j in response.json()["jobs"]] == [middle.job_id]


async def test_cursor_pages_through_every_job_once_newest_first(
    client: httpx.AsyncClient, new_job: NewJob, collection_id: str
) -> None:
    made = [new_job() for _ in range(7)]
    same_time = datetime(2026, 11, 1, tzinfo=UTC)
    for job in made[:3]:  # created at the same instant: job_id breaks the tie
        job.at = same_time
    for job in made:
        await job.apply(job.uploaded())
    pages: list[list[str]] = []
    cursor: str | None = None

    while True:
        params = {"collection_id": collection_id, "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/jobs", params=params)).json()
        pages.append([j["job_id"] for j in body["jobs"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        if len(pages) == 1:  # a job created meanwhile comes before the cursor: paging goes on unchanged
            newcomer = new_job()
            await newcomer.apply(newcomer.uploaded())

    newest_first = [j.job_id for j in reversed(made[3:])] + sorted((j.job_id for j in made[:3]), reverse=True)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [job_id for page in pages for job_id in page] == newest_first


async def test_the_last_page_has_no_next_cursor(client: httpx.AsyncClient, new_job: NewJob, collection_id: str) -> None:
    job = new_job()
    await job.apply(job.uploaded())

    body = (await client.get("/v1/jobs", params={"collection_id": collection_id, "limit": 1})).json()

    assert ([j["job_id"] for j in body["jobs"]], body["next_cursor"]) == ([job.job_id], None)


async def test_a_cursor_this_api_did_not_give_out_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs", params={"cursor": "not-a-cursor"})

    assert response.status_code == 400
    assert "pass the next_cursor of the previous page" in response.json()["detail"]
