"""Hybrid retrieval in the index, on each engine: dense and keyword vectors in one point, fused by RRF."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from ragstream_core.events import point_id
from ragstream_embedder.index import MODES, ChunkIndex, ChunkPoint, Hit
from ragstream_embedder.qdrant_index import QdrantIndex

DIM = 8


def vector(seed: int) -> NDArray[np.float32]:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    unit: NDArray[np.float32] = v / np.linalg.norm(v)
    return unit


def chunk(document_id: str, index: int, text: str, **fields: str) -> ChunkPoint:
    values = {"file_name": "notes.md", "media_type": "text/markdown"} | fields
    return ChunkPoint("t", "c", document_id, 1, index, text, values["file_name"], values["media_type"])


def indexed(index: ChunkIndex, chunks: list[ChunkPoint], seeds: list[int | NDArray[np.float32]]) -> None:
    index.upsert(chunks, np.stack([vector(s) if isinstance(s, int) else s for s in seeds]))
    for document_id in {c.document_id for c in chunks}:
        index.activate("t", document_id, 1, sum(1 for c in chunks if c.document_id == document_id))


@pytest.fixture
def index(index_factory: Callable[[int], ChunkIndex]) -> ChunkIndex:
    return index_factory(DIM)


def documents(hits: list[Hit]) -> list[str]:
    return [str(h.payload["document_id"]) for h in hits]


def test_sparse_search_finds_the_chunk_with_the_keyword_whatever_its_dense_vector(index: ChunkIndex) -> None:
    indexed(
        index, [chunk("a", 0, "Mallards migrate in autumn."), chunk("b", 0, "The SABRE reservation system.")], [1, 2]
    )

    hits = index.search(vector(1), tenant_id="t", collection_id="c", top_k=5, query="sabre", mode="sparse")

    assert documents(hits) == ["b"]
    assert hits[0].score > 0


def test_hybrid_search_brings_a_keyword_match_into_the_results_that_dense_alone_misses(index: ChunkIndex) -> None:
    chunks = [chunk(f"d{i}", 0, f"ordinary text number {i}") for i in range(6)]
    chunks.append(chunk("k", 0, "Thomas Watson chose the slogan THINK."))
    indexed(index, chunks, [*range(6), -vector(0)])  # the keyword chunk is the farthest

    dense = index.search(vector(0), tenant_id="t", collection_id="c", top_k=3, query="slogan think", mode="dense")
    hybrid = index.search(vector(0), tenant_id="t", collection_id="c", top_k=3, query="slogan think")

    assert "k" not in documents(dense)
    assert documents(hybrid)[:2] in (["d0", "k"], ["k", "d0"])


def test_hybrid_scores_stay_cosine_similarities_while_the_order_is_fused(index: ChunkIndex) -> None:
    indexed(index, [chunk("a", 0, "duck pond"), chunk("b", 0, "heron river")], [1, 2])

    best, other = index.search(vector(1), tenant_id="t", collection_id="c", top_k=2, query="duck")

    assert best.payload["document_id"] == "a"
    assert best.score == pytest.approx(1.0, abs=1e-5)
    assert other.score == pytest.approx(float(np.dot(vector(1), vector(2))), abs=1e-5)
    assert best.rank_score > other.rank_score > 0


def test_unactivated_points_are_invisible_to_every_mode(index: ChunkIndex) -> None:
    index.upsert([chunk("a", 0, "the secret draft")], np.stack([vector(1)]))

    for mode in MODES:
        assert index.search(vector(1), tenant_id="t", collection_id="c", top_k=5, query="secret", mode=mode) == []


def test_filters_narrow_the_chunks_searched_by_media_type_and_file_name(index: ChunkIndex) -> None:
    indexed(
        index,
        [
            chunk("md", 0, "duck facts", file_name="a.md"),
            chunk("pdf", 0, "duck facts", file_name="b.pdf", media_type="application/pdf"),
        ],
        [1, 1],
    )

    by_type = index.search(
        vector(1), tenant_id="t", collection_id="c", top_k=5, query="duck", media_types=["application/pdf"]
    )
    by_name = index.search(vector(1), tenant_id="t", collection_id="c", top_k=5, query="duck", file_names=["a.md"])

    assert documents(by_type) == ["pdf"]
    assert documents(by_name) == ["md"]


def test_a_query_of_stop_words_only_is_answered_by_the_dense_side(index: ChunkIndex) -> None:
    indexed(index, [chunk("a", 0, "duck pond")], [1])

    hits = index.search(vector(1), tenant_id="t", collection_id="c", top_k=5, query="what is it")

    assert documents(hits) == ["a"]


def test_an_unknown_mode_is_refused_naming_the_accepted_ones(index: ChunkIndex) -> None:
    with pytest.raises(ValueError, match="hybrid, dense, sparse"):
        index.search(vector(1), tenant_id="t", collection_id="c", top_k=5, query="x", mode="fuzzy")  # type: ignore[arg-type]


def test_points_of_the_first_schema_are_migrated_and_stay_searchable(tmp_path: Path) -> None:
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
    client.upsert(
        "chunks", points=[qm.PointStruct(id=point_id("old", 1, 0), vector=vector(3).tolist(), payload=payload)]
    )
    client.close()

    index = QdrantIndex(path=tmp_path / "qdrant", collection="chunks", dimensions=DIM)
    try:
        sparse = index.search(
            vector(9), tenant_id="t", collection_id="c", top_k=5, query="renamed history", mode="sparse"
        )
        dense = index.search(vector(3), tenant_id="t", collection_id="c", top_k=5, mode="dense")
        legacy_left = index.client.collection_exists("chunks")
    finally:
        index.close()

    assert documents(sparse) == ["old"]
    assert dense[0].score == pytest.approx(1.0, abs=1e-5)
    assert not legacy_left
