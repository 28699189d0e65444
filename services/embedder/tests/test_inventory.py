"""The index inventory and point removal of the consistency check, on each engine."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import qdrant_edge as qe

from ragstream_core.events import point_id
from ragstream_core.proto.ragstream.v1.inventory_pb2 import DeletePointsRequest, InventoryRequest
from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.index import DENSE, SPARSE, ChunkIndex, ChunkPoint
from ragstream_embedder.inventory import delete_points, inventory
from ragstream_embedder.qdrant_index import QdrantIndex
from ragstream_embedder.workers import AsyncIndex

DIM = 8


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def points(document_id: str, version: int, n: int, *, tenant: str = "t", collection: str = "c") -> list[ChunkPoint]:
    return [
        ChunkPoint(tenant, collection, document_id, version, i, f"lantern harbor {document_id} chunk {i}", "f.md", "md")
        for i in range(n)
    ]


def indexed(index: ChunkIndex, document_id: str, version: int, n: int, **scope: str) -> None:
    index.upsert(points(document_id, version, n, **scope), vectors(n, version))
    index.activate(scope.get("tenant", "t"), document_id, version, n)


def drop_vector(index: ChunkIndex, ids: list[str], name: str) -> None:
    """Damage: remove one named vector from these points, behind the index's back."""
    if isinstance(index, EdgeIndex):
        index.chunks.update(qe.UpdateOperation.delete_vectors(ids, [name]))
        index.chunks.flush()
    else:
        assert isinstance(index, QdrantIndex)
        index.client.delete_vectors(index.collection, vectors=[name], points=ids)  # type: ignore[arg-type]


@pytest.fixture
def index(index_factory: Callable[[int], ChunkIndex]) -> ChunkIndex:
    return index_factory(DIM)


def test_inventory_counts_points_per_version_and_names_the_active_one(index: ChunkIndex) -> None:
    indexed(index, "a", 1, 3)
    index.upsert(points("a", 2, 2), vectors(2, 2))  # a run in flight: written, not yet active
    indexed(index, "b", 1, 1, collection="other")
    indexed(index, "x", 1, 4, tenant="someone-else")

    everything = index.inventory("t")
    one_collection = index.inventory("t", "other")

    assert [(e.collection_id, e.document_id, e.version, e.points, e.active_points, e.active) for e in everything] == [
        ("c", "a", 1, 3, 3, True),
        ("c", "a", 2, 2, 0, False),
        ("other", "b", 1, 1, 1, True),
    ]
    assert [(e.document_id, e.version) for e in one_collection] == [("b", 1)]
    assert all(e.missing_dense == e.missing_sparse == 0 for e in everything)


def test_inventory_finds_points_missing_a_vector_but_not_chunks_without_words(index: ChunkIndex) -> None:
    indexed(index, "a", 1, 4)
    wordless = ChunkPoint("t", "c", "w", 1, 0, "", "w.md", "md")  # rightly no sparse vector
    index.upsert([wordless], vectors(1))
    index.activate("t", "w", 1, 1)

    drop_vector(index, [point_id("a", 1, 0)], DENSE)
    drop_vector(index, [point_id("a", 1, 1), point_id("a", 1, 2)], SPARSE)
    found = {e.document_id: e for e in index.inventory("t")}

    assert (found["a"].points, found["a"].missing_dense, found["a"].missing_sparse) == (4, 1, 2)
    assert (found["w"].points, found["w"].missing_dense, found["w"].missing_sparse) == (1, 0, 0)


def test_delete_versions_removes_only_those_versions(index: ChunkIndex) -> None:
    indexed(index, "a", 1, 3)
    index.upsert(points("a", 7, 2), vectors(2))  # stray points of a version nobody knows
    indexed(index, "b", 1, 2)

    removed = index.delete_versions("t", "a", [7])
    again = index.delete_versions("t", "a", [7])

    assert (removed, again) == (2, 0)
    assert index.count("t", "a") == {1: 3}
    assert index.count("t", "b") == {1: 2}
    assert [h.payload["document_id"] for h in index.search(vectors(1, 1)[0], tenant_id="t", collection_id="c", top_k=9)]


async def test_inventory_request_pages_by_document(index: ChunkIndex) -> None:
    for name in ("d1", "d2", "d3"):
        indexed(index, name, 1, 1)
    index.upsert(points("d2", 2, 1), vectors(1))
    async_index = AsyncIndex(index)

    first = await inventory(InventoryRequest(tenant_id="t", limit=2), async_index)
    second = await inventory(
        InventoryRequest(tenant_id="t", limit=2, after_document_id=first.next_after_document_id), async_index
    )
    refused = await inventory(InventoryRequest(), async_index)

    assert [(v.document_id, v.version) for v in first.versions] == [("d1", 1), ("d2", 1), ("d2", 2)]
    assert first.next_after_document_id == "d2"
    assert [(v.document_id, v.version) for v in second.versions] == [("d3", 1)]
    assert second.next_after_document_id == ""
    assert first.engine in ("edge", "qdrant-local")
    assert "tenant_id is required" in refused.error


async def test_delete_points_request_with_no_versions_removes_the_document_for_good(index: ChunkIndex) -> None:
    indexed(index, "a", 1, 2)
    index.upsert(points("a", 2, 2), vectors(2))
    async_index = AsyncIndex(index)

    some = await delete_points(DeletePointsRequest(tenant_id="t", document_id="a", versions=[2]), async_index)
    rest = await delete_points(DeletePointsRequest(tenant_id="t", document_id="a", up_to_version=2), async_index)
    bad = await delete_points(DeletePointsRequest(tenant_id="t"), async_index)

    assert (some.removed, rest.removed) == (2, 2)
    assert index.count("t", "a") == {}
    assert index.is_deleted("t", "a", 2)  # a late activation of it is refused
    assert "document_id are required" in bad.error
