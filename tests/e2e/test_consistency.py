"""The consistency check over the whole system: damage each part behind its owner's back, find
every problem, repair, and the repaired documents answer again."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import qdrant_edge as qe

from ragstream_core.events import DELETE_POINTS_SUBJECT, point_id
from ragstream_core.proto.ragstream.v1.inventory_pb2 import DeletePointsRequest, DeletePointsResponse
from ragstream_core.storage import LocalObjectStore
from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id
from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.engines import open_index
from ragstream_embedder.index import SPARSE, ChunkIndex, ChunkPoint
from ragstream_embedder.qdrant_index import QdrantIndex

DOCUMENTS = {
    "gone.md": b"# Gone\n\nThe observatory of Veltrane keeps a brass telescope from 1702.\n",
    "pointless.md": b"# Harbor\n\nThe harbor of Quillon exports copper lanterns to every northern port.\n",
    "sparse.md": b"# Orchard\n\nThe orchard of Maruvel grows violet pears that ripen in late winter.\n",
    "deleted.md": b"# Mill\n\nThe windmill of Osterhag grinds barley for the monastery bakery.\n",
}
CHUNKS_COLLECTION = "ragstream_chunks"  # the embedder's default index name


@pytest.fixture(params=["edge", "qdrant-local"])
def engine_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    env = {
        "RAGSTREAM_ACK_WAIT_S": "6",
        "RAGSTREAM_RETRY_DELAY_S": "0.5",
        "RAGSTREAM_LOG_LEVEL": "INFO",
        # every damage below is made on purpose right before the check: none is too young to count
        "RAGSTREAM_GATEWAY_CONSISTENCY_MIN_AGE_S": "0",
        "RAGSTREAM_EMBEDDER_ENGINE": request.param,
    }
    stack = Stack(data_dir=tmp_path / "data", log_dir=tmp_path / "logs", env=env).start()
    try:
        yield request.param, stack
    finally:
        stack.stop()
        if request.session.testsfailed:
            for log in sorted((tmp_path / "logs").glob("*.log")):
                print(f"===== {log.name} =====\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))  # noqa: T201


def damage_index_offline(stack: Stack, engine: str, edits: Any) -> None:
    """Stop the embedder, change its index directly, start it again (the index is in-process)."""
    stack.stop_service("embedder")
    index = open_index(
        data_dir=stack.data_dir, collection=CHUNKS_COLLECTION, dimensions=384, engine=engine, optimize_idle_s=3600
    )
    try:
        edits(index)
    finally:
        index.close()
    stack.start_service("embedder")


def drop_sparse(index: ChunkIndex, ids: list[str]) -> None:
    if isinstance(index, EdgeIndex):
        index.chunks.update(qe.UpdateOperation.delete_vectors(ids, [SPARSE]))
        index.chunks.flush()
    else:
        assert isinstance(index, QdrantIndex)
        index.client.delete_vectors(index.collection, vectors=[SPARSE], points=ids)  # type: ignore[arg-type]


def stray_points(document_id: str, collection: str, version: int, n: int) -> list[ChunkPoint]:
    return [
        ChunkPoint("default", collection, document_id, version, i, f"stray text {i}", "stray.md", "text/markdown")
        for i in range(n)
    ]


def unit_vectors(n: int) -> np.ndarray:
    v = np.random.default_rng(7).normal(size=(n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def kinds(report: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(p["kind"], p["document_id"] or p["key"]) for p in report["problems"]}


async def test_check_finds_each_kind_of_damage_and_repair_mends_it(engine_stack: tuple[str, Stack]) -> None:
    engine, stack = engine_stack
    collection = new_id("verify")
    gateway = stack.url("ingest-gateway")
    async with httpx.AsyncClient(timeout=120) as http:
        client = Client(stack, http)
        uploads = {name: (await client.upload(collection, name, data)).json() for name, data in DOCUMENTS.items()}
        jobs = await client.wait_done([u["job_id"] for u in uploads.values()])
        assert {j["status"] for j in jobs} == {"indexed"}, jobs
        ids = {name: u["document_id"] for name, u in uploads.items()}
        clean = (await http.get(f"{gateway}/v1/admin/consistency")).json()

        # the registry loses a document; its points stay behind (a delete the embedder never saw)
        deleted = (await http.delete(f"{gateway}/v1/documents/{ids['deleted.md']}")).json()
        await client.wait_done([deleted["job_id"]])
        store = LocalObjectStore(stack.data_dir / "objects")
        # the store loses a source object and gains two no row refers to
        await store.delete(f"uploads/default/{uploads['gone.md']['sha256']}")
        stray_upload = f"uploads/default/{uuid.uuid4().hex}{uuid.uuid4().hex}"
        stray_chunks = f"chunks/default/{uuid.uuid4()}/v1.json"
        await store.put_bytes(stray_upload, b"bytes nobody uploaded")
        await store.put_bytes(stray_chunks, b"{}")
        # the index loses one document's points over the embedder's own delete request
        removed = await stack_request_delete(stack, ids["pointless.md"], [1])
        unknown = str(uuid.uuid4())

        def edit(index: ChunkIndex) -> None:
            drop_sparse(index, [point_id(ids["sparse.md"], 1, 0)])
            index.upsert(stray_points(unknown, collection, 1, 2), unit_vectors(2))
            index.activate("default", unknown, 1, 2)
            index.upsert(stray_points(ids["deleted.md"], collection, 1, 1), unit_vectors(1))

        damage_index_offline(stack, engine, edit)
        found = (await http.get(f"{gateway}/v1/admin/consistency")).json()
        scoped = (await http.get(f"{gateway}/v1/admin/consistency", params={"collection_id": collection})).json()
        repair = await http.post(f"{gateway}/v1/admin/consistency/repair", json={"collection_id": collection})
        whole = (await http.post(f"{gateway}/v1/admin/consistency/repair")).json()
        reembeds = await wait_reembedded(client, http, gateway, [ids["pointless.md"], ids["sparse.md"]])
        after_repair = (await http.get(f"{gateway}/v1/admin/consistency")).json()
        # the one thing repair cannot do: bring back lost bytes; deleting the document settles it
        gone = (await http.delete(f"{gateway}/v1/documents/{ids['gone.md']}")).json()
        await client.wait_done([gone["job_id"]])
        final = (await http.get(f"{gateway}/v1/admin/consistency")).json()
        harbor = await client.chat(collection, "What does the harbor of Quillon export?")
        orchard = await client.chat(collection, "Which pears grow in the orchard of Maruvel?")
        unknown_request = await http.get(f"{gateway}/v1/admin/consistency", params={"collection_id": "no-such"})
        bad_body = await http.post(f"{gateway}/v1/admin/consistency/repair", json={"collection": collection})

    assert clean["consistent"] is True, clean
    assert clean["checked"]["documents"] == 4
    assert clean["checked"]["versions"] == 4
    assert clean["checked"]["points"] >= 4
    assert clean["checked"]["objects"] >= 8
    assert removed >= 1
    assert kinds(found) == {
        ("missing_object", ids["gone.md"]),
        ("orphan_object", stray_upload),
        ("orphan_object", stray_chunks.split("/")[2]),
        ("missing_points", ids["pointless.md"]),
        ("incomplete_vectors", ids["sparse.md"]),
        ("orphan_points", unknown),
        ("orphan_points", ids["deleted.md"]),
    }, found
    assert found["consistent"] is False
    assert {p["kind"]: p["repairable"] for p in found["problems"]}["missing_object"] is False
    # a collection's check leaves out objects no row of it refers to
    assert kinds(scoped) == kinds(found) - {
        ("orphan_object", stray_upload),
        ("orphan_object", stray_chunks.split("/")[2]),
    }
    assert repair.status_code == 200, repair.text
    first = repair.json()
    assert {(p["kind"], p["document_id"]) for p in first["repaired"]} == {
        ("missing_points", ids["pointless.md"]),
        ("incomplete_vectors", ids["sparse.md"]),
        ("orphan_points", unknown),
        ("orphan_points", ids["deleted.md"]),
    }
    assert kinds(first) == {("missing_object", ids["gone.md"])}  # the re-embeds run as jobs meanwhile
    assert {p["key"] for p in whole["repaired"]} == {stray_upload, stray_chunks}
    assert {j["status"] for j in reembeds} == {"indexed"}
    assert kinds(after_repair) == {("missing_object", ids["gone.md"])}, after_repair
    assert final["consistent"] is True, final
    assert final["problems"] == []
    assert ids["pointless.md"] in {c["document_id"] for c in harbor["citations"]}
    assert ids["sparse.md"] in {c["document_id"] for c in orchard["citations"]}
    assert unknown_request.status_code == 404
    assert "no-such" in unknown_request.text
    assert bad_body.status_code in (400, 422)
    assert "collection" in bad_body.text


async def stack_request_delete(stack: Stack, document_id: str, versions: list[int]) -> int:
    """Ask the running embedder to remove points, as the repair does (NATS request/reply)."""
    import nats

    connection = await nats.connect(stack.bus_url)
    try:
        reply = await connection.request(
            DELETE_POINTS_SUBJECT,
            DeletePointsRequest(tenant_id="default", document_id=document_id, versions=versions).SerializeToString(),
            timeout=30,
        )
    finally:
        await connection.close()
    response = DeletePointsResponse.FromString(reply.data)
    assert not response.error, response.error
    return response.removed


async def wait_reembedded(
    client: Client, http: httpx.AsyncClient, gateway: str, document_ids: list[str]
) -> list[dict[str, Any]]:
    """Wait for the re-embed job of each document (its newest version's job)."""
    jobs = []
    for document_id in document_ids:
        versions = (await http.get(f"{gateway}/v1/documents/{document_id}/versions")).json()["versions"]
        jobs.append(versions[-1]["job_id"])
    return await client.wait_done(jobs)
