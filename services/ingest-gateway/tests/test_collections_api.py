"""Collections over the REST API: create (one or many), read, list, change preferences, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Gateway


async def test_create_records_settings_and_model(gateway: Gateway) -> None:
    collection = new_id("col")

    response = await gateway.client.post(
        "/v1/collections",
        json={
            "collection_id": collection,
            "description": "sales",
            "chunking": "tokens",
            "embed_columns": ["Product"],
            "context_columns": ["Region"],
        },
        headers={"X-Actor": "ops"},
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["collection_id"], body["chunking"], body["embed_columns"], body["context_columns"]) == (
        collection,
        "tokens",
        ["Product"],
        ["Region"],
    )
    assert (body["embedding_model"], body["dimensions"], body["created_by"]) == ("all-MiniLM-L6-v2", 384, "ops")
    fetched = await gateway.client.get(f"/v1/collections/{collection}")
    assert fetched.json() == body


async def test_create_twice_is_409_and_bad_input_is_4xx(gateway: Gateway) -> None:
    collection = new_id("col")
    await gateway.client.post("/v1/collections", json={"collection_id": collection})

    again = await gateway.client.post("/v1/collections", json={"collection_id": collection})
    bad_id = await gateway.client.post("/v1/collections", json={"collection_id": "../etc"})
    bad_chunking = await gateway.client.post(
        "/v1/collections", json={"collection_id": new_id("col"), "chunking": "sentences"}
    )

    assert again.status_code == 409
    assert bad_id.status_code == 400
    assert "letters, digits" in bad_id.json()["detail"]
    assert bad_chunking.status_code == 422
    assert "structure" in bad_chunking.text


async def test_bulk_create_makes_a_thousand_in_one_call_and_reports_existing(gateway: Gateway) -> None:
    prefix = new_id("bulk")
    specs = [{"collection_id": f"{prefix}-{i:04d}"} for i in range(1000)]

    first = await gateway.client.post("/v1/collections/bulk", json={"collections": specs})
    second = await gateway.client.post("/v1/collections/bulk", json={"collections": specs[:10]})

    assert first.status_code == 200
    assert len(first.json()["created"]) == 1000
    assert first.json()["existing"] == []
    assert second.json() == {"created": [], "existing": [s["collection_id"] for s in specs[:10]]}
    page = (await gateway.client.get("/v1/collections", params={"after": f"{prefix}-0499", "limit": 3})).json()
    assert [c["collection_id"] for c in page["collections"]] == [f"{prefix}-{i:04d}" for i in (500, 501, 502)]
    assert page["next_after"] == f"{prefix}-0502"


async def test_bulk_create_refuses_repeated_ids(gateway: Gateway) -> None:
    collection = new_id("col")

    response = await gateway.client.post(
        "/v1/collections/bulk", json={"collections": [{"collection_id": collection}, {"collection_id": collection}]}
    )

    assert response.status_code == 400
    assert "repeat" in response.json()["detail"]


async def test_uploads_carry_the_collections_chunking_and_columns(gateway: Gateway) -> None:
    collection = new_id("col")
    await gateway.client.post(
        "/v1/collections",
        json={"collection_id": collection, "chunking": "markdown", "embed_columns": ["a"], "context_columns": ["b"]},
    )

    body = (await gateway.upload(collection, "t.csv", b"a,b\n1,2\n")).json()

    [event] = await gateway.uploaded_events(body["job_id"])
    assert event.chunking == "markdown"
    assert (list(event.columns.embed_columns), list(event.columns.context_columns)) == (["a"], ["b"])
    assert event.reason == "upload"


async def test_new_column_preferences_reembed_only_tabular_documents(gateway: Gateway) -> None:
    collection = new_id("col")
    table = (await gateway.upload(collection, "t.csv", b"a,b\n1,2\n")).json()
    await gateway.upload(collection, "n.md", b"# Notes\n\nText.\n")

    response = await gateway.client.patch(f"/v1/collections/{collection}", json={"embed_columns": ["a"]})

    assert response.status_code == 200
    body = response.json()
    assert body["embed_columns"] == ["a"]
    jobs = body["reembed"]["jobs"]
    assert [(j["document_id"], j["version"], j["reason"]) for j in jobs] == [(table["document_id"], 2, "reembed")]
    events: list[DocUploaded] = await gateway.uploaded_events(jobs[0]["job_id"])
    assert list(events[0].columns.embed_columns) == ["a"]


async def test_a_new_chunking_strategy_reembeds_every_document(gateway: Gateway) -> None:
    collection = new_id("col")
    await gateway.upload(collection, "t.csv", b"a,b\n1,2\n")
    await gateway.upload(collection, "n.md", b"# Notes\n\nText.\n")

    body = (await gateway.client.patch(f"/v1/collections/{collection}", json={"chunking": "tokens"})).json()

    assert len(body["reembed"]["jobs"]) == 2


async def test_collection_reembed_queues_one_job_per_document(gateway: Gateway) -> None:
    collection = new_id("col")
    for name in ("a.md", "b.md", "c.md"):
        await gateway.upload(collection, name, f"# {name}\n\nText of {name}.\n".encode())

    response = await gateway.client.post(f"/v1/collections/{collection}/reembed", json={})

    assert response.status_code == 202
    assert sorted(j["file_name"] for j in response.json()["jobs"]) == ["a.md", "b.md", "c.md"]
    missing = await gateway.client.post("/v1/collections/nope/reembed", json={})
    assert missing.status_code == 404


async def test_deleting_a_collection_with_documents_needs_cascade(gateway: Gateway) -> None:
    collection = new_id("col")
    body = (await gateway.upload(collection, "a.md", b"# A\n\nText.\n")).json()

    refused = await gateway.client.delete(f"/v1/collections/{collection}")
    running = await gateway.client.delete(f"/v1/collections/{collection}", params={"cascade": "true"})
    cascaded = await gateway.client.delete(
        f"/v1/collections/{collection}", params={"cascade": "true", "cancel": "true"}
    )

    assert refused.status_code == 409
    assert refused.json()["documents"] == 1
    assert running.status_code == 409
    assert running.json()["running_job_ids"] == [body["job_id"]]
    assert cascaded.status_code == 202
    assert len(cascaded.json()["delete_job_ids"]) == 1
    assert (await gateway.client.get(f"/v1/collections/{collection}")).status_code == 404
    assert (await gateway.client.get(f"/v1/documents/{body['document_id']}")).json()["deleted_at"] is not None
    recreated = await gateway.client.post("/v1/collections", json={"collection_id": collection})
    assert recreated.status_code == 201
    assert recreated.json()["document_count"] == 0
