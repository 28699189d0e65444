"""REST batch upload: one result per file, in order; one bad file does not reject the others."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ragstream_devstack.testing import new_id
from ragstream_gateway.media import MARKDOWN, PDF, accepted_list
from ragstream_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import Gateway, GatewayFactory

Files = list[tuple[str, tuple[str, bytes]]]


async def batch(gateway: Gateway, collection_id: str, files: list[tuple[str, bytes]], **params: str) -> httpx.Response:
    form: Files = [("files", (name, data)) for name, data in files]
    return await gateway.client.post(f"/v1/collections/{collection_id}/documents:batch", files=form, params=params)


async def test_batch_answers_one_result_per_file_in_order(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    files = [
        ("duck.md", (corpus / "md" / "duck.md").read_bytes()),
        ("multi_page.pdf", (corpus / "pdf" / "multi_page.pdf").read_bytes()),
        ("mixed.md", (corpus / "md" / "mixed.md").read_bytes()),
    ]

    response = await batch(gateway, collection, files)

    assert response.status_code == 207
    body = response.json()
    assert [r["file_name"] for r in body["results"]] == ["duck.md", "multi_page.pdf", "mixed.md"]
    assert [r["status_code"] for r in body["results"]] == [202, 202, 202]
    assert [r["media_type"] for r in body["results"]] == [MARKDOWN, PDF, MARKDOWN]
    assert (body["accepted"], body["unchanged"], body["failed"]) == (3, 0, 0)


async def test_each_accepted_file_has_the_single_upload_body_and_its_own_job(gateway: Gateway, corpus: Path) -> None:
    data = (corpus / "md" / "duck.md").read_bytes()
    single = (await gateway.upload(new_id("col"), "duck.md", data)).json()

    [result] = (await batch(gateway, new_id("col"), [("duck.md", data)])).json()["results"]

    assert set(single) | {"status_code"} == set(result)
    assert result["unchanged"] is False
    assert result["job_url"].endswith(f"/v1/jobs/{result['job_id']}")
    [event] = await gateway.uploaded_events(result["job_id"])
    assert event.meta.document_id == result["document_id"]


async def test_one_bad_file_among_good_ones_gets_its_own_error(gateway: Gateway, corpus: Path) -> None:
    collection = new_id("col")
    files = [
        ("duck.md", (corpus / "md" / "duck.md").read_bytes()),
        ("report.pdf", b"plain words, not a PDF"),
        ("empty.md", b""),
        ("mixed.md", (corpus / "md" / "mixed.md").read_bytes()),
    ]

    body = (await batch(gateway, collection, files)).json()

    good, wrong_type, empty, other_good = body["results"]
    assert (good["status_code"], other_good["status_code"]) == (202, 202)
    assert wrong_type["status_code"] == 415
    assert wrong_type["error"] == "UnsupportedMediaType"
    assert "the name says .pdf but the content is plain text" in wrong_type["detail"]
    assert ", ".join(wrong_type["accepted_types"]) == accepted_list()
    assert (empty["status_code"], empty["error"]) == (400, "EmptyUpload")
    assert (body["accepted"], body["failed"]) == (2, 2)
    announced = {e.meta.job_id for e in await gateway.uploaded_events()}
    assert announced == {good["job_id"], other_good["job_id"]}


async def test_known_bytes_in_a_batch_are_unchanged(gateway: Gateway, corpus: Path) -> None:
    collection, data = new_id("col"), (corpus / "md" / "duck.md").read_bytes()
    first = (await gateway.upload(collection, "duck.md", data)).json()

    body = (await batch(gateway, collection, [("duck.md", data)])).json()

    [result] = body["results"]
    assert (result["status_code"], result["unchanged"], result["job_id"]) == (200, True, first["job_id"])
    assert (body["accepted"], body["unchanged"]) == (0, 1)


async def test_file_over_the_limit_fails_alone(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(GatewaySettings(max_upload_bytes=1000))

    body = (await batch(gateway, new_id("col"), [("big.md", b"#" * 1001), ("small.md", b"# Small\n")])).json()

    assert [r["status_code"] for r in body["results"]] == [413, 202]
    assert "1000 bytes" in body["results"][0]["detail"]


async def test_batch_larger_than_the_single_upload_limit_is_read(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(GatewaySettings(max_upload_bytes=1000))
    files = [(f"part-{n}.md", b"#" * 900 + f" {n}".encode()) for n in range(5)]

    response = await batch(gateway, new_id("col"), files)

    assert response.status_code == 207
    assert response.json()["accepted"] == 5


async def test_more_files_than_allowed_is_413_naming_the_limit(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(GatewaySettings(max_batch_files=3))
    files = [(f"part-{n}.md", f"# Part {n}\n".encode()) for n in range(4)]

    response = await batch(gateway, new_id("col"), files)

    assert response.status_code == 413
    assert response.json()["error"] == "UploadTooLarge"
    assert "a batch holds at most 3 files" in response.json()["detail"]
    assert response.json()["max_files"] == 3
    assert await gateway.uploaded_events() == []


async def test_exactly_the_allowed_number_of_files_is_read(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(GatewaySettings(max_batch_files=3))
    files = [(f"part-{n}.md", f"# Part {n}\n".encode()) for n in range(3)]

    response = await batch(gateway, new_id("col"), files)

    assert response.json()["accepted"] == 3


async def test_batch_announcing_more_bytes_than_allowed_is_413(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(GatewaySettings(max_batch_bytes=2000))

    response = await batch(gateway, new_id("col"), [("a.md", b"#" * 1500), ("b.md", b"#" * 1500)])

    assert response.status_code == 413
    assert "limit of 2000 bytes per request" in response.json()["detail"]


async def test_batch_without_files_is_400(gateway: Gateway) -> None:
    response = await gateway.client.post(
        f"/v1/collections/{new_id('col')}/documents:batch", files=[("file", ("a.md", b"# A\n"))]
    )

    assert response.status_code == 400
    assert "multipart field named 'files'" in response.json()["detail"]


async def test_batch_into_an_invalid_collection_is_400(gateway: Gateway) -> None:
    response = await batch(gateway, "bad id!", [("a.md", b"# A\n")])

    assert response.status_code == 400
    assert "collection 'bad id!' is not valid" in response.json()["detail"]


async def test_forced_batch_processes_known_bytes_again(gateway: Gateway) -> None:
    collection, data = new_id("col"), b"# Ducks\n\nThey swim.\n"
    await batch(gateway, collection, [("ducks.md", data)])

    body = (await batch(gateway, collection, [("ducks.md", data)], force="true")).json()

    assert (body["results"][0]["status_code"], body["results"][0]["version"]) == (202, 2)
