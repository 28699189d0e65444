"""The edge engine's own behaviour: background HNSW build, restart, migration from local mode."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.engines import open_index
from ragstream_embedder.index import ChunkPoint, DocumentDeleted
from ragstream_embedder.qdrant_index import QdrantIndex

DIM = 64


def unit_vectors(count: int, seed: int) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    unit: NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def chunks(document_id: str, version: int, count: int, *, collection: str = "c") -> list[ChunkPoint]:
    return [
        ChunkPoint("t", collection, document_id, version, i, f"{document_id} part {i}", "f.md", "text/markdown")
        for i in range(count)
    ]


def indexed(
    index: EdgeIndex | QdrantIndex, document_id: str, vectors: NDArray[np.float32], *, version: int = 1
) -> None:
    index.upsert(chunks(document_id, version, len(vectors)), vectors)
    index.activate("t", document_id, version, len(vectors))


def large(tmp_path: Path) -> EdgeIndex:
    """An index whose segments get an HNSW graph from a few thousand points, built only on request."""
    return EdgeIndex(
        path=tmp_path / "edge",
        dimensions=DIM,
        optimize_idle_s=3600,
        build_min_points=1 << 62,
        indexing_threshold_kb=100,
    )


def test_searches_keep_answering_while_the_hnsw_graph_is_built_in_the_background(tmp_path: Path) -> None:
    index = large(tmp_path)
    try:
        vectors = unit_vectors(6_000, seed=1)
        for start in range(0, len(vectors), 1000):
            indexed(index, f"doc-{start}", vectors[start : start + 1000])

        index.builder.request()
        answered_during_build: list[float] = []
        deadline = time.monotonic() + 600
        while (index.builder.running or index.builder.builds == 0) and time.monotonic() < deadline:
            began = time.perf_counter()
            (hit,) = index.search(vectors[123], tenant_id="t", collection_id="c", top_k=1, mode="dense")
            if index.building:
                answered_during_build.append(time.perf_counter() - began)
            assert (hit.payload["document_id"], hit.payload["chunk_index"]) == ("doc-0", 123)
        finished = index.builder.wait_idle(600)
        after = index.search(vectors[123], tenant_id="t", collection_id="c", top_k=1, mode="dense")
    finally:
        index.close()

    assert finished
    assert index.builder.swaps == 1
    assert len(answered_during_build) >= 3, answered_during_build
    assert (after[0].payload["document_id"], after[0].payload["chunk_index"]) == ("doc-0", 123)


def test_writes_during_the_background_build_are_kept(tmp_path: Path) -> None:
    index = large(tmp_path)
    try:
        vectors = unit_vectors(4_000, seed=2)
        for start in range(0, len(vectors), 1000):
            indexed(index, f"doc-{start}", vectors[start : start + 1000])
        late = unit_vectors(5, seed=3)

        index.builder.request()
        deadline = time.monotonic() + 60
        while not index.building and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for the copy to be taken: the writes below must go to the journal
        indexed(index, "late", late)
        index.activate("t", "doc-0", 2, 0)  # a new, empty version of doc-0 replaces its 1000 chunks
        assert index.builder.wait_idle(600)
        found = index.search(late[0], tenant_id="t", collection_id="c", top_k=1, mode="dense")
        counts = (index.count("t", "late"), index.count("t", "doc-0"), index.count("t", "doc-1000"))
        swaps = index.builder.swaps
    finally:
        index.close()

    assert swaps == 1
    assert found[0].payload["document_id"] == "late"
    assert counts == ({1: 5}, {}, {1: 1000})


def test_an_interrupted_swap_is_undone_on_open(tmp_path: Path) -> None:
    vectors = unit_vectors(3, seed=7)
    first = EdgeIndex(path=tmp_path / "edge", dimensions=DIM)
    indexed(first, "d", vectors)
    first.close()
    live = tmp_path / "edge" / "chunks"
    live.rename(live.with_name("chunks.old"))  # killed between the two renames of a swap
    live.mkdir()
    (live / "half-moved").write_bytes(b"")

    index = EdgeIndex(path=tmp_path / "edge", dimensions=DIM)
    try:
        hits = index.search(vectors[1], tenant_id="t", collection_id="c", top_k=1, mode="dense")
    finally:
        index.close()

    assert hits[0].payload["chunk_index"] == 1
    assert not (tmp_path / "edge" / "chunks.old").exists()


def test_the_index_survives_a_reopen(tmp_path: Path) -> None:
    vectors = unit_vectors(3, seed=4)
    first = EdgeIndex(path=tmp_path / "edge", dimensions=DIM)
    indexed(first, "d", vectors)
    first.delete_document("t", "gone", 1)
    first.close()

    reopened = EdgeIndex(path=tmp_path / "edge", dimensions=DIM)
    try:
        hits = reopened.search(vectors[2], tenant_id="t", collection_id="c", top_k=1, mode="dense")
        keyword = reopened.search(vectors[0], tenant_id="t", collection_id="c", top_k=5, query="part", mode="sparse")
        deleted = reopened.is_deleted("t", "gone", 1)
        schema = set(reopened.chunks.info().payload_schema)
    finally:
        reopened.close()

    assert hits[0].payload["chunk_index"] == 2
    assert len(keyword) == 3
    assert deleted
    assert {"tenant_id", "collection_id", "document_id", "active"} <= schema


def test_points_written_before_a_kill_are_there_after_restart(tmp_path: Path) -> None:
    writer = f"""
import os, sys
import numpy as np
from pathlib import Path
from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.index import ChunkPoint
index = EdgeIndex(path=Path({str(tmp_path / "edge")!r}), dimensions=4)
index.upsert([ChunkPoint("t", "c", "d", 1, 0, "kept", "f.md", "text/markdown")], np.ones((1, 4), dtype=np.float32) / 2)
index.activate("t", "d", 1, 1)
os._exit(0)  # no close, no flush: as good as kill -9 once the calls returned
"""
    subprocess.run([sys.executable, "-c", writer], check=True, timeout=120)

    index = EdgeIndex(path=tmp_path / "edge", dimensions=4)
    try:
        query = np.full(4, 0.5, dtype=np.float32)
        hits = index.search(query, tenant_id="t", collection_id="c", top_k=5)
    finally:
        index.close()

    assert [h.payload["text"] for h in hits] == ["kept"]


def test_a_local_mode_store_is_migrated_into_edge_with_its_versions_and_tombstones(tmp_path: Path) -> None:
    vectors = unit_vectors(4, seed=5)
    local = QdrantIndex(path=tmp_path / "qdrant", collection="chunks", dimensions=DIM)
    indexed(local, "kept", vectors[:2])
    local.upsert(chunks("kept", 2, 1), vectors[2:3])  # a new version still being written: stays invisible
    indexed(local, "gone", vectors[3:])
    local.delete_document("t", "gone", 1)
    local.close()

    index = open_index(data_dir=tmp_path, collection="chunks", dimensions=DIM)
    try:
        hits = index.search(vectors[0], tenant_id="t", collection_id="c", top_k=5, query="part", mode="sparse")
        best = index.search(vectors[0], tenant_id="t", collection_id="c", top_k=1, mode="dense")
        counts = index.count("t", "kept")
        deleted = index.is_deleted("t", "gone", 1)
        with pytest.raises(DocumentDeleted):
            index.activate("t", "gone", 1, 1)
        removed = index.activate("t", "kept", 2, 1)
        after = index.search(vectors[2], tenant_id="t", collection_id="c", top_k=5, mode="dense")
    finally:
        index.close()

    assert isinstance(index, EdgeIndex)
    assert [(h.payload["document_id"], h.payload["version"]) for h in hits] == [("kept", 1), ("kept", 1)]
    assert best[0].score == pytest.approx(1.0, abs=1e-5)
    assert counts == {1: 2, 2: 1}
    assert deleted
    assert removed == 2
    assert [(h.payload["version"], h.payload["chunk_index"]) for h in after] == [(2, 0)]
    assert not (tmp_path / "qdrant").exists()
    assert (tmp_path / "qdrant.migrated").is_dir()


def test_a_store_of_the_first_schema_is_migrated_into_edge_too(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

    from ragstream_core.events import point_id

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("chunks", vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.COSINE))
    payload = {
        "tenant_id": "t",
        "collection_id": "c",
        "document_id": "old",
        "version": 1,
        "chunk_index": 0,
        "text": "IBM was renamed in 1924.",
        "file_name": "ibm.md",
        "media_type": "text/markdown",
        "heading_path": ["History"],
        "pages": [],
        "active": True,
    }
    vector = unit_vectors(1, seed=6)[0]
    client.upsert("chunks", points=[qm.PointStruct(id=point_id("old", 1, 0), vector=vector.tolist(), payload=payload)])
    client.close()

    index = open_index(data_dir=tmp_path, collection="chunks", dimensions=DIM)
    try:
        sparse = index.search(vector, tenant_id="t", collection_id="c", top_k=5, query="renamed history", mode="sparse")
    finally:
        index.close()

    assert [h.payload["document_id"] for h in sparse] == ["old"]


def test_the_qdrant_local_engine_is_kept_when_asked_for(tmp_path: Path) -> None:
    index = open_index(data_dir=tmp_path, collection="chunks", dimensions=DIM, engine="qdrant-local")
    index.close()

    assert isinstance(index, QdrantIndex)
    assert (tmp_path / "qdrant").is_dir()
    assert not (tmp_path / "edge").exists()


def test_keyword_scores_match_qdrants_idf_modifier_over_the_collection(tmp_path: Path) -> None:
    texts = {
        "ducks": "Ducks swim on the pond; ducks quack.",
        "herons": "Herons stand in the river and hunt fish.",
        "pond": "The pond freezes in winter.",
        "fish": "Fish swim in the river, fish hide under the pond weeds.",
    }
    engines: list[EdgeIndex | QdrantIndex] = [
        EdgeIndex(path=tmp_path / "edge", dimensions=DIM),
        QdrantIndex(path=tmp_path / "qdrant", collection="chunks", dimensions=DIM),
    ]
    scores = []
    try:
        for index in engines:
            for n, (document_id, text) in enumerate(texts.items()):
                chunk = ChunkPoint("t", "c", document_id, 1, 0, text, "f.md", "text/markdown")
                index.upsert([chunk], unit_vectors(1, seed=n))
                index.activate("t", document_id, 1, 1)
            # other collections and unactivated versions must not shape this collection's IDF
            index.upsert(
                [ChunkPoint("t", "other", "x", 1, 0, "pond pond river", "f.md", "text/markdown")], unit_vectors(1, 9)
            )
            index.activate("t", "x", 1, 1)
            index.upsert([ChunkPoint("t", "c", "fish", 2, 0, "pond", "f.md", "text/markdown")], unit_vectors(1, 8))
            scores.append(
                [
                    [
                        (h.payload["document_id"], round(h.score, 4))
                        for h in index.search(
                            unit_vectors(1, 0)[0], tenant_id="t", collection_id="c", top_k=5, query=q, mode="sparse"
                        )
                    ]
                    for q in ("pond", "swimming fish", "river heron winter")
                ]
            )
    finally:
        for index in engines:
            index.close()

    edge, local = scores
    assert edge == local
    assert edge[0][0][1] > 0


def test_a_long_ingest_is_built_in_parts_while_it_goes_on_keeping_earlier_graphs(tmp_path: Path) -> None:
    index = EdgeIndex(
        path=tmp_path / "edge",
        dimensions=DIM,
        optimize_idle_s=3600,  # writes never pause long enough: only the tail rule can start a build
        build_min_points=1 << 62,
        build_tail_points=2_000,
        indexing_threshold_kb=100,
    )
    try:
        vectors = unit_vectors(6_000, seed=4)
        built: list[tuple[int, int]] = []
        for part in range(3):
            for start in range(part * 2_000, (part + 1) * 2_000, 500):
                indexed(index, f"doc-{start}", vectors[start : start + 500])
            deadline = time.monotonic() + 600
            while index.builder.swaps <= part and time.monotonic() < deadline:
                time.sleep(0.05)  # polling for the background build the tail started
            info = index.chunks.info()
            built.append((info.indexed_vectors_count, info.segments_count))
        (hit,) = index.search(vectors[4_321], tenant_id="t", collection_id="c", top_k=1, mode="dense")
    finally:
        index.close()

    # each build indexed the new part (the count holds each point's dense and keyword vector) and
    # kept the graphs of the earlier ones, in segments of their own
    assert all(count >= 2 * 2_000 * (part + 1) for part, (count, _) in enumerate(built)), built
    assert built[-1][1] >= 3, built
    assert (hit.payload["document_id"], hit.payload["chunk_index"]) == ("doc-4000", 321)
