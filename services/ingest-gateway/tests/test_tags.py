"""Document tags: set at upload (form, batch, direct, gRPC), replaced with PATCH, shown in document
responses, validated (422 saying what is accepted), carried in the job's events with the version's
date, and announced to the index (``DocTagged``) once per change, through the outbox if need be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from ragstream_core.events import EVENTS_STREAM, SUBJECT_OF
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import ingest_pb2, ingest_pb2_grpc
from ragstream_core.proto.ragstream.v1.events_pb2 import DocTagged
from ragstream_devstack.servers import free_port
from ragstream_devstack.testing import new_id
from ragstream_gateway.grpc_api import IngestServicer
from ragstream_gateway.handlers import republish_unpublished
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import Gateway, GatewayFactory


def doc(text: str) -> bytes:
    return f"# Notes\n\n{text}\n".encode()


@pytest.fixture
def collection() -> str:
    """A collection of this test's own (the database is shared by the session)."""
    return new_id("tagged")


async def upload(gateway: Gateway, name: str, text: str, tags: list[str] | None = None, *, collection: str) -> Any:
    data: dict[str, list[str]] = {"tags": tags} if tags else {}
    return await gateway.client.post(
        f"/v1/collections/{collection}/documents", files={"file": (name, doc(text))}, data=data
    )


async def tagged_events(gateway: Gateway, document_id: str | None = None) -> list[DocTagged]:
    info = await gateway.bus.js.stream_info(EVENTS_STREAM)
    found: list[DocTagged] = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await gateway.bus.js.get_msg(EVENTS_STREAM, sequence)
        if msg.subject == SUBJECT_OF[DocTagged]:
            event = DocTagged.FromString(msg.data or b"")
            if document_id is None or event.meta.document_id == document_id:
                found.append(event)
    return found


async def test_tags_set_at_upload_are_normalised_shown_and_carried_in_the_event(
    gateway: Gateway, collection: str
) -> None:
    response = await upload(gateway, "a.md", "alpha", ["Finance", "q1, legal", "finance"], collection=collection)
    body = response.json()
    (uploaded,) = await gateway.uploaded_events(body["job_id"])
    document = (await gateway.client.get(f"/v1/documents/{body['document_id']}")).json()
    (announced,) = await tagged_events(gateway, body["document_id"])

    assert response.status_code == 202, response.text
    assert body["tags"] == ["finance", "q1", "legal"]
    assert document["tags"] == ["finance", "q1", "legal"]
    assert document["versions"][0]["tags"] == ["finance", "q1", "legal"]
    assert list(uploaded.meta.tags) == ["finance", "q1", "legal"]
    assert uploaded.meta.tags_revision == 1
    created = uploaded.meta.version_created_at.ToDatetime(tzinfo=UTC)
    assert abs((created - datetime.fromisoformat(body["created_at"])).total_seconds()) < 1e-3
    assert (list(announced.meta.tags), announced.meta.tags_revision, announced.meta.job_id) == (
        ["finance", "q1", "legal"],
        1,
        "",
    )


async def test_a_new_version_without_tags_keeps_them_and_one_with_tags_replaces_them(
    gateway: Gateway, collection: str
) -> None:
    first = (await upload(gateway, "b.md", "one", ["keep"], collection=collection)).json()
    second = (await upload(gateway, "b.md", "two", collection=collection)).json()
    third = (await upload(gateway, "b.md", "three", ["new"], collection=collection)).json()
    events = await gateway.uploaded_events()

    assert (second["document_id"], second["version"], second["tags"]) == (first["document_id"], 2, ["keep"])
    assert third["tags"] == ["new"]
    assert [(list(e.meta.tags), e.meta.tags_revision) for e in events] == [(["keep"], 1), (["keep"], 1), (["new"], 2)]
    assert [e.meta.tags_revision for e in await tagged_events(gateway, first["document_id"])] == [1, 2]


async def test_a_document_without_tags_has_none_and_announces_nothing(gateway: Gateway, collection: str) -> None:
    body = (await upload(gateway, "plain.md", "plain", collection=collection)).json()

    assert body["tags"] == []
    assert await tagged_events(gateway) == []


async def test_patch_replaces_the_tags_and_announces_each_change_once(gateway: Gateway, collection: str) -> None:
    body = (await upload(gateway, "c.md", "gamma", ["old"], collection=collection)).json()
    url = f"/v1/documents/{body['document_id']}"

    replaced = await gateway.client.patch(url, json={"tags": ["Contracts", "2026"]})
    again = await gateway.client.patch(url, json={"tags": ["contracts", "2026"]})
    cleared = await gateway.client.patch(url, json={"tags": []})
    events = await tagged_events(gateway, body["document_id"])
    audit = (await gateway.client.get("/v1/audit", params={"document_id": body["document_id"]})).json()

    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["tags"] == ["contracts", "2026"]
    assert again.json()["tags"] == ["contracts", "2026"]
    assert cleared.json()["tags"] == []
    assert [(list(e.meta.tags), e.meta.tags_revision) for e in events] == [
        (["old"], 1),
        (["contracts", "2026"], 2),
        ([], 3),
    ]
    assert [e["action"] for e in audit["entries"]].count("document.tag") == 3


async def test_patch_renames_and_retags_at_once(gateway: Gateway, collection: str) -> None:
    body = (await upload(gateway, "d.md", "delta", collection=collection)).json()

    patched = await gateway.client.patch(
        f"/v1/documents/{body['document_id']}", json={"file_name": "renamed.md", "tags": ["x"]}
    )

    assert (patched.json()["file_name"], patched.json()["tags"]) == ("renamed.md", ["x"])


@pytest.mark.parametrize(
    ("tags", "says"),
    [
        (["fine", "not;fine"], "tag 'not;fine' is not accepted"),
        (["y" * 65], "1-64 characters"),
        ([f"t{i}" for i in range(33)], "33 tags given"),
        (["-leading"], "starting with a letter or digit"),
    ],
)
async def test_bad_tags_are_a_422_listing_what_is_accepted(
    gateway: Gateway, collection: str, tags: list[str], says: str
) -> None:
    body = (await upload(gateway, "e.md", "epsilon", collection=collection)).json()

    uploaded = await upload(gateway, "f.md", "phi", tags, collection=collection)
    patched = await gateway.client.patch(f"/v1/documents/{body['document_id']}", json={"tags": tags})

    for response in (uploaded, patched):
        assert response.status_code == 422, response.text
        assert says in response.json()["detail"]
        assert "at most 32 tags of 1-64 characters" in response.json()["accepted"]
    listed = (await gateway.client.get(f"/v1/collections/{collection}/documents")).json()["documents"]
    assert [d["file_name"] for d in listed] == ["e.md"]


async def test_patch_of_nothing_is_400_and_of_an_unknown_document_404(gateway: Gateway, collection: str) -> None:
    body = (await upload(gateway, "g.md", "gamma", collection=collection)).json()

    empty = await gateway.client.patch(f"/v1/documents/{body['document_id']}", json={})
    unknown = await gateway.client.patch("/v1/documents/no-such-document", json={"tags": ["a"]})

    assert empty.status_code == 400
    assert "file_name and/or tags" in empty.json()["detail"]
    assert unknown.status_code == 404


async def test_a_batch_upload_tags_every_file(gateway: Gateway, collection: str) -> None:
    response = await gateway.client.post(
        f"/v1/collections/{collection}/documents:batch",
        files=[("files", ("h1.md", doc("one"))), ("files", ("h2.md", doc("two")))],
        data={"tags": "batch, import"},
    )
    refused = await gateway.client.post(
        f"/v1/collections/{collection}/documents:batch",
        files=[("files", ("h3.md", doc("three")))],
        data={"tags": "a|b"},
    )

    assert response.status_code == 207, response.text
    assert [r["tags"] for r in response.json()["results"]] == [["batch", "import"], ["batch", "import"]]
    assert refused.status_code == 422


async def test_a_direct_upload_applies_its_tags_at_finalize(gateway: Gateway, collection: str) -> None:
    ticket = await gateway.client.post(
        f"/v1/collections/{collection}/uploads", json={"file_name": "direct.md", "tags": ["Direct"]}
    )
    refused = await gateway.client.post(
        f"/v1/collections/{collection}/uploads", json={"file_name": "direct2.md", "tags": ["no!"]}
    )
    await gateway.client.put(ticket.json()["url"], content=doc("direct"))
    finalized = await gateway.client.post(f"/v1/uploads/{ticket.json()['upload_id']}/finalize")

    assert ticket.status_code == 201, ticket.text
    assert refused.status_code == 422
    assert finalized.status_code == 202, finalized.text
    assert finalized.json()["tags"] == ["direct"]


@pytest.fixture
async def ingest_stub(make_ports: Callable[..., GatewayPorts]) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    servicer = IngestServicer(make_ports())
    port = free_port()
    server = await start_grpc_server(
        [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.IngestService"],
        host="127.0.0.1",
        port=port,
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield ingest_pb2_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
    await server.stop(grace=None)


async def test_a_grpc_upload_takes_tags_in_its_header(ingest_stub: ingest_pb2_grpc.IngestServiceStub) -> None:
    async def requests(tags: list[str]) -> AsyncIterator[ingest_pb2.UploadRequest]:
        header = ingest_pb2.UploadHeader(collection_id=new_id("tagged"), file_name=f"{len(tags)}.md", tags=tags)
        yield ingest_pb2.UploadRequest(header=header)
        yield ingest_pb2.UploadRequest(chunk=doc(f"grpc {len(tags)}"))

    response = await ingest_stub.Upload(requests(["GRPC", "b"]))
    document = await ingest_stub.GetDocument(ingest_pb2.GetDocumentRequest(document_id=response.document_id))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ingest_stub.Upload(requests(["ok", "bad,tag", "c"]))

    assert list(response.tags) == ["grpc", "b"]
    assert list(document.tags) == ["grpc", "b"]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "accepted" in (raised.value.details() or "")


async def test_a_tag_change_never_announced_is_announced_by_republishing(
    gateway_factory: GatewayFactory, collection: str
) -> None:
    gateway = await gateway_factory(GatewaySettings(republish_after_s=0.001))
    body = (await upload(gateway, "i.md", "iota", collection=collection)).json()
    # recorded, but the process died before announcing it
    assert await gateway.ports.documents.set_tags("default", body["document_id"], ["late"], actor="test")
    assert await tagged_events(gateway) == []

    await asyncio.sleep(0.01)
    first = await republish_unpublished(gateway.ports)
    second = await republish_unpublished(gateway.ports)
    events = await tagged_events(gateway, body["document_id"])

    assert first >= 1
    assert second == 0
    assert [(list(e.meta.tags), e.meta.tags_revision) for e in events] == [(["late"], 1)]
