"""The vector index, on each engine: idempotent writes, atomic version swap, tenant scoping."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ragstream_embedder.index import ChunkIndex, ChunkPoint, DocumentDeleted

DIM = 8


def vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def points(document_id: str, version: int, n: int, *, tenant: str = "t", collection: str = "c") -> list[ChunkPoint]:
    return [
        ChunkPoint(
            tenant, collection, document_id, version, i, f"{document_id} v{version} chunk {i}", "f.md", "text/markdown"
        )
        for i in range(n)
    ]


@pytest.fixture
def index(index_factory: Callable[[int], ChunkIndex]) -> ChunkIndex:
    return index_factory(DIM)


def test_written_points_are_invisible_until_activated(index: ChunkIndex) -> None:
    index.upsert(points("d", 1, 3), np.stack([vector(i) for i in range(3)]))

    before = index.search(vector(0), tenant_id="t", collection_id="c", top_k=5)
    index.activate("t", "d", 1, 3)
    after = index.search(vector(0), tenant_id="t", collection_id="c", top_k=5)

    assert before == []
    assert after[0].payload["chunk_index"] == 0
    assert len(after) == 3


def test_rewriting_the_same_chunks_does_not_duplicate_points(index: ChunkIndex) -> None:
    vectors = np.stack([vector(i) for i in range(4)])

    index.upsert(points("d", 1, 4), vectors)
    index.upsert(points("d", 1, 4), vectors)

    assert index.count("t", "d") == {1: 4}


def test_new_version_replaces_old_only_when_activated(index: ChunkIndex) -> None:
    index.upsert(points("d", 1, 2), np.stack([vector(1), vector(2)]))
    index.activate("t", "d", 1, 2)

    index.upsert(points("d", 2, 3), np.stack([vector(1), vector(2), vector(3)]))
    during = {h.payload["version"] for h in index.search(vector(1), tenant_id="t", collection_id="c", top_k=10)}
    removed = index.activate("t", "d", 2, 3)
    after = {h.payload["version"] for h in index.search(vector(1), tenant_id="t", collection_id="c", top_k=10)}

    assert during == {1}
    assert after == {2}
    assert removed == 2
    assert index.count("t", "d") == {2: 3}


def test_search_never_crosses_tenants_or_collections(index: ChunkIndex) -> None:
    index.upsert(points("a", 1, 1, tenant="A"), np.stack([vector(5)]))
    index.upsert(points("b", 1, 1, tenant="B"), np.stack([vector(5)]))
    index.upsert(points("c", 1, 1, tenant="A", collection="other"), np.stack([vector(5)]))
    for tenant, document in (("A", "a"), ("B", "b"), ("A", "c")):
        index.activate(tenant, document, 1, 1)

    hits = index.search(vector(5), tenant_id="A", collection_id="c", top_k=10)

    assert [h.payload["document_id"] for h in hits] == ["a"]


def test_a_late_older_version_never_replaces_the_active_one(index: ChunkIndex) -> None:
    index.upsert(points("d", 2, 2), np.stack([vector(1), vector(2)]))
    index.activate("t", "d", 2, 2)
    index.upsert(points("d", 1, 3), np.stack([vector(1), vector(2), vector(3)]))

    index.activate("t", "d", 1, 3)

    assert index.count("t", "d") == {2: 2}
    assert {h.payload["version"] for h in index.search(vector(1), tenant_id="t", collection_id="c", top_k=10)} == {2}


def test_activating_twice_changes_nothing(index: ChunkIndex) -> None:
    index.upsert(points("d", 1, 2), np.stack([vector(1), vector(2)]))
    index.activate("t", "d", 1, 2)
    index.upsert(points("d", 2, 1), np.stack([vector(3)]))

    first = index.activate("t", "d", 2, 1)
    second = index.activate("t", "d", 2, 1)

    assert (first, second) == (2, 0)
    assert index.count("t", "d") == {2: 1}


def test_delete_removes_every_version_and_leaves_a_tombstone(index: ChunkIndex) -> None:
    index.upsert(points("d", 1, 2), np.stack([vector(1), vector(2)]))
    index.activate("t", "d", 1, 2)
    index.upsert(points("d", 2, 3), np.stack([vector(i) for i in range(3)]))  # version 2 still being written

    removed = index.delete_document("t", "d", 2)

    assert removed == 5
    assert index.count("t", "d") == {}
    assert index.search(vector(1), tenant_id="t", collection_id="c", top_k=5) == []
    assert index.is_deleted("t", "d", 2)
    assert not index.is_deleted("t", "other", 1)


def test_a_version_finishing_after_its_delete_is_never_indexed(index: ChunkIndex) -> None:
    index.delete_document("t", "d", 1)
    index.upsert(points("d", 1, 2), np.stack([vector(1), vector(2)]))  # the job was still running

    with pytest.raises(DocumentDeleted):
        index.activate("t", "d", 1, 2)

    assert index.count("t", "d") == {}
    assert index.search(vector(1), tenant_id="t", collection_id="c", top_k=5) == []


def test_a_document_uploaded_again_after_delete_is_indexed(index: ChunkIndex) -> None:
    index.delete_document("t", "d", 1)
    index.upsert(points("d", 2, 1), np.stack([vector(1)]))

    index.activate("t", "d", 2, 1)

    assert [h.payload["version"] for h in index.search(vector(1), tenant_id="t", collection_id="c", top_k=5)] == [2]
