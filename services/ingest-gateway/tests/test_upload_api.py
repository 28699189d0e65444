"""The gateway's REST API with real ports: PostgreSQL, JetStream and a local object store."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from ragstream_core.events import EVENTS_STREAM, SUBJECT_OF
from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded
from ragstream_devstack.testing import new_id
from ragstream_gateway.media import MARKDOWN, PDF, accepted_list
from ragstream_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import Gateway, GatewayFactory

PROGRESS_URL = "http://progress.test"


def markdown(corpus: Path) -> bytes:
    return (corpus / "md" / "duck.md").read_bytes()


async def test_upload_is_accepted_with_a_new_job_at_version_one(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")

    response = await gateway.upload(collection, "duck.md", markdown(corpus))

    assert response.status_code == 202
    body = response.json()
    assert body["version"] == 1
    assert body["job_id"]
    assert body["document_id"]
    assert body["unchanged"] is False
    assert body["collection_id"] == collection
    assert body["media_type"] == MARKDOWN
    assert body["sha256"] == hashlib.sha256(markdown(corpus)).hexdigest()
    assert body["job_url"] == f"{PROGRESS_URL}/v1/jobs/{body['job_id']}"


async def test_upload_announces_the_document_in_jetstream(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")

    body = (await gateway.upload(collection, "duck.md", markdown(corpus))).json()

    msg = await gateway.bus.js.get_last_msg(EVENTS_STREAM, SUBJECT_OF[DocUploaded])
    event = DocUploaded.FromString(msg.data or b"")
    assert (event.meta.job_id, event.meta.document_id, event.meta.version) == (
        body["job_id"],
        body["document_id"],
        1,
    )
    assert (event.meta.tenant_id, event.meta.collection_id, event.meta.file_name) == ("default", collection, "duck.md")
    assert event.meta.event_id == f"{body['job_id']}:uploaded"
    assert event.media_type == MARKDOWN
    assert event.size_bytes == len(markdown(corpus))
    assert event.sha256 == body["sha256"]
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == f"{body['job_id']}:uploaded"


async def test_uploaded_bytes_are_stored_under_the_events_object_key(gateway: Gateway, corpus: Path) -> None:
    data = (corpus / "pdf" / "multi_page.pdf").read_bytes()

    body = (await gateway.upload(new_id("col"), "multi_page.pdf", data)).json()

    [event] = await gateway.uploaded_events(body["job_id"])
    assert event.media_type == PDF
    assert await gateway.ports.objects.get_bytes(event.object_key) == data


async def test_upload_is_recorded_as_published(gateway: Gateway, corpus: Path) -> None:
    body = (await gateway.upload(new_id("col"), "duck.md", markdown(corpus))).json()

    row = await gateway.ports.documents.get_version("default", body["document_id"], 1)

    assert row is not None
    assert row.published_at is not None


async def test_same_bytes_again_return_the_existing_version_without_a_new_event(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "duck.md", markdown(corpus))).json()

    again = await gateway.upload(collection, "duck.md", markdown(corpus))

    assert again.status_code == 200
    body = again.json()
    assert body["unchanged"] is True
    assert (body["job_id"], body["document_id"], body["version"]) == (
        first["job_id"],
        first["document_id"],
        first["version"],
    )
    assert len(await gateway.uploaded_events()) == 1


async def test_same_bytes_under_another_name_are_still_unchanged(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "duck.md", markdown(corpus))).json()

    again = await gateway.upload(collection, "copy-of-duck.md", markdown(corpus))

    assert again.status_code == 200
    assert again.json()["job_id"] == first["job_id"]


async def test_same_bytes_in_another_collection_are_a_new_document(gateway: Gateway, corpus: Path) -> None:
    first = (await gateway.upload(new_id("col"), "duck.md", markdown(corpus))).json()

    other = await gateway.upload(new_id("col"), "duck.md", markdown(corpus))

    assert other.status_code == 202
    assert other.json()["document_id"] != first["document_id"]


async def test_forced_upload_of_same_bytes_opens_version_two(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "duck.md", markdown(corpus))).json()

    forced = await gateway.upload(collection, "duck.md", markdown(corpus), force=True)

    assert forced.status_code == 202
    body = forced.json()
    assert body["unchanged"] is False
    assert body["document_id"] == first["document_id"]
    assert body["version"] == 2
    assert body["job_id"] != first["job_id"]
    assert [e.meta.version for e in await gateway.uploaded_events()] == [1, 2]


async def test_changed_file_with_the_same_name_becomes_version_two(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "duck.md", markdown(corpus))).json()

    changed = await gateway.upload(collection, "duck.md", markdown(corpus) + b"\n## Winter\n\nDucks fly south.\n")

    assert changed.status_code == 202
    body = changed.json()
    assert (body["document_id"], body["version"]) == (first["document_id"], 2)
    assert body["sha256"] != first["sha256"]


async def test_empty_file_is_refused_with_400_and_a_reason(gateway: Gateway) -> None:
    response = await gateway.upload(new_id("col"), "empty.md", b"")

    assert response.status_code == 400
    assert response.json()["error"] == "EmptyUpload"
    assert "empty" in response.json()["detail"]
    assert await gateway.uploaded_events() == []


async def test_content_contradicting_its_name_is_refused_with_415_listing_accepted_types(
    gateway: Gateway, corpus: Path
) -> None:
    response = await gateway.upload(new_id("col"), "report.pdf", markdown(corpus))

    assert response.status_code == 415
    body = response.json()
    assert body["error"] == "UnsupportedMediaType"
    assert "the name says .pdf but the content is plain text" in body["detail"]
    assert accepted_list() in body["detail"]


async def test_a_format_we_do_not_read_is_refused_with_415(gateway: Gateway) -> None:
    response = await gateway.upload(new_id("col"), "letter.rtf", b"{\\rtf1 A letter}")

    assert response.status_code == 415
    assert "'.rtf' is not supported" in response.json()["detail"]


async def test_upload_over_the_limit_is_refused_with_413(gateway_factory: GatewayFactory, corpus: Path) -> None:
    gateway = await gateway_factory(GatewaySettings(max_upload_bytes=1000))
    data = (corpus / "csv" / "csv-comma.csv").read_bytes() * 2

    response = await gateway.upload(new_id("col"), "big.csv", data)

    assert response.status_code == 413
    assert response.json()["error"] == "UploadTooLarge"
    assert "1000 bytes" in response.json()["detail"]
    assert await gateway.uploaded_events() == []


async def test_announced_size_over_the_limit_is_refused_before_reading(
    gateway_factory: GatewayFactory, corpus: Path
) -> None:
    gateway = await gateway_factory(GatewaySettings(max_upload_bytes=1000))
    data = (corpus / "html" / "wiki_duck.html").read_bytes()

    response = await gateway.upload(new_id("col"), "wiki_duck.html", data)

    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]


async def test_upload_at_exactly_the_limit_is_accepted(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(GatewaySettings(max_upload_bytes=1000))

    response = await gateway.upload(new_id("col"), "full.md", b"#" * 1000)

    assert response.status_code == 202
    assert response.json()["size_bytes"] == 1000


async def test_invalid_collection_id_is_refused_with_400(gateway: Gateway, corpus: Path) -> None:
    response = await gateway.upload("bad id!", "duck.md", markdown(corpus))

    assert response.status_code == 400
    assert "collection 'bad id!' is not valid" in response.json()["detail"]


async def test_invalid_tenant_header_is_refused_with_400(gateway: Gateway, corpus: Path) -> None:
    response = await gateway.upload(new_id("col"), "duck.md", markdown(corpus), tenant="../other")

    assert response.status_code == 400
    assert "tenant '../other' is not valid" in response.json()["detail"]


async def test_file_name_directories_are_dropped_from_the_stored_name(gateway: Gateway, corpus: Path) -> None:
    response = await gateway.upload(new_id("col"), "../../etc/duck.md", markdown(corpus))

    assert response.status_code == 202
    assert response.json()["file_name"] == "duck.md"


async def test_document_lists_all_its_versions(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    first = (await gateway.upload(collection, "duck.md", markdown(corpus))).json()
    second = (await gateway.upload(collection, "duck.md", markdown(corpus) + b"\nMore.\n")).json()

    response = await gateway.client.get(f"/v1/documents/{first['document_id']}")

    assert response.status_code == 200
    body = response.json()
    assert (body["document_id"], body["collection_id"], body["file_name"]) == (
        first["document_id"],
        collection,
        "duck.md",
    )
    assert [(v["version"], v["job_id"]) for v in body["versions"]] == [
        (1, first["job_id"]),
        (2, second["job_id"]),
    ]


async def test_unknown_document_is_404_with_a_reason(gateway: Gateway) -> None:
    missing = new_id("doc")

    response = await gateway.client.get(f"/v1/documents/{missing}")

    assert response.status_code == 404
    assert response.json()["detail"] == f"document {missing!r} does not exist"


async def test_document_of_another_tenant_is_404(gateway: Gateway, corpus: Path) -> None:
    body = (await gateway.upload(new_id("col"), "duck.md", markdown(corpus), tenant=new_id("tenant"))).json()

    response = await gateway.client.get(f"/v1/documents/{body['document_id']}")

    assert response.status_code == 404


async def test_collection_lists_the_newest_version_of_each_document(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    await gateway.upload(collection, "duck.md", markdown(corpus))
    newest = (await gateway.upload(collection, "duck.md", markdown(corpus) + b"\nMore.\n")).json()
    other = (await gateway.upload(collection, "mixed.md", (corpus / "md" / "mixed.md").read_bytes())).json()

    response = await gateway.client.get(f"/v1/collections/{collection}/documents")

    assert response.status_code == 200
    listed = {(d["document_id"], d["version"]) for d in response.json()["documents"]}
    assert listed == {(newest["document_id"], 2), (other["document_id"], 1)}


async def test_concurrent_uploads_under_one_name_get_distinct_versions(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    contents = [markdown(corpus) + f"\nRevision {n}.\n".encode() for n in range(4)]

    responses = await asyncio.gather(*(gateway.upload(collection, "duck.md", data) for data in contents))

    assert [r.status_code for r in responses] == [202] * 4
    assert len({r.json()["document_id"] for r in responses}) == 1
    assert sorted(r.json()["version"] for r in responses) == [1, 2, 3, 4]
