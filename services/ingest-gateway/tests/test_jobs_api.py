"""Job control over the REST API: the queue, lanes, fair caps, pause/resume/cancel/retry,
priority, stall recovery and dead letters, with real PostgreSQL and JetStream.

The scheduler is driven by calling ``release_ready`` (what its loop does), and the pipeline's
reports reach the gateway through its observer ``track_version``, as the stages publish them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from ragstream_core.bus import Delivery
from ragstream_core.control import JobCancelled, JobPaused
from ragstream_core.errors import InvalidInput
from ragstream_core.events import EVENTS_STREAM, SUBJECT_OF, TENANT_HEADER
from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocReleased,
    DocUploaded,
    EventMeta,
    IndexUpdated,
    JobControlled,
    JobFailed,
)
from ragstream_devstack.testing import eventually, new_id
from ragstream_gateway.jobs import recover_stalled, release_ready, track_version
from ragstream_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import Gateway, GatewayFactory

DELIVERY = Delivery(1, 1, "test")


@pytest.fixture(autouse=True)
async def empty_queue(gateway_pool: Any) -> None:
    """The scheduler serves every collection of the database: start each test with nothing unfinished
    (versions other tests left queued or running are ended)."""
    async with gateway_pool.connection() as conn:
        await conn.execute(
            "UPDATE gateway.document_versions SET status = 'superseded', finished_at = now()"
            " WHERE status = 'processing'"
        )


async def make(gateway_factory: GatewayFactory, **settings: Any) -> Gateway:
    return await gateway_factory(GatewaySettings(**settings))


async def upload(gateway: Gateway, collection: str, name: str, **params: str) -> dict[str, Any]:
    response = await gateway.upload(collection, name, f"# {name}\n\nText of {name} {new_id()}.\n".encode(), **params)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def released(gateway: Gateway) -> list[DocReleased]:
    """Every DocReleased in this test's stream, oldest first."""
    info = await gateway.bus.js.stream_info(EVENTS_STREAM)
    found: list[DocReleased] = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await gateway.bus.js.get_msg(EVENTS_STREAM, sequence)
        if msg.subject == SUBJECT_OF[DocReleased]:
            found.append(DocReleased.FromString(msg.data or b""))
    return found


async def state(gateway: Gateway, job_id: str) -> dict[str, Any]:
    response = await gateway.client.get(f"/v1/jobs/{job_id}/control")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def finish(gateway: Gateway, body: dict[str, Any]) -> None:
    meta = EventMeta(job_id=body["job_id"], document_id=body["document_id"], version=body["version"])
    await track_version(IndexUpdated(meta=meta, chunk_count=1), DELIVERY, gateway.ports)


async def test_uploads_wait_in_the_queue_until_released_under_the_cap(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory, collection_concurrency=2, strict_caps=True)
    collection = new_id("col")
    jobs = [await upload(gateway, collection, f"{i}.md") for i in range(3)]

    count = await release_ready(gateway.ports)

    assert count == 2
    assert [(await state(gateway, j["job_id"]))["state"] for j in jobs] == ["running", "running", "queued"]
    assert [r.meta.job_id for r in await released(gateway)] == [jobs[0]["job_id"], jobs[1]["job_id"]]
    event = (await released(gateway))[0]
    assert (event.upload.meta.job_id, event.upload.object_key) == (
        jobs[0]["job_id"],
        f"uploads/default/{jobs[0]['sha256']}",
    )
    await finish(gateway, jobs[0])
    assert await release_ready(gateway.ports) == 1
    assert (await state(gateway, jobs[2]["job_id"]))["state"] == "running"


async def test_another_collections_upload_goes_ahead_of_a_bulk_load_over_its_cap(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await make(gateway_factory, collection_concurrency=2, max_released_jobs=3)
    bulk = new_id("bulk")
    loads = [await upload(gateway, bulk, f"{i}.md") for i in range(5)]
    assert await release_ready(gateway.ports) == 3  # nothing else waits: the bulk load uses idle capacity
    await finish(gateway, loads[0])
    other = await upload(gateway, new_id("other"), "urgent.md")

    assert await release_ready(gateway.ports) == 1

    assert (await state(gateway, other["job_id"]))["state"] == "running"
    assert [(await state(gateway, j["job_id"]))["state"] for j in loads[3:]] == ["queued", "queued"]


async def test_the_high_lane_goes_first_and_each_lane_is_fifo(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory, collection_concurrency=1, strict_caps=True)
    collection = new_id("col")
    first = await upload(gateway, collection, "first.md")
    await release_ready(gateway.ports)
    normal = await upload(gateway, collection, "normal.md")
    bulk = await upload(gateway, collection, "bulk.md", priority="bulk")
    high = await upload(gateway, collection, "high.md", priority="high")

    order = []
    for running in (first, high, normal):
        await finish(gateway, running)
        await release_ready(gateway.ports)
        order.append((await released(gateway))[-1].meta.job_id)

    assert order == [high["job_id"], normal["job_id"], bulk["job_id"]]
    assert (await released(gateway))[1].meta.priority == "high"


async def test_a_paused_queued_job_waits_until_resumed(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory)
    body = await upload(gateway, new_id("col"), "a.md")

    paused = await gateway.client.post(f"/v1/jobs/{body['job_id']}:pause", headers={"X-Actor": "ops"})
    held = await release_ready(gateway.ports)
    resumed = await gateway.client.post(f"/v1/jobs/{body['job_id']}:resume")
    after = await release_ready(gateway.ports)

    assert paused.status_code == 200
    assert (paused.json()["paused"], paused.json()["state"]) == (True, "queued")
    assert (held, after) == (0, 1)
    assert resumed.json()["paused"] is False


async def test_a_paused_running_job_goes_back_to_the_queue_as_a_new_run(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory)
    body = await upload(gateway, new_id("col"), "a.md")
    await release_ready(gateway.ports)

    await gateway.client.post(f"/v1/jobs/{body['job_id']}:pause")
    run = (await released(gateway))[-1].meta
    control = await gateway.bus.job_control()
    with pytest.raises(JobPaused):
        await control.check(run)
    # the stage stops the run at its boundary and says so
    stopped = EventMeta()
    stopped.CopyFrom(run)
    await track_version(JobControlled(meta=stopped, action="requeued"), DELIVERY, gateway.ports)
    waiting = await state(gateway, body["job_id"])
    assert await release_ready(gateway.ports) == 0
    await gateway.client.post(f"/v1/jobs/{body['job_id']}:resume")
    assert await release_ready(gateway.ports) == 1

    assert (waiting["state"], waiting["retry"], waiting["paused"]) == ("queued", 1, True)
    again = (await released(gateway))[-1].meta
    assert again.retry == 1
    await control.check(again)  # the new run is not stopped by the old order


async def test_cancelling_a_queued_job_ends_it_at_once(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory)
    body = await upload(gateway, new_id("col"), "a.md")

    response = await gateway.client.post(f"/v1/jobs/{body['job_id']}:cancel", headers={"X-Actor": "ops"})

    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert await release_ready(gateway.ports) == 0
    last = await gateway.bus.js.get_last_msg(EVENTS_STREAM, SUBJECT_OF[JobFailed])
    failed = JobFailed.FromString(last.data or b"")
    assert (failed.meta.job_id, failed.error_type, failed.stage) == (body["job_id"], "Cancelled", "queued")
    again = await gateway.client.post(f"/v1/jobs/{body['job_id']}:cancel")
    assert again.status_code == 409


async def test_cancelling_a_running_job_stops_it_at_the_next_boundary(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory)
    body = await upload(gateway, new_id("col"), "a.md")
    await release_ready(gateway.ports)

    response = await gateway.client.post(f"/v1/jobs/{body['job_id']}:cancel")

    assert (response.json()["state"], response.json()["cancel_requested"]) == ("running", True)
    with pytest.raises(JobCancelled):
        await (await gateway.bus.job_control()).check((await released(gateway))[-1].meta)
    meta = EventMeta(job_id=body["job_id"], document_id=body["document_id"], version=1)
    await track_version(JobFailed(meta=meta, stage="embedding", error_type="Cancelled"), DELIVERY, gateway.ports)
    assert (await state(gateway, body["job_id"]))["state"] == "cancelled"


async def test_a_failed_job_is_retried_as_a_new_run_and_a_stale_failure_does_not_end_it(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await make(gateway_factory)
    body = await upload(gateway, new_id("col"), "a.md")
    await release_ready(gateway.ports)
    meta = EventMeta(job_id=body["job_id"], document_id=body["document_id"], version=1, retry=0)
    await track_version(JobFailed(meta=meta, stage="parsing", reason="boom"), DELIVERY, gateway.ports)
    running = await gateway.client.post(f"/v1/jobs/{body['job_id']}:retry")  # failed: may be retried

    retried = running.json()
    await track_version(JobFailed(meta=meta, stage="parsing", reason="late copy"), DELIVERY, gateway.ports)
    await release_ready(gateway.ports)

    assert running.status_code == 202
    assert (retried["state"], retried["retry"], retried["error"]) == ("queued", 1, None)
    assert (await state(gateway, body["job_id"]))["state"] == "running"
    assert (await released(gateway))[-1].meta.retry == 1
    not_failed = await gateway.client.post(f"/v1/jobs/{body['job_id']}:retry")
    assert not_failed.status_code == 409


async def test_priority_changes_the_lane_and_unknown_lanes_are_refused(gateway: Gateway) -> None:
    body = await upload(gateway, new_id("col"), "a.md")

    changed = await gateway.client.patch(f"/v1/jobs/{body['job_id']}", json={"priority": "high"})
    refused = await gateway.client.patch(f"/v1/jobs/{body['job_id']}", json={"priority": "urgent"})
    unknown = await gateway.client.post("/v1/jobs/nope:pause")

    assert changed.json()["priority"] == "high"
    assert refused.status_code == 422
    assert unknown.status_code == 404


async def test_a_paused_collection_holds_its_queue_until_resumed(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory)
    collection = new_id("col")
    await upload(gateway, collection, "a.md")

    paused = await gateway.client.post(f"/v1/collections/{collection}/jobs:pause")
    await upload(gateway, collection, "b.md")
    held = await release_ready(gateway.ports)
    resumed = await gateway.client.post(f"/v1/collections/{collection}/jobs:resume")
    after = await release_ready(gateway.ports)

    assert paused.status_code == 200
    assert len(paused.json()["unfinished_jobs"]) == 1
    assert (held, after) == (0, 2)
    assert resumed.status_code == 200
    missing = await gateway.client.post("/v1/collections/nope/jobs:pause")
    assert missing.status_code == 404


async def test_a_batch_can_be_paused_and_cancelled_as_a_whole(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory)
    collection = new_id("col")
    files = [("files", (f"{i}.md", f"# {i}\n\nBatch text {i} {new_id()}.\n".encode())) for i in range(3)]
    response = await gateway.client.post(f"/v1/collections/{collection}/documents:batch", files=files)
    batch_id = response.json()["batch_id"]

    await gateway.client.post(f"/v1/batches/{batch_id}/jobs:pause")
    held = await release_ready(gateway.ports)
    cancelled = await gateway.client.post(f"/v1/batches/{batch_id}/jobs:cancel")

    assert held == 0
    assert len(cancelled.json()["unfinished_jobs"]) == 3
    states = [(await state(gateway, r["job_id"]))["state"] for r in response.json()["results"]]
    assert states == ["cancelled"] * 3


async def test_a_stalled_job_is_redriven_then_failed_with_the_reason(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory, stall_after_s=0.05, max_redrives=1)
    body = await upload(gateway, new_id("col"), "a.md")
    await release_ready(gateway.ports)
    await asyncio.sleep(0.1)

    await recover_stalled(gateway.ports)
    redriven = await state(gateway, body["job_id"])
    await release_ready(gateway.ports)
    await asyncio.sleep(0.1)
    await recover_stalled(gateway.ports)
    failed = await state(gateway, body["job_id"])

    assert (redriven["state"], redriven["retry"]) == ("queued", 1)
    assert failed["state"] == "failed"
    assert "no progress" in failed["error"]
    last = await gateway.bus.js.get_last_msg(EVENTS_STREAM, SUBJECT_OF[JobFailed])
    assert JobFailed.FromString(last.data or b"").error_type == "Stalled"


async def test_a_dead_letter_is_listed_and_its_replay_retries_the_job(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory)
    body = await upload(gateway, new_id("col"), "poison.md")
    await release_ready(gateway.ports)

    async def reject(event: DocReleased, delivery: Delivery) -> None:
        raise InvalidInput("this parser cannot read it")

    gateway.bus.consume(DocReleased, durable="poisoned", stage="parsing", handler=reject)
    failed = await eventually(
        lambda: gateway.client.get("/v1/dead-letters"),
        until=lambda r: any(d["job_id"] == body["job_id"] for d in r.json()["dead_letters"]),
    )
    [letter] = [d for d in failed.json()["dead_letters"] if d["job_id"] == body["job_id"]]
    last = await gateway.bus.js.get_last_msg(EVENTS_STREAM, SUBJECT_OF[JobFailed])
    await track_version(JobFailed.FromString(last.data or b""), DELIVERY, gateway.ports)

    replay = await gateway.client.post(f"/v1/dead-letters/{letter['sequence']}:replay", headers={"X-Actor": "ops"})

    assert (letter["stage"], letter["reason"], letter["event_type"]) == (
        "parsing",
        "this parser cannot read it",
        "DocReleased",
    )
    assert replay.status_code == 202
    assert (replay.json()["replayed"], replay.json()["retry"]) == ("job retried", 1)
    listed = (await gateway.client.get("/v1/dead-letters")).json()["dead_letters"]
    assert [d["replayed_at"] is not None for d in listed if d["sequence"] == letter["sequence"]] == [True]
    missing = await gateway.client.get("/v1/dead-letters/999999")
    assert missing.status_code == 404


@pytest.mark.parametrize("sequence", ["-7470569980", "0", str(2**64)])
async def test_a_dead_letter_sequence_out_of_range_is_422_naming_the_bound(
    gateway_factory: GatewayFactory, sequence: str
) -> None:
    gateway = await make(gateway_factory)

    read = await gateway.client.get(f"/v1/dead-letters/{sequence}")
    replay = await gateway.client.post(f"/v1/dead-letters/{sequence}:replay")

    assert (read.status_code, replay.status_code) == (422, 422)
    assert "greater than or equal to 1" in read.text or "less than or equal to" in read.text


async def test_a_dead_letter_that_cannot_be_read_is_shown_only_to_the_tenant_it_names(
    gateway_factory: GatewayFactory,
) -> None:
    """A body this version cannot decode is listed by its Ragstream-Tenant header; one naming no
    tenant only to the operators' (default) tenant, never to every tenant."""
    gateway = await make(gateway_factory)
    owner, other = new_id("tenant"), new_id("tenant")
    sequences: dict[str, int] = {}
    for name, tenant in (("named", owner), ("nameless", None)):
        headers = {
            "Ragstream-Dlq-Subject": SUBJECT_OF[DocReleased],
            "Ragstream-Dlq-Reason": "undecodable DocReleased: truncated message",
            "Ragstream-Dlq-Stage": "parsing",
            "Ragstream-Dlq-Deliveries": "1",
        }
        if tenant:
            headers[TENANT_HEADER] = tenant
        ack = await gateway.bus.js.publish("ragstream.dlq.parsing", b"\xff\xff not protobuf", headers=headers)
        sequences[name] = ack.seq

    async def seen_by(tenant: str) -> set[str]:
        response = await gateway.client.get("/v1/dead-letters?limit=500", headers={"X-Tenant-Id": tenant})
        assert response.status_code == 200, response.text
        listed = {d["sequence"] for d in response.json()["dead_letters"]}
        return {name for name, seq in sequences.items() if seq in listed}

    assert await seen_by(owner) == {"named"}
    assert await seen_by(other) == set()
    assert await seen_by(gateway.ports.settings.default_tenant) == {"nameless"}
    one = await gateway.client.get(f"/v1/dead-letters/{sequences['nameless']}", headers={"X-Tenant-Id": owner})
    assert one.status_code == 404
    named = await gateway.client.get(f"/v1/dead-letters/{sequences['named']}", headers={"X-Tenant-Id": owner})
    assert (named.status_code, named.json()["tenant_id"], named.json()["event_type"]) == (200, owner, None)


async def test_published_events_name_their_tenant_in_a_header(gateway_factory: GatewayFactory) -> None:
    gateway = await make(gateway_factory)
    tenant = new_id("tenant")
    response = await gateway.upload(new_id("col"), "named.md", b"# named\n\nA tenant's upload.\n", tenant=tenant)
    assert response.status_code == 202, response.text

    async def last_uploaded() -> Any:
        return await gateway.bus.js.get_last_msg(EVENTS_STREAM, "ragstream.events.doc.uploaded")

    last = await eventually(
        last_uploaded, until=lambda m: DocUploaded.FromString(m.data or b"").meta.job_id == response.json()["job_id"]
    )
    assert (last.headers or {}).get(TENANT_HEADER) == tenant
