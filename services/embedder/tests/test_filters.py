"""Retrieval filters on document tags and version dates, on each engine, in every search mode;
tag changes as in-place payload updates (no re-embedding)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.index import MODES, ChunkIndex, ChunkPoint, Hit, Mode

DIM = 8
DAY = 86_400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def vector(seed: int) -> NDArray[np.float32]:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    unit: NDArray[np.float32] = v / np.linalg.norm(v)
    return unit


def chunk(document_id: str, text: str, *, tags: list[str], created_at: int, version: int = 1, i: int = 0) -> ChunkPoint:
    return ChunkPoint(
        "t", "c", document_id, version, i, text, f"{document_id}.md", "text/markdown", tags=tags, created_at=created_at
    )


@pytest.fixture
def index(index_factory: Callable[[int], ChunkIndex]) -> ChunkIndex:
    """Three documents about ducks: "a" (finance, day 0), "b" (legal, day 10), "c" (finance + legal, day 20);
    "a" is the nearest to the query vector, then "b", then "c"."""
    built = index_factory(DIM)
    query = vector(0)
    docs = [
        ("a", ["finance"], T0, query),
        ("b", ["legal"], T0 + 10 * DAY, 0.8 * query + 0.2 * vector(1)),
        ("c", ["finance", "legal"], T0 + 20 * DAY, 0.5 * query + 0.5 * vector(2)),
    ]
    for document_id, tags, created_at, dense in docs:
        unit = (dense / np.linalg.norm(dense)).astype(np.float32)
        built.upsert([chunk(document_id, f"ducks of {document_id}", tags=tags, created_at=created_at)], unit[None, :])
        built.activate("t", document_id, 1, 1, tags=tags, tags_revision=1)
    return built


def found(index: ChunkIndex, mode: Mode = "hybrid", **filters: object) -> list[str]:
    hits: list[Hit] = index.search(
        vector(0),
        tenant_id="t",
        collection_id="c",
        top_k=5,
        query="ducks",
        mode=mode,
        **filters,  # type: ignore[arg-type]
    )
    return [str(h.payload["document_id"]) for h in hits]


@pytest.mark.parametrize("mode", MODES)
def test_a_tag_filter_keeps_documents_carrying_any_of_the_tags(index: ChunkIndex, mode: Mode) -> None:
    everything = found(index, mode)
    legal = found(index, mode, tags=["legal"])
    either = found(index, mode, tags=["legal", "finance"])
    unknown = found(index, mode, tags=["nothing-has-this"])

    assert sorted(everything) == ["a", "b", "c"]
    assert sorted(legal) == ["b", "c"]
    assert sorted(either) == ["a", "b", "c"]
    assert unknown == []


@pytest.mark.parametrize("mode", MODES)
def test_a_date_range_keeps_versions_created_within_it_bounds_included(index: ChunkIndex, mode: Mode) -> None:
    from_day_10 = found(index, mode, date_from=T0 + 10 * DAY)
    up_to_day_10 = found(index, mode, date_to=T0 + 10 * DAY)
    day_5_to_15 = found(index, mode, date_from=T0 + 5 * DAY, date_to=T0 + 15 * DAY)
    before_any = found(index, mode, date_to=T0 - 1)

    assert sorted(from_day_10) == ["b", "c"]
    assert sorted(up_to_day_10) == ["a", "b"]
    assert day_5_to_15 == ["b"]
    assert before_any == []


def test_tags_and_dates_combine_with_each_other_and_with_the_other_filters(index: ChunkIndex) -> None:
    both = found(index, tags=["finance"], date_from=T0 + DAY)
    with_document = found(index, tags=["finance"], document_ids=["a"])

    assert both == ["c"]
    assert with_document == ["a"]


def test_the_best_match_excluded_by_a_filter_gives_way_to_the_next(index: ChunkIndex) -> None:
    assert found(index, "dense")[0] == "a"
    assert found(index, "dense", tags=["legal"])[0] == "b"


def test_set_tags_changes_the_filter_results_in_place_without_touching_the_vectors(index: ChunkIndex) -> None:
    before = index.search(vector(0), tenant_id="t", collection_id="c", top_k=5, query="ducks", mode="dense")

    updated = index.set_tags("t", "a", ["legal", "archive"], 2)
    after = index.search(vector(0), tenant_id="t", collection_id="c", top_k=5, query="ducks", mode="dense")

    assert updated == 1
    assert sorted(found(index, tags=["legal"])) == ["a", "b", "c"]
    assert sorted(found(index, tags=["finance"])) == ["c"]
    assert found(index, tags=["archive"]) == ["a"]
    assert [(h.payload["document_id"], round(h.score, 6)) for h in after] == [
        (h.payload["document_id"], round(h.score, 6)) for h in before
    ]
    assert next(h for h in after if h.payload["document_id"] == "a").payload["tags"] == ["legal", "archive"]


def test_an_older_tag_revision_arriving_late_is_ignored(index: ChunkIndex) -> None:
    index.set_tags("t", "a", ["newest"], 5)
    ignored = index.set_tags("t", "a", ["stale"], 4)

    assert ignored == 0
    assert found(index, tags=["newest"]) == ["a"]
    assert found(index, tags=["stale"]) == []


def test_a_version_embedded_with_old_tags_is_activated_with_the_newer_ones(index: ChunkIndex) -> None:
    # version 2 of "b" is written with the tags of its upload (revision 1) ...
    index.upsert([chunk("b", "ducks v2", tags=["legal"], created_at=T0 + 30 * DAY, version=2)], vector(0)[None, :])
    # ... the tags change while it is embedded (revision 2), more of its chunks are written with the old ones ...
    index.set_tags("t", "b", ["contracts"], 2)
    index.upsert(
        [chunk("b", "ducks v2 more", tags=["legal"], created_at=T0 + 30 * DAY, version=2, i=1)], vector(3)[None, :]
    )
    # ... and its activation carries revision 1
    index.activate("t", "b", 2, 2, tags=["legal"], tags_revision=1)

    contracts = index.search(vector(0), tenant_id="t", collection_id="c", top_k=5, tags=["contracts"], mode="dense")
    assert {(h.payload["document_id"], h.payload["version"]) for h in contracts} == {("b", 2)}
    assert len(contracts) == 2
    assert sorted(found(index, tags=["legal"])) == ["c"]
    assert set(found(index, date_from=T0 + 25 * DAY)) == {"b"}  # the new version's date (both its chunks)


def test_tags_set_before_the_first_version_is_indexed_reach_it(index_factory: Callable[[int], ChunkIndex]) -> None:
    index = index_factory(DIM)
    assert index.set_tags("t", "new", ["early"], 3) == 0
    index.upsert([chunk("new", "ducks", tags=[], created_at=T0)], vector(0)[None, :])
    index.activate("t", "new", 1, 1, tags=[], tags_revision=0)

    assert found(index, tags=["early"]) == ["new"]


def test_tag_filters_are_scoped_to_the_tenant(index: ChunkIndex) -> None:
    other = ChunkPoint("u", "c", "x", 1, 0, "ducks", "x.md", "text/markdown", tags=["finance"], created_at=T0)
    index.upsert([other], vector(0)[None, :])
    index.activate("u", "x", 1, 1)
    index.set_tags("u", "a", ["finance"], 9)  # another tenant's document of the same id: nothing of "t" changes

    assert sorted(found(index, tags=["finance"])) == ["a", "c"]


def test_a_tag_change_during_the_background_build_survives_the_swap(tmp_path: Path) -> None:
    index = EdgeIndex(path=tmp_path / "edge", dimensions=DIM, optimize_idle_s=3600, build_min_points=1 << 62)
    try:
        index.upsert([chunk("a", "ducks", tags=["finance"], created_at=T0)], vector(0)[None, :])
        index.activate("t", "a", 1, 1, tags=["finance"], tags_revision=1)
        copy = tmp_path / "copy"
        index.copy_for_build(copy)  # the build's copy is taken; later updates are journaled
        index.set_tags("t", "a", ["legal"], 2)
        index.swap_in(copy)  # served from the copy, with the journal replayed

        assert found(index, tags=["legal"]) == ["a"]
        assert found(index, tags=["finance"]) == []
    finally:
        index.close()


def test_the_date_filter_fields_are_indexed_on_the_edge_engine(tmp_path: Path) -> None:
    index = EdgeIndex(path=tmp_path / "edge", dimensions=DIM)
    try:
        schema = index.chunks.info().payload_schema
    finally:
        index.close()

    assert {"tags", "created_at"} <= set(schema)
