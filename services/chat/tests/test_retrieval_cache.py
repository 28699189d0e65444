"""The retrieval cache: repeated questions skip the search until the collection's index changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ragstream_chat.handlers import Question, answer_question, on_index_updated
from ragstream_chat.retrieval import Retriever
from ragstream_core.bus import Bus
from ragstream_core.errors import DependencyUnavailable
from ragstream_core.proto.ragstream.v1.events_pb2 import EventMeta, IndexUpdated
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchMode
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

QUESTION = "When do mallards migrate?"


def index_updated(tenant_id: str, collection_id: str) -> IndexUpdated:
    return IndexUpdated(
        meta=EventMeta(job_id=new_id("job"), tenant_id=tenant_id, collection_id=collection_id, document_id="doc-1"),
        chunk_count=3,
    )


async def test_same_question_again_is_answered_from_the_cache(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit("Mallards migrate south when winter comes.")
    question = Question("default", new_id("col"), QUESTION)
    first = await answer_question(question, ports)

    again = await answer_question(question, ports)

    assert (again["answer"], again["citations"]) == (first["answer"], first["citations"])
    assert responder.asked(QUESTION) == 1


async def test_index_update_of_the_collection_makes_the_next_question_search_again(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit("Mallards migrate south when winter comes.")
    question = Question("default", new_id("col"), QUESTION)
    await answer_question(question, ports)
    responder.add_hit("Mallards also winter in city parks.", score=0.7, document_id="doc-2")

    await on_index_updated(index_updated("default", question.collection_id), ports)
    fresh = await answer_question(question, ports)

    assert responder.asked(QUESTION) == 2
    assert [c["document_id"] for c in fresh["citations"]] == ["doc-1", "doc-2"]


async def test_index_update_of_another_collection_keeps_the_cache(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit("Mallards migrate south when winter comes.")
    question = Question("default", new_id("col"), QUESTION)
    await answer_question(question, ports)

    await on_index_updated(index_updated("default", new_id("col")), ports)
    await on_index_updated(index_updated("other-tenant", question.collection_id), ports)
    await answer_question(question, ports)

    assert responder.asked(QUESTION) == 1


async def test_same_question_in_another_collection_is_searched(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit("Mallards migrate south when winter comes.")

    await answer_question(Question("default", new_id("col"), QUESTION), ports)
    await answer_question(Question("default", new_id("col"), QUESTION), ports)

    assert responder.asked(QUESTION) == 2


async def test_failed_search_is_not_cached(responder: SearchResponder, ports: Ports) -> None:
    responder.error = "index busy"
    question = Question("default", new_id("col"), QUESTION)
    with pytest.raises(DependencyUnavailable, match="index busy"):
        await answer_question(question, ports)
    responder.error = ""
    responder.add_hit("Mallards migrate south when winter comes.")

    result = await answer_question(question, ports)

    assert responder.asked(QUESTION) == 2
    assert len(result["citations"]) == 1


async def test_cache_keeps_at_most_its_size_dropping_the_oldest(responder: SearchResponder, chat_bus: Bus) -> None:
    responder.add_hit("Mallards migrate south when winter comes.")
    retriever = Retriever(chat_bus, timeout_s=2.0, cache_entries=2)
    collection = new_id("col")
    for query in ("first", "second", "third"):
        await retriever.search("default", collection, query, top_k=5)

    await retriever.search("default", collection, "first", top_k=5)
    await retriever.search("default", collection, "third", top_k=5)

    assert (responder.asked("first"), responder.asked("second"), responder.asked("third")) == (2, 1, 1)


async def test_search_options_reach_the_embedder_and_default_to_hybrid_merged_passages(
    responder: SearchResponder, retriever: Retriever
) -> None:
    collection = new_id("col")
    await retriever.search("default", collection, "plain", top_k=5)
    await retriever.search(
        "default",
        collection,
        "narrowed",
        top_k=3,
        mode=SearchMode.SEARCH_MODE_SPARSE,
        document_ids=["doc-9"],
        media_types=["application/pdf"],
        file_names=["a.pdf"],
        keep_chunks=True,
    )

    plain, narrowed = responder.requests
    assert (plain.mode, plain.keep_chunks, list(plain.document_ids)) == (SearchMode.SEARCH_MODE_HYBRID, False, [])
    assert narrowed.mode == SearchMode.SEARCH_MODE_SPARSE
    assert (list(narrowed.document_ids), list(narrowed.media_types), list(narrowed.file_names)) == (
        ["doc-9"],
        ["application/pdf"],
        ["a.pdf"],
    )
    assert narrowed.keep_chunks


@pytest.mark.parametrize(
    "options",
    [
        {"mode": SearchMode.SEARCH_MODE_DENSE},
        {"document_ids": ["doc-2"]},
        {"media_types": ["text/csv"]},
        {"file_names": ["b.md"]},
        {"keep_chunks": True},
    ],
)
async def test_the_same_query_with_other_search_options_is_searched_again(
    responder: SearchResponder, retriever: Retriever, options: dict[str, object]
) -> None:
    collection = new_id("col")
    await retriever.search("default", collection, QUESTION, top_k=5)

    await retriever.search("default", collection, QUESTION, top_k=5, **options)  # type: ignore[arg-type]
    await retriever.search("default", collection, QUESTION, top_k=5, **options)  # type: ignore[arg-type]

    assert responder.asked(QUESTION) == 2


async def test_filters_in_another_order_hit_the_same_cache_entry(
    responder: SearchResponder, retriever: Retriever
) -> None:
    collection = new_id("col")
    await retriever.search("default", collection, QUESTION, top_k=5, document_ids=["a", "b"])

    await retriever.search("default", collection, QUESTION, top_k=5, document_ids=["b", "a"])

    assert responder.asked(QUESTION) == 1
