"""Versions, lineage, rename, delete, re-embed, compare and the audit log, over the REST API.

The pipeline's progress reaches the gateway as events; here they are handed to its observer
(``track_version``) as the parser and embedder would publish them.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from ragstream_core.bus import Delivery
from ragstream_core.events import EVENTS_STREAM, EVENTS_SUBJECTS, SUBJECT_OF, chunks_key
from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocDeleted,
    DocParsed,
    EventMeta,
    IndexUpdated,
    JobFailed,
)
from ragstream_devstack.testing import new_id
from ragstream_gateway.jobs import track_version
from ragstream_gateway.ports import REGISTRY_DURABLE

if TYPE_CHECKING:
    from conftest import Gateway

DELIVERY = Delivery(1, 1, "test")


def doc(text: str) -> bytes:
    return f"# Notes\n\n{text}\n".encode()


async def indexed(gateway: Gateway, body: dict[str, Any], chunks: int = 1) -> None:
    """What the pipeline reports for a version that went all the way."""
    meta = EventMeta(job_id=body["job_id"], document_id=body["document_id"], version=body["version"])
    await track_version(DocParsed(meta=meta, chunk_count=chunks, page_count=1), DELIVERY, gateway.ports)
    await track_version(IndexUpdated(meta=meta, chunk_count=chunks), DELIVERY, gateway.ports)


async def stored_events(gateway: Gateway, subject: str) -> list[bytes]:
    info = await gateway.bus.js.stream_info(EVENTS_STREAM)
    found: list[bytes] = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await gateway.bus.js.get_msg(EVENTS_STREAM, sequence)
        if msg.subject == subject:
            found.append(msg.data or b"")
    return found


async def test_versions_list_every_version_with_status_and_counts(gateway: Gateway) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "notes.md", doc("One."), actor="alice")).json()
    await indexed(gateway, first, chunks=3)
    second = (await gateway.upload(collection, "notes.md", doc("Two."), actor="bob", label="draft")).json()

    response = await gateway.client.get(f"/v1/documents/{first['document_id']}/versions")

    assert response.status_code == 200
    versions = response.json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert second["document_id"] == first["document_id"]
    assert [v["label"] for v in versions] == ["v1", "draft"]
    assert [v["uploaded_by"] for v in versions] == ["alice", "bob"]
    assert [v["status"] for v in versions] == ["indexed", "processing"]
    assert versions[0]["chunk_count"] == 3
    assert versions[0]["sha256"] != versions[1]["sha256"]
    assert versions[0]["finished_at"] is not None
    assert versions[1]["finished_at"] is None


async def test_an_indexed_version_supersedes_the_previous_one(gateway: Gateway) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "notes.md", doc("One."))).json()
    await indexed(gateway, first)
    second = (await gateway.upload(collection, "notes.md", doc("Two."))).json()
    await indexed(gateway, second)

    versions = (await gateway.client.get(f"/v1/documents/{first['document_id']}/versions")).json()["versions"]

    assert [v["status"] for v in versions] == ["superseded", "indexed"]


async def test_a_failed_version_records_the_reason(gateway: Gateway) -> None:
    body = (await gateway.upload(new_id("col"), "notes.md", doc("One."))).json()
    meta = EventMeta(job_id=body["job_id"], document_id=body["document_id"], version=1)
    await track_version(JobFailed(meta=meta, stage="parsing", reason="no text"), DELIVERY, gateway.ports)

    version = (await gateway.client.get(f"/v1/documents/{body['document_id']}/versions")).json()["versions"][0]

    assert (version["status"], version["error"]) == ("failed", "no text")


async def test_unknown_document_versions_are_404(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/documents/nope/versions")

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


async def test_replaces_keeps_the_lineage_under_a_new_name(gateway: Gateway) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "draft.md", doc("One."))).json()

    response = await gateway.upload(collection, "final.md", doc("Two."), replaces=first["document_id"])

    assert response.status_code == 202
    body = response.json()
    assert (body["document_id"], body["version"], body["file_name"]) == (first["document_id"], 2, "final.md")
    document = (await gateway.client.get(f"/v1/documents/{first['document_id']}")).json()
    assert document["file_name"] == "final.md"
    assert [v["uploaded_as"] for v in document["versions"]] == ["draft.md", "final.md"]


async def test_replaces_onto_a_name_taken_by_another_document_is_409(gateway: Gateway) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "a.md", doc("One."))).json()
    other = (await gateway.upload(collection, "b.md", doc("Other."))).json()

    response = await gateway.upload(collection, "b.md", doc("Three."), replaces=first["document_id"])

    assert response.status_code == 409
    assert response.json()["existing_document_id"] == other["document_id"]
    assert "b.md" in response.json()["detail"]


async def test_replaces_an_unknown_document_is_404(gateway: Gateway) -> None:
    response = await gateway.upload(new_id("col"), "a.md", doc("One."), replaces="missing-doc")

    assert response.status_code == 404


async def test_rename_keeps_id_and_versions_and_refuses_a_taken_name(gateway: Gateway) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "a.md", doc("One."))).json()
    other = (await gateway.upload(collection, "b.md", doc("Other."))).json()

    renamed = await gateway.client.patch(f"/v1/documents/{first['document_id']}", json={"file_name": "c.md"})
    taken = await gateway.client.patch(f"/v1/documents/{first['document_id']}", json={"file_name": "b.md"})

    assert renamed.status_code == 200
    assert renamed.json()["file_name"] == "c.md"
    assert taken.status_code == 409
    assert taken.json()["existing_document_id"] == other["document_id"]
    again = await gateway.upload(collection, "c.md", doc("Two."))
    assert (again.json()["document_id"], again.json()["version"]) == (first["document_id"], 2)


async def test_simultaneous_identical_uploads_make_one_version(gateway: Gateway) -> None:
    collection = new_id("col")
    data = doc(f"Same bytes {new_id()}.")

    responses = await asyncio.gather(*(gateway.upload(collection, "same.md", data) for _ in range(6)))

    assert sorted(r.status_code for r in responses) == [200] * 5 + [202]
    assert len({r.json()["job_id"] for r in responses}) == 1


async def test_delete_is_refused_while_a_job_runs(gateway: Gateway) -> None:
    body = (await gateway.upload(new_id("col"), "notes.md", doc("One."))).json()

    response = await gateway.client.delete(f"/v1/documents/{body['document_id']}")

    assert response.status_code == 409
    assert response.json()["running_job_ids"] == [body["job_id"]]
    assert "cancel=true" in response.json()["detail"]
    assert (await gateway.client.get(f"/v1/documents/{body['document_id']}")).json()["deleted_at"] is None


async def test_a_delete_right_after_the_job_ends_waits_for_the_registry_to_learn_it(gateway: Gateway) -> None:
    """The progress service can report a job indexed before this registry has read the same
    event (each follows the events with its own consumer): a delete in that moment is not refused."""
    body = (await gateway.upload(new_id("col"), "notes.md", doc("One."))).json()
    lagging = asyncio.Event()

    async def registry(event: Message, delivery: Delivery) -> None:
        await lagging.wait()
        await track_version(event, delivery, gateway.ports)

    gateway.bus.consume(
        Message, durable=REGISTRY_DURABLE, stage="gateway", handler=registry, subject=EVENTS_SUBJECTS, fail_jobs=False
    )
    meta = EventMeta(job_id=body["job_id"], document_id=body["document_id"], version=1)
    await gateway.bus.publish(DocParsed(meta=meta, chunk_count=1, page_count=1))
    await gateway.bus.publish(IndexUpdated(meta=meta, chunk_count=1))

    delete = asyncio.create_task(gateway.client.delete(f"/v1/documents/{body['document_id']}"))
    await asyncio.sleep(0.5)
    waited = not delete.done()
    lagging.set()
    response = await delete

    assert waited
    assert response.status_code == 202, response.text
    assert response.json()["cancelled_job_ids"] == []
    assert (await gateway.client.get(f"/v1/documents/{body['document_id']}")).json()["deleted_at"] is not None


async def test_delete_with_cancel_cancels_the_job_and_announces_the_delete(gateway: Gateway) -> None:
    collection = new_id("col")
    body = (await gateway.upload(collection, "notes.md", doc("One."))).json()

    response = await gateway.client.delete(f"/v1/documents/{body['document_id']}", params={"cancel": "true"})

    assert response.status_code == 202
    assert response.json()["cancelled_job_ids"] == [body["job_id"]]
    deleted = [DocDeleted.FromString(d) for d in await stored_events(gateway, SUBJECT_OF[DocDeleted])]
    mine = [e for e in deleted if e.meta.document_id == body["document_id"]]
    assert [(e.meta.job_id, list(e.cancelled_job_ids)) for e in mine] == [(response.json()["job_id"], [body["job_id"]])]
    failed = [JobFailed.FromString(d) for d in await stored_events(gateway, SUBJECT_OF[JobFailed])]
    assert [(f.error_type, f.stage) for f in failed if f.meta.job_id == body["job_id"]] == [("Cancelled", "cancelled")]
    versions = (await gateway.client.get(f"/v1/documents/{body['document_id']}/versions")).json()["versions"]
    assert versions[0]["status"] == "cancelled"


async def test_a_deleted_document_is_gone_from_lists_and_its_bytes_from_the_store(gateway: Gateway) -> None:
    collection = new_id("col")
    data = doc(f"To delete {new_id()}.")
    body = (await gateway.upload(collection, "gone.md", data)).json()
    await indexed(gateway, body)
    key = f"chunks/default/{body['document_id']}/v1.json"
    await gateway.ports.objects.put_bytes(key, b"{}")
    object_key = f"uploads/default/{body['sha256']}"
    assert await gateway.ports.objects.exists(object_key)

    response = await gateway.client.delete(f"/v1/documents/{body['document_id']}", headers={"X-Actor": "carol"})

    assert response.status_code == 202
    listed = (await gateway.client.get(f"/v1/collections/{collection}/documents")).json()["documents"]
    assert listed == []
    document = (await gateway.client.get(f"/v1/documents/{body['document_id']}")).json()
    assert document["deleted_at"] is not None
    assert not await gateway.ports.objects.exists(object_key)
    assert not await gateway.ports.objects.exists(key)
    again = await gateway.client.delete(f"/v1/documents/{body['document_id']}")
    assert again.status_code == 404
    reupload = await gateway.upload(collection, "gone.md", data)
    assert reupload.status_code == 202
    assert reupload.json()["document_id"] != body["document_id"]


async def test_bytes_shared_with_a_live_document_stay_in_the_store(gateway: Gateway) -> None:
    data = doc(f"Shared {new_id()}.")
    kept = (await gateway.upload(new_id("col"), "a.md", data)).json()
    gone = (await gateway.upload(new_id("col"), "a.md", data)).json()
    await indexed(gateway, gone)

    await gateway.client.delete(f"/v1/documents/{gone['document_id']}")

    assert await gateway.ports.objects.exists(f"uploads/default/{kept['sha256']}")


async def test_reembed_makes_a_new_version_of_the_same_bytes(gateway: Gateway) -> None:
    body = (await gateway.upload(new_id("col"), "notes.md", doc("One."))).json()
    await indexed(gateway, body)

    response = await gateway.client.post(f"/v1/documents/{body['document_id']}/reembed")

    assert response.status_code == 202
    again = response.json()
    assert (again["version"], again["reason"], again["sha256"]) == (2, "reembed", body["sha256"])
    assert again["job_id"] != body["job_id"]


async def test_reembed_of_a_list_reports_each_document(gateway: Gateway) -> None:
    body = (await gateway.upload(new_id("col"), "notes.md", doc("One."))).json()

    response = await gateway.client.post(
        "/v1/documents/reembed", json={"document_ids": [body["document_id"], "missing"]}
    )

    assert response.status_code == 202
    assert [j["document_id"] for j in response.json()["jobs"]] == [body["document_id"]]
    assert [(e["document_id"], e["error"]) for e in response.json()["errors"]] == [("missing", "NotFound")]


async def test_compare_reports_added_removed_and_changed_chunks(gateway: Gateway) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "notes.md", doc("One."))).json()
    await gateway.upload(collection, "notes.md", doc("Two."))
    document_id = first["document_id"]

    def chunk(index: int, heading: str, text: str) -> dict[str, Any]:
        return {"index": index, "heading_path": [heading], "text": text}

    v1 = [chunk(0, "Intro", "hello"), chunk(1, "Usage", "run it"), chunk(2, "Old", "gone soon")]
    v2 = [chunk(0, "Intro", "hello"), chunk(1, "Usage", "run it twice"), chunk(2, "New", "fresh")]
    for version, chunks in ((1, v1), (2, v2)):
        payload = json.dumps({"chunks": chunks}).encode()
        await gateway.ports.objects.put_bytes(chunks_key("default", document_id, version), payload)

    response = await gateway.client.get(f"/v1/documents/{document_id}/versions/1/compare/2")

    assert response.status_code == 200
    body = response.json()
    assert [c["text"] for c in body["added"]] == ["fresh"]
    assert [c["text"] for c in body["removed"]] == ["gone soon"]
    assert [(c["before"], c["text"]) for c in body["changed"]] == [("run it", "run it twice")]
    assert body["unchanged"] == 1
    missing = await gateway.client.get(f"/v1/documents/{document_id}/versions/1/compare/9")
    assert missing.status_code == 404


async def test_the_audit_log_answers_who_did_what_by_document_actor_and_page(gateway: Gateway) -> None:
    collection = new_id("col")
    body = (await gateway.upload(collection, "notes.md", doc("One."), actor="dave")).json()
    refused = await gateway.client.delete(f"/v1/documents/{body['document_id']}", headers={"X-Actor": "erin"})
    await gateway.client.patch(
        f"/v1/documents/{body['document_id']}", json={"file_name": "renamed.md"}, headers={"X-Actor": "erin"}
    )
    await gateway.client.delete(
        f"/v1/documents/{body['document_id']}", params={"cancel": "true"}, headers={"X-Actor": "erin"}
    )
    assert refused.status_code == 409

    entries = (await gateway.client.get("/v1/audit", params={"document_id": body["document_id"]})).json()["entries"]
    by_erin = (await gateway.client.get("/v1/audit", params={"actor": "erin", "collection_id": collection})).json()
    first_page = (await gateway.client.get("/v1/audit", params={"document_id": body["document_id"], "limit": 2})).json()
    second_page = (
        await gateway.client.get(
            "/v1/audit",
            params={"document_id": body["document_id"], "limit": 2, "before": first_page["next_before"]},
        )
    ).json()

    assert [(e["action"], e["actor"], e["outcome"]) for e in entries] == [
        ("document.delete", "erin", "deleted"),
        ("document.rename", "erin", "renamed"),
        ("document.delete", "erin", "refused"),
        ("document.add", "dave", "accepted"),
    ]
    assert entries[-1]["detail"]["sha256"] == body["sha256"]
    assert {e["action"] for e in by_erin["entries"]} == {"document.delete", "document.rename"}
    assert [e["audit_id"] for e in first_page["entries"] + second_page["entries"]] == [e["audit_id"] for e in entries]


async def test_an_actor_with_control_characters_is_refused(gateway: Gateway) -> None:
    response = await gateway.upload(new_id("col"), "a.md", doc("One."), actor="bad\x07actor")

    assert response.status_code == 400
    assert "X-Actor" in response.json()["detail"]
