"""The consistency check in the gateway: real PostgreSQL, a real object store (local and S3), and
the index of the embedder's own engine (Qdrant Edge) answering over a real NATS server."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.bus import Bus
from ragstream_core.events import DELETE_POINTS_SUBJECT, INVENTORY_SUBJECT, chunks_key
from ragstream_core.proto.ragstream.v1.inventory_pb2 import DeletePointsRequest, InventoryRequest
from ragstream_core.storage import ObjectStore, S3ObjectStore
from ragstream_devstack.s3 import SeaweedS3
from ragstream_devstack.testing import new_id
from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.index import ChunkPoint
from ragstream_embedder.inventory import delete_points, inventory
from ragstream_embedder.workers import AsyncIndex
from ragstream_gateway.app import create_app
from ragstream_gateway.consistency import ConsistencyCheck, NatsIndexAdmin
from ragstream_gateway.consistency_repository import ConsistencyRepository
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.settings import GatewaySettings

DIM = 8


@dataclass
class Setup:
    ports: GatewayPorts
    index: EdgeIndex
    client: httpx.AsyncClient
    check: ConsistencyCheck
    tenant: str

    async def upload(self, collection: str, name: str, text: str) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/collections/{collection}/documents",
            files={"file": (name, f"# {name}\n\n{text}\n".encode())},
            headers={"X-Tenant-Id": self.tenant},
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def indexed(self, upload: dict[str, Any], chunks: int) -> None:
        """What the pipeline does for a version: chunks stored, points written and activated, row indexed."""
        document_id, version = upload["document_id"], upload["version"]
        await self.ports.objects.put_bytes(chunks_key(self.tenant, document_id, version), b'{"chunks": []}')
        self.write_points(upload["collection_id"], document_id, version, chunks)
        self.index.activate(self.tenant, document_id, version, chunks)
        await self.ports.documents.version_indexed(upload["job_id"], chunk_count=chunks)

    def write_points(self, collection: str, document_id: str, version: int, n: int) -> None:
        points = [
            ChunkPoint(self.tenant, collection, document_id, version, i, f"copper lantern {i}", "f.md", "text/markdown")
            for i in range(n)
        ]
        vectors = np.random.default_rng(version).normal(size=(n, DIM)).astype(np.float32)
        self.index.upsert(points, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))

    async def report(self, **params: str) -> dict[str, Any]:
        response = await self.client.get("/v1/admin/consistency", params=params, headers={"X-Tenant-Id": self.tenant})
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(params=["local", "s3"])
async def setup(
    request: pytest.FixtureRequest,
    make_ports: Callable[..., GatewayPorts],
    gateway_pool: AsyncConnectionPool,
    bus: Bus,
    tmp_path: Path,
) -> AsyncIterator[Setup]:
    """A gateway over the local store or S3 (a real SeaweedFS server); each test has its own tenant,
    so its objects have prefixes of their own in the shared bucket."""
    index = EdgeIndex(path=tmp_path / "edge", dimensions=DIM, optimize_idle_s=3600)
    served = AsyncIndex(index)
    await bus.serve(INVENTORY_SUBJECT, InventoryRequest, functools.partial(inventory, index=served), queue="embedder")
    await bus.serve(
        DELETE_POINTS_SUBJECT, DeletePointsRequest, functools.partial(delete_points, index=served), queue="embedder"
    )
    objects: ObjectStore | None = None
    if request.param == "s3":
        server: SeaweedS3 = request.getfixturevalue("s3_server")
        objects = S3ObjectStore(
            endpoint=server.endpoint, access_key=server.access_key, secret_key=server.secret_key, bucket="consistency"
        )
    ports = make_ports(GatewaySettings(), objects=objects)
    check = ConsistencyCheck(
        ConsistencyRepository(gateway_pool), ports.objects, NatsIndexAdmin(bus, timeout_s=10), min_age_s=0
    )
    app = create_app(ports, progress_url="http://progress.test")
    app.state.consistency = check
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        yield Setup(ports, index, client, check, new_id("tenant"))
    index.close()


async def test_a_healthy_tenant_is_consistent_and_counted(setup: Setup) -> None:
    a = await setup.upload("c1", "a.md", "Alpha text.")
    b = await setup.upload("c2", "b.md", "Beta text.")
    await setup.indexed(a, 3)
    await setup.indexed(b, 2)

    report = await setup.report()
    one = await setup.report(collection_id="c2")

    assert report == {
        "consistent": True,
        "checked": {"documents": 2, "versions": 2, "objects": 4, "points": 5},
        "problems": [],
        "repaired": [],
    }
    assert one["checked"] == {"documents": 1, "versions": 1, "objects": 2, "points": 2}


async def test_work_in_flight_is_never_a_problem(setup: Setup) -> None:
    first = await setup.upload("c", "doc.md", "First text.")
    await setup.indexed(first, 2)
    # a new version just activated by the embedder (the old one's points gone), the row not yet
    # updated from its event: the registry still says version 1 is the indexed one
    second = await setup.upload("c", "doc.md", "Second text, longer.")
    setup.write_points("c", second["document_id"], second["version"], 4)
    setup.index.activate(setup.tenant, second["document_id"], second["version"], 4)
    # a version being embedded: inactive points written, the row processing
    other = await setup.upload("c", "other.md", "Other text.")
    setup.write_points("c", other["document_id"], other["version"], 2)
    # an upload whose version was not yet processed at all
    await setup.upload("c", "queued.md", "Queued text.")

    report = await setup.report()

    assert report["consistent"] is True, report


async def test_young_orphans_are_left_alone_until_old_enough(setup: Setup) -> None:
    await setup.ports.objects.put_bytes(f"uploads/{setup.tenant}/{'0' * 64}", b"an upload between its steps")
    patient = ConsistencyCheck(setup.check.registry, setup.ports.objects, setup.check.index, min_age_s=300)

    young = await patient.check(setup.tenant)
    old = await setup.check.check(setup.tenant)

    assert young.body()["consistent"] is True
    assert [(p.kind, p.key, p.repairable) for p in old.problems] == [
        ("orphan_object", f"uploads/{setup.tenant}/{'0' * 64}", True)
    ]


async def test_superseded_leftovers_and_short_versions_are_found_and_repaired(setup: Setup) -> None:
    first = await setup.upload("c", "doc.md", "First text.")
    await setup.indexed(first, 2)
    second = await setup.upload("c", "doc.md", "Second text.")
    await setup.indexed(second, 3)
    setup.write_points("c", first["document_id"], 1, 2)  # the old version's points came back
    short = await setup.upload("c", "short.md", "Short text.")
    await setup.indexed(short, 3)
    setup.index.delete_versions(setup.tenant, short["document_id"], [1])
    setup.write_points("c", short["document_id"], 1, 1)  # one of three chunks left
    setup.index.activate(setup.tenant, short["document_id"], 1, 1)

    found = await setup.report()
    repair = await setup.client.post("/v1/admin/consistency/repair", headers={"X-Tenant-Id": setup.tenant})

    assert {(p["kind"], p["document_id"], p["version"], p["repairable"]) for p in found["problems"]} == {
        ("orphan_points", first["document_id"], 1, True),
        ("missing_points", short["document_id"], 1, True),
    }
    assert "superseded" in next(p["detail"] for p in found["problems"] if p["kind"] == "orphan_points")
    assert "1 of 3 points" in next(p["detail"] for p in found["problems"] if p["kind"] == "missing_points")
    body = repair.json()
    assert {p["kind"] for p in body["repaired"]} == {"orphan_points", "missing_points"}
    assert body["consistent"] is True  # the re-embed of short.md is a job in flight now
    assert setup.index.count(setup.tenant, first["document_id"]) == {2: 3}
    versions = await setup.ports.documents.document_versions(setup.tenant, short["document_id"])
    assert [(v.version, v.reason, v.status) for v in versions] == [
        (1, "upload", "indexed"),
        (2, "reembed", "processing"),
    ]


async def test_an_open_direct_upload_keeps_its_staged_bytes(setup: Setup) -> None:
    announced = await setup.client.post(
        "/v1/collections/c/uploads", json={"file_name": "big.md"}, headers={"X-Tenant-Id": setup.tenant}
    )
    assert announced.status_code == 201, announced.text
    upload_id = announced.json()["upload_id"]
    await setup.ports.objects.put_bytes(f"staging/{setup.tenant}/{upload_id}", b"# staged")
    await setup.ports.objects.put_bytes(f"staging/{setup.tenant}/abandoned", b"# nobody's")

    report = await setup.report()

    assert [(p["kind"], p["key"]) for p in report["problems"]] == [
        ("orphan_object", f"staging/{setup.tenant}/abandoned")
    ]


async def test_bad_requests_say_what_is_accepted(setup: Setup) -> None:
    headers = {"X-Tenant-Id": setup.tenant}
    unknown = await setup.client.get("/v1/admin/consistency", params={"collection_id": "nope"}, headers=headers)
    invalid = await setup.client.get("/v1/admin/consistency", params={"collection_id": "../x"}, headers=headers)
    extra = await setup.client.post("/v1/admin/consistency/repair", json={"collection": "c"}, headers=headers)
    not_object = await setup.client.post("/v1/admin/consistency/repair", json=["c"], headers=headers)

    assert unknown.status_code == 404
    assert "collection 'nope' does not exist" in unknown.text
    assert invalid.status_code == 400
    assert "letters, digits" in invalid.text
    assert extra.status_code in (400, 422)
    assert "collection" in extra.text
    assert not_object.status_code in (400, 422)


async def test_an_unanswered_index_is_503_with_the_reason(
    make_ports: Callable[..., GatewayPorts], gateway_pool: AsyncConnectionPool, bus_factory: Any
) -> None:
    lonely = await bus_factory(service="gateway-alone")  # nobody serves the index subjects here
    ports = make_ports(GatewaySettings())
    app = create_app(ports, progress_url="http://progress.test")
    app.state.consistency = ConsistencyCheck(
        ConsistencyRepository(gateway_pool), ports.objects, NatsIndexAdmin(lonely, timeout_s=1), min_age_s=0
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        response = await client.get("/v1/admin/consistency")

    assert response.status_code == 503
    assert "embedder did not answer" in response.text


async def test_points_of_a_deleted_document_go_for_good(setup: Setup) -> None:
    upload = await setup.upload("c", "old.md", "Old text.")
    await setup.indexed(upload, 2)
    second = await setup.upload("c", "old.md", "Newer text.")
    await setup.indexed(second, 2)
    deleted = await setup.client.delete(f"/v1/documents/{upload['document_id']}", headers={"X-Tenant-Id": setup.tenant})
    assert deleted.status_code == 202, deleted.text
    # the delete event never reached the embedder: the document's points stay

    found = await setup.report()
    repair = await setup.client.post(
        "/v1/admin/consistency/repair", json={"collection_id": "c"}, headers={"X-Tenant-Id": setup.tenant}
    )

    assert [(p["kind"], p["document_id"], p["version"]) for p in found["problems"]] == [
        ("orphan_points", upload["document_id"], None)
    ]
    assert "deleted document (v2: 2)" in found["problems"][0]["detail"]
    assert repair.json()["consistent"] is True
    assert setup.index.count(setup.tenant, upload["document_id"]) == {}
    assert setup.index.is_deleted(setup.tenant, upload["document_id"], 2)  # a late activation is refused
