"""The index snapshot a backup asks for: a copy that loads as the same index."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ragstream_core.proto.ragstream.v1.ops_pb2 import IndexSnapshotRequest
from ragstream_core.storage import LocalObjectStore
from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.index import ChunkPoint, Hit
from ragstream_embedder.qdrant_index import QdrantIndex
from ragstream_embedder.snapshot import snapshot_index
from ragstream_embedder.workers import AsyncIndex

DIM = 16


def vectors(count: int) -> NDArray[np.float32]:
    raw = np.random.default_rng(7).normal(size=(count, DIM)).astype(np.float32)
    unit: NDArray[np.float32] = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    return unit


def points(document_id: str, version: int, count: int) -> list[ChunkPoint]:
    return [
        ChunkPoint("t", "c", document_id, version, i, f"{document_id} harbor {i}", "f.md", "text/markdown")
        for i in range(count)
    ]


def ordered(hits: list[Hit]) -> list[Hit]:
    """Hits with tied fused scores in one order (the engine returns ties in either)."""
    return sorted(hits, key=lambda h: (-h.rank_score, h.payload["document_id"], h.payload["chunk_index"]))


def untar(archive: Path, directory: Path) -> None:
    subprocess.run(["tar", "--extract", f"--file={archive}", f"--directory={directory}"], check=True)


async def test_a_snapshot_loads_as_the_same_index(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    live = EdgeIndex(path=data_dir / "edge" / "chunks", dimensions=DIM)
    index = AsyncIndex(live)
    objects = LocalObjectStore(data_dir / "objects")
    try:
        vs = vectors(12)
        await index.upsert(points("a", 1, 8), vs[:8])
        await index.activate("t", "a", 1, 8)
        await index.upsert(points("b", 1, 4), vs[8:])
        await index.activate("t", "b", 1, 4)
        await index.delete_document("t", "b", 1)  # a tombstone the copy must keep
        await index.upsert(points("a", 2, 3), vs[:3])  # a version written but not activated
        before = await index.search(vs[0], tenant_id="t", collection_id="c", top_k=20, query="harbor")

        reply = await snapshot_index(
            IndexSnapshotRequest(object_key="ops/snap.tar"), index=index, objects=objects, data_dir=data_dir
        )
    finally:
        await index.close()

    assert reply.error == ""
    assert (reply.engine, reply.path, reply.points) == ("edge", "edge/chunks", 11)
    archive = await objects.get_bytes("ops/snap.tar")
    assert (len(archive), hashlib.sha256(archive).hexdigest()) == (reply.size_bytes, reply.sha256)
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    (tmp_path / "snap.tar").write_bytes(archive)
    untar(tmp_path / "snap.tar", restored_dir)
    assert len(archive) < 2_000_000, "the shards' holes must stay holes in the archive"
    copy = EdgeIndex(path=restored_dir, dimensions=DIM)
    try:
        after = copy.search(vs[0], tenant_id="t", collection_id="c", top_k=20, query="harbor")
        assert ordered(after) == ordered(before)
        assert copy.count("t", "a") == {1: 8, 2: 3}
        assert copy.count("t", "b") == {}
        assert copy.is_deleted("t", "b", 1)
    finally:
        copy.close()


async def test_an_engine_without_file_snapshots_answers_why(tmp_path: Path) -> None:
    index = AsyncIndex(QdrantIndex(path=tmp_path / "qdrant", collection="chunks", dimensions=DIM))
    try:
        reply = await snapshot_index(
            IndexSnapshotRequest(object_key="ops/snap.tar"),
            index=index,
            objects=LocalObjectStore(tmp_path / "objects"),
            data_dir=tmp_path,
        )
        missing = await snapshot_index(
            IndexSnapshotRequest(), index=index, objects=LocalObjectStore(tmp_path / "objects"), data_dir=tmp_path
        )
    finally:
        await index.close()
    assert "only the embedded edge engine" in reply.error
    assert "object_key is empty" in missing.error
