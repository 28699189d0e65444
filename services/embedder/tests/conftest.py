"""Both index engines, real and on disk: every index test runs against each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.index import ChunkIndex
from ragstream_embedder.qdrant_index import QdrantIndex

ENGINES = ("edge", "qdrant-local")
IndexFactory = Callable[[int], ChunkIndex]


@pytest.fixture(params=ENGINES)
def index_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexFactory]:
    """Opens an index of the given dimensions on the parametrized engine; closes it after the test."""
    opened: list[ChunkIndex] = []

    def make(dimensions: int) -> ChunkIndex:
        built: ChunkIndex
        if request.param == "edge":
            built = EdgeIndex(path=tmp_path / "edge", dimensions=dimensions)
        else:
            built = QdrantIndex(path=tmp_path / "qdrant", collection="chunks", dimensions=dimensions)
        opened.append(built)
        return built

    yield make
    for built in opened:
        built.close()
