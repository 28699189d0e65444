"""The embed stage and the search answer, over a real bus, object store, model and index."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragstream_core.bus import Bus, Delivery
from ragstream_core.errors import NotFound
from ragstream_core.proto.ragstream.v1.events_pb2 import DocParsed, EventMeta
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchMode, SearchRequest
from ragstream_core.storage import LocalObjectStore
from ragstream_embedder.handlers import embed_document, search
from ragstream_embedder.index import ChunkIndex
from ragstream_embedder.model import MiniLMEmbedder
from ragstream_embedder.pooling import PooledModel
from ragstream_embedder.workers import AsyncIndex

DELIVERY = Delivery(attempt=1, stream_sequence=1, subject="ragstream.events.doc.parsed")


@dataclass
class Ports:
    objects: LocalObjectStore
    model: PooledModel
    index: AsyncIndex
    events: Bus
    batch_size: int = 2


@pytest.fixture(scope="module")
def model() -> PooledModel:
    return PooledModel(MiniLMEmbedder(), batch_size=2)


@pytest.fixture
async def ports(
    tmp_path: Path,
    model: PooledModel,
    bus_factory: Callable[..., Awaitable[Bus]],
    index_factory: Callable[[int], ChunkIndex],
) -> Ports:
    index = AsyncIndex(index_factory(384))
    return Ports(LocalObjectStore(tmp_path / "objects"), model, index, await bus_factory(service="embedder-test"))


async def store_chunks(ports: Ports, document_id: str, version: int, texts: list[str]) -> DocParsed:
    key = f"chunks/t/{document_id}/v{version}.json"
    chunks = [
        {"index": i, "text": t, "embed_text": t, "tokens": 0, "heading_path": ["Birds"], "pages": [i + 1]}
        for i, t in enumerate(texts)
    ]
    await ports.objects.put_bytes(key, json.dumps({"chunks": chunks}).encode())
    meta = EventMeta(
        job_id=f"job-{version}",
        tenant_id="t",
        collection_id="c",
        document_id=document_id,
        version=version,
        file_name="birds.pdf",
    )
    return DocParsed(meta=meta, chunks_key=key, chunk_count=len(texts), media_type="application/pdf")


async def test_embedding_indexes_every_chunk_once_and_reports_it(ports: Ports) -> None:
    texts = ["Ducks have flat bills.", "Owls hunt at night.", "Penguins cannot fly.", "Swans are large."]
    event = await store_chunks(ports, "birds", 1, texts)

    updated = await embed_document(event, DELIVERY, ports)
    again = await embed_document(event, DELIVERY, ports)

    assert (updated.chunk_count, updated.truncated_chunks, updated.dimensions) == (4, 0, 384)
    assert again.chunk_count == 4
    assert await ports.index.count("t", "birds") == {1: 4}


async def test_search_answers_with_the_best_chunk_and_its_citation_fields(ports: Ports) -> None:
    event = await store_chunks(ports, "birds", 1, ["Ducks have flat bills.", "Owls hunt at night."])
    await embed_document(event, DELIVERY, ports)

    response = await search(SearchRequest(tenant_id="t", collection_id="c", query="nocturnal hunter", top_k=1), ports)

    assert response.error == ""
    (hit,) = response.hits
    assert (hit.document_id, hit.chunk_index, hit.text) == ("birds", 1, "Owls hunt at night.")
    assert (hit.file_name, list(hit.heading_path), hit.page) == ("birds.pdf", ["Birds"], 2)


async def test_a_new_version_replaces_the_old_one_in_search(ports: Ports) -> None:
    await embed_document(await store_chunks(ports, "doc", 1, ["The meeting is on Monday."]), DELIVERY, ports)

    updated = await embed_document(
        await store_chunks(ports, "doc", 2, ["The meeting moved to Friday."]), DELIVERY, ports
    )
    response = await search(
        SearchRequest(tenant_id="t", collection_id="c", query="when is the meeting", top_k=5), ports
    )

    assert updated.removed_points == 1
    assert [(h.version, h.text) for h in response.hits] == [(2, "The meeting moved to Friday.")]


async def test_missing_chunks_object_fails_the_handler(ports: Ports) -> None:
    event = DocParsed(
        meta=EventMeta(job_id="j", tenant_id="t", document_id="x", version=1), chunks_key="chunks/none.json"
    )

    with pytest.raises(NotFound):
        await embed_document(event, DELIVERY, ports)


async def test_adjacent_chunks_found_together_come_back_as_one_passage(ports: Ports) -> None:
    texts = ["Mallards nest near ponds.", "Their ducklings hatch in spring.", "Owls hunt at night."]
    await embed_document(await store_chunks(ports, "ducks", 1, texts), DELIVERY, ports)
    request = SearchRequest(tenant_id="t", collection_id="c", query="mallard ducklings", top_k=3)

    merged = await search(request, ports)
    request.keep_chunks = True
    separate = await search(request, ports)

    assert [list(h.chunk_indexes) for h in merged.hits] == [[0, 1, 2]]
    assert merged.hits[0].text == "\n".join(texts)
    assert sorted(h.chunk_index for h in separate.hits) == [0, 1, 2]
    assert merged.mode == SearchMode.SEARCH_MODE_HYBRID


async def test_keyword_search_finds_a_rare_name_and_says_which_mode_answered(ports: Ports) -> None:
    texts = ["Ducks have flat bills.", "The Lucern Hotel is down the street.", "Owls hunt at night."]
    await embed_document(await store_chunks(ports, "notes", 1, texts), DELIVERY, ports)

    response = await search(
        SearchRequest(
            tenant_id="t",
            collection_id="c",
            query="Lucern",
            top_k=3,
            keep_chunks=True,
            mode=SearchMode.SEARCH_MODE_SPARSE,
        ),
        ports,
    )

    assert response.mode == SearchMode.SEARCH_MODE_SPARSE
    assert [h.chunk_index for h in response.hits] == [1]


async def test_an_unknown_search_mode_is_answered_with_an_error(ports: Ports) -> None:
    response = await search(SearchRequest(tenant_id="t", collection_id="c", query="x", mode=42), ports)  # type: ignore[arg-type]

    assert "unknown search mode 42" in response.error
    assert list(response.hits) == []
