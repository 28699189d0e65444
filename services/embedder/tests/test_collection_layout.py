"""The Qdrant collection layout settings (shards, replication, write consistency).

Local mode has one peer and keeps no layout; that the server applies them is asserted by the
production-engines suite against a Qdrant server (tests/e2e/test_production_engines.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragstream_embedder.engines import open_index
from ragstream_embedder.index import ChunkPoint
from ragstream_embedder.qdrant_index import CollectionLayout, QdrantIndex
from ragstream_embedder.settings import EmbedderSettings


def test_the_layout_defaults_to_the_servers_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    default = EmbedderSettings()
    assert (default.qdrant_shard_number, default.qdrant_replication_factor) == (0, 0)
    monkeypatch.setenv("RAGSTREAM_EMBEDDER_QDRANT_SHARD_NUMBER", "3")
    monkeypatch.setenv("RAGSTREAM_EMBEDDER_QDRANT_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("RAGSTREAM_EMBEDDER_QDRANT_WRITE_CONSISTENCY_FACTOR", "1")
    settings = EmbedderSettings()
    assert (
        settings.qdrant_shard_number,
        settings.qdrant_replication_factor,
        settings.qdrant_write_consistency_factor,
    ) == (3, 2, 1)


def test_a_write_consistency_above_the_replication_factor_is_refused_with_both_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAGSTREAM_EMBEDDER_QDRANT_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("RAGSTREAM_EMBEDDER_QDRANT_WRITE_CONSISTENCY_FACTOR", "3")
    with pytest.raises(ValueError, match=r"WRITE_CONSISTENCY_FACTOR \(3\) must not exceed .*REPLICATION_FACTOR \(2\)"):
        EmbedderSettings()
    monkeypatch.setenv("RAGSTREAM_EMBEDDER_QDRANT_REPLICATION_FACTOR", "-1")
    with pytest.raises(ValueError, match="qdrant_replication_factor"):
        EmbedderSettings()


def test_a_layout_given_to_local_mode_creates_working_collections(tmp_path: Path) -> None:
    layout = CollectionLayout(shard_number=2, replication_factor=1, write_consistency_factor=1)
    index = open_index(data_dir=tmp_path, collection="chunks", dimensions=4, engine="qdrant-local", layout=layout)
    try:
        assert isinstance(index, QdrantIndex)
        assert index.layout == layout
        point = ChunkPoint("t", "c", "d", 1, 0, "brass telescope", "a.md", "text/markdown")
        index.upsert([point], np.eye(1, 4, dtype=np.float32))
        index.activate("t", "d", 1, 1)
        hits = index.search(np.eye(1, 4, dtype=np.float32)[0], tenant_id="t", collection_id="c", top_k=3, mode="dense")
        assert [h.payload["document_id"] for h in hits] == ["d"]
    finally:
        index.close()
