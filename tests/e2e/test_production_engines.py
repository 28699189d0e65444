"""The life of documents on each engine set (``engine_set_stack``): the embedded engines, the
qdrant-client index over S3 on a three-server JetStream cluster, and production's Qdrant server
and MinIO (containers, where a Docker engine is reachable; reported as skipped otherwise, never
as passed).

Upload several formats, chat with citations, upload a new version, delete, and the
consistency check finds nothing wrong, on every set alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from ragstream_core.control import BUCKET as CONTROL_BUCKET
from ragstream_core.events import DEAD_LETTER_STREAM, EVENTS_STREAM, INVENTORY_SUBJECT
from ragstream_core.proto.ragstream.v1.inventory_pb2 import InventoryRequest, InventoryResponse
from ragstream_core.settings import CoreSettings
from ragstream_core.storage import ObjectStore, open_object_store
from ragstream_devstack.e2e import Client
from ragstream_devstack.engine_sets import CONTAINER_LAYOUT, EngineSet
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import eventually, new_id

#: the engine the embedder reports for each set
ENGINE = {"embedded": "edge", "local-production": "qdrant-local", "containers": "qdrant-server"}
#: replicas of the JetStream streams each set runs with
REPLICAS = {"embedded": 1, "local-production": 3, "containers": 3}

DOCUMENTS: dict[str, tuple[bytes, str, str]] = {  # file name: bytes, question, words of the answer
    "lighthouse.md": (
        b"# Lighthouse of Varnholm\n\nThe lighthouse of Varnholm burns whale oil mixed with juniper resin.\n",
        "What does the lighthouse of Varnholm burn?",
        "juniper resin",
    ),
    "glassworks.html": (
        b"<html><head><title>Glassworks</title></head><body><h1>Glassworks of Ombria</h1>"
        b"<p>The glassworks of Ombria melt sand from the river Tesk at dawn.</p></body></html>",
        "Where does the sand of the glassworks of Ombria come from?",
        "river Tesk",
    ),
    "ferries.csv": (
        b"ferry,harbour,departure\nMarigold,Kessel Bay,06:40\nSaltwren,Orvik Pier,09:15\nBluefin,Lantern Quay,13:05\n",
        "When does the Saltwren ferry leave Orvik Pier?",
        "09:15",
    ),
}


@pytest.fixture
async def client(engine_set_stack: tuple[EngineSet, Stack]) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(timeout=120) as http:
        yield Client(engine_set_stack[1], http)


def objects_of(engines: EngineSet, stack: Stack) -> ObjectStore:
    """The object store the services use, opened with the same settings."""
    if engines.s3 is None:
        return open_object_store(CoreSettings(data_dir=stack.data_dir, object_store="local"))
    endpoint, access_key, secret_key, bucket = engines.s3
    return open_object_store(
        CoreSettings(
            object_store="s3",
            s3_endpoint=endpoint,
            s3_access_key=access_key,
            s3_secret_key=secret_key,
            s3_bucket=bucket,
        )
    )


async def inventory(stack: Stack) -> InventoryResponse:
    """The embedder's index inventory of tenant ``default``, over NATS as the gateway asks it."""
    connection = await nats.connect(stack.bus_url)
    try:
        reply = await connection.request(
            INVENTORY_SUBJECT, InventoryRequest(tenant_id="default").SerializeToString(), timeout=30
        )
    finally:
        await connection.close()
    response = InventoryResponse.FromString(reply.data)
    assert not response.error, response.error
    return response


async def upload_indexed(client: Client, collection: str, name: str, data: bytes) -> dict[str, Any]:
    response = await client.upload(collection, name, data)
    assert response.status_code == 202, response.text
    (job,) = await client.wait_done([response.json()["job_id"]], within_s=300)
    assert job["status"] == "indexed", job
    return dict(response.json())


async def test_every_format_is_indexed_and_answers_with_its_citation(
    client: Client, engine_set_stack: tuple[EngineSet, Stack], corpus: Path
) -> None:
    engines, stack = engine_set_stack
    collection = new_id(f"formats-{engines.name}")
    files = {name: data for name, (data, _, _) in DOCUMENTS.items()}
    files["lorem_ipsum.docx"] = (corpus / "docx" / "lorem_ipsum.docx").read_bytes()
    uploads = await asyncio.gather(*(client.upload(collection, name, data) for name, data in files.items()))
    assert [u.status_code for u in uploads] == [202] * len(files), [u.text for u in uploads]
    jobs = await client.wait_done([u.json()["job_id"] for u in uploads], within_s=300)
    assert {j["file_name"]: j["status"] for j in jobs} == dict.fromkeys(files, "indexed")
    objects = objects_of(engines, stack)
    for upload in uploads:  # the source bytes are in this set's object store
        assert await objects.exists(f"uploads/default/{upload.json()['sha256']}"), upload.json()

    for name, (_, question, answer_words) in DOCUMENTS.items():
        answer = await client.chat(collection, question)
        top = answer["citations"][0]
        assert top["file_name"] == name, (question, answer["citations"])
        assert answer_words in top["text"], top
    points = {
        (v.document_id, v.version): v.points for v in (await inventory(stack)).versions if v.collection_id == collection
    }
    assert len(points) == len(files)
    assert all(n > 0 for n in points.values()), points


async def test_a_new_version_answers_instead_of_the_old_and_the_old_points_go(
    client: Client, engine_set_stack: tuple[EngineSet, Stack]
) -> None:
    engines, _ = engine_set_stack
    collection = new_id(f"versions-{engines.name}")
    first = await upload_indexed(
        client, collection, "tolls.md", b"# Tolls\n\nThe bridge toll of Castelmere is forty copper coins per cart.\n"
    )
    second = await upload_indexed(
        client, collection, "tolls.md", b"# Tolls\n\nThe bridge toll of Castelmere is seventy silver coins per cart.\n"
    )

    assert second["document_id"] == first["document_id"]
    answer = await client.chat(collection, "What is the bridge toll of Castelmere?")
    cited = " ".join(c["text"] for c in answer["citations"] if c["document_id"] == first["document_id"])
    assert "seventy silver" in cited
    assert "forty copper" not in cited
    versions = await client.points(first["document_id"])
    assert set(versions) == {"2"}, versions
    assert versions["2"] > 0


async def test_a_deleted_document_leaves_no_points_no_bytes_and_no_answer(
    client: Client, engine_set_stack: tuple[EngineSet, Stack]
) -> None:
    engines, stack = engine_set_stack
    collection = new_id(f"delete-{engines.name}")
    upload = await upload_indexed(
        client, collection, "mill.md", b"# Mill\n\nThe windmill of Osterhag grinds barley for the monastery bakery.\n"
    )
    objects = objects_of(engines, stack)
    source = f"uploads/default/{upload['sha256']}"
    assert await objects.exists(source)

    # the gateway learns that the job ended from its event, a moment after progress shows it: until
    # then it answers 409 (job running), as it would to any client
    deleted = await eventually(
        lambda: client.http.delete(f"{stack.url('ingest-gateway')}/v1/documents/{upload['document_id']}"),
        lambda r: r.status_code != 409,
        within_s=30,
        interval_s=0.25,
    )
    assert deleted.status_code == 202, deleted.text
    (job,) = await client.wait_done([deleted.json()["job_id"]])

    assert job["status"] == "deleted", job
    assert await client.points(upload["document_id"]) == {}
    assert not await objects.exists(source)
    answer = await client.chat(collection, "What does the windmill of Osterhag grind?")
    assert upload["document_id"] not in {c["document_id"] for c in answer["citations"]}


async def test_the_engine_is_the_sets_and_the_consistency_check_finds_nothing_wrong(
    client: Client, engine_set_stack: tuple[EngineSet, Stack]
) -> None:
    engines, stack = engine_set_stack
    collection = new_id(f"check-{engines.name}")
    await upload_indexed(client, collection, "orchard.md", b"# Orchard\n\nThe orchard of Maruvel grows violet pears.\n")

    assert (await inventory(stack)).engine == ENGINE[engines.name]
    connection = await nats.connect(stack.bus_url)
    try:  # the services created the streams and the bucket with the set's replicas
        js = connection.jetstream()
        replicas = {
            name: (await js.stream_info(name)).config.num_replicas
            for name in (EVENTS_STREAM, DEAD_LETTER_STREAM, f"KV_{CONTROL_BUCKET}")
        }
    finally:
        await connection.close()
    assert replicas == dict.fromkeys(replicas, REPLICAS[engines.name])
    # readiness covers every dependency: the embedder its index (a server is asked), the parser NATS
    embedder = (await client.http.get(f"{stack.url('embedder')}/readyz")).json()
    parser = (await client.http.get(f"{stack.url('parser')}/readyz")).json()
    assert embedder["checks"] == {"nats": "ok", "objects": "ok", "index": "ok"}, embedder
    assert parser["checks"] == {"docling": "ok", "nats": "ok", "objects": "ok"}, parser
    report = await eventually(
        lambda: client.http.get(f"{stack.url('ingest-gateway')}/v1/admin/consistency"),
        lambda r: r.status_code == 200 and r.json()["consistent"],
        within_s=30,
        interval_s=1.0,
    )
    checked = report.json()["checked"]
    assert min(checked["documents"], checked["objects"], checked["points"]) >= 1, checked
    if engines.qdrant_url:  # the server created the collections with the configured layout
        from qdrant_client import QdrantClient

        server = QdrantClient(url=engines.qdrant_url)
        try:
            for name in ("ragstream_chunks_v2", "ragstream_chunks_documents"):
                params = server.get_collection(name).config.params
                layout = {k: getattr(params, k) for k in CONTAINER_LAYOUT}
                assert layout == CONTAINER_LAYOUT, (name, layout)
        finally:
            server.close()
