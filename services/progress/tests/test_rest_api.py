"""The progress REST API: a job's public shape, filters, readable 404s and tenant isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
import pytest

from ragstream_devstack.testing import new_id
from ragstream_progress.api import create_app
from ragstream_progress.projection import JobStore

if TYPE_CHECKING:
    from conftest import NewJob


@pytest.fixture
async def client(jobs: JobStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(jobs, default_tenant="default")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://progress.test") as client:
        yield client


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
    assert body["counts"] == {"pages": 0, "chunks": 0, "chunks_embedded": 0}
    assert body["error"] == {"stage": "parsing", "reason": "not a PDF after all"}
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
    assert body["counts"] == {"pages": 4, "chunks": 10, "chunks_embedded": 10}
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
