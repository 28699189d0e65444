"""Adjacent chunks found together become one passage, ordered by its best chunk."""

from __future__ import annotations

from ragstream_embedder.index import Hit
from ragstream_embedder.passages import merge_adjacent


def hit(document_id: str, chunk_index: int, *, version: int = 1, score: float = 0.5) -> Hit:
    payload = {"document_id": document_id, "version": version, "chunk_index": chunk_index, "text": f"c{chunk_index}"}
    return Hit(score=score, payload=payload, rank_score=score)


def test_adjacent_chunks_of_one_version_merge_in_document_order() -> None:
    passages = merge_adjacent([hit("d", 4, score=0.9), hit("d", 3, score=0.7), hit("d", 5, score=0.6)])

    (passage,) = passages
    assert passage.chunk_indexes == [3, 4, 5]
    assert passage.text == "c3\nc4\nc5"
    assert passage.score == 0.9


def test_chunks_with_a_gap_stay_separate_passages_ordered_by_their_best_hit() -> None:
    passages = merge_adjacent([hit("d", 7, score=0.9), hit("d", 1, score=0.8), hit("d", 8, score=0.3)])

    assert [p.chunk_indexes for p in passages] == [[7, 8], [1]]


def test_neighbouring_indexes_of_other_documents_or_versions_never_merge() -> None:
    passages = merge_adjacent([hit("a", 1), hit("b", 2), hit("a", 2, version=2)])

    assert [p.chunk_indexes for p in passages] == [[1], [2], [2]]
    assert [p.first.payload["document_id"] for p in passages] == ["a", "b", "a"]
