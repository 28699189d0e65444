"""Answering a question: retrieval over NATS request/reply, relevance cut-off, citations, errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from ragstream_chat.handlers import Question, answer_question
from ragstream_chat.retrieval import Retriever
from ragstream_core.bus import Bus
from ragstream_core.errors import DependencyUnavailable, InvalidInput
from ragstream_core.events import SEARCH_SUBJECT
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."
PEKIN = "The Pekin duck is raised for its meat. It was bred in China."


async def test_answer_cites_the_passages_it_was_written_from(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit(MALLARDS, score=0.9, page=3, heading_path=["Ducks", "Migration"], chunk_index=4)
    responder.add_hit(PEKIN, score=0.6, page=0, document_id="doc-2", file_name="breeds.md", heading_path=["Breeds"])

    result = await answer_question(Question("default", new_id("col"), "When do mallards migrate?"), ports)

    assert result["mode"] == "extractive"
    assert result["answer"].startswith("Mallards migrate south when winter comes. [1]")
    assert result["citations"] == [
        {
            "number": 1,
            "document_id": "doc-1",
            "version": 1,
            "file_name": "duck.md",
            "heading_path": ["Ducks", "Migration"],
            "page": 3,
            "chunk_index": 4,
            "text": MALLARDS,
            "score": 0.9,
        },
        {
            "number": 2,
            "document_id": "doc-2",
            "version": 1,
            "file_name": "breeds.md",
            "heading_path": ["Breeds"],
            "page": None,
            "chunk_index": 0,
            "text": PEKIN,
            "score": 0.6,
        },
    ]


async def test_search_is_asked_for_the_tenant_collection_and_question(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit(MALLARDS)
    collection = new_id("col")

    await answer_question(Question("acme", collection, "  When do mallards migrate?  ", top_k=3), ports)

    [request] = responder.requests
    assert (request.tenant_id, request.collection_id, request.query, request.top_k) == (
        "acme",
        collection,
        "When do mallards migrate?",
        3,
    )


async def test_passages_below_the_minimum_score_are_not_cited(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    responder.add_hit(PEKIN, score=0.1, document_id="doc-2")

    result = await answer_question(Question("default", new_id("col"), "When do mallards migrate?"), ports)

    assert [c["document_id"] for c in result["citations"]] == ["doc-1"]
    assert "Pekin" not in result["answer"]


async def test_no_relevant_passage_means_i_dont_know_without_citations(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit(PEKIN, score=0.15)
    collection = new_id("col")

    result = await answer_question(Question("default", collection, "What is the capital of France?"), ports)

    assert result["answer"] == f"I don't know: nothing in collection {collection!r} matches the question."
    assert (result["mode"], result["citations"]) == ("extractive", [])
    assert result["sentences"] == [{"index": 0, "text": result["answer"], "citations": []}]


async def test_empty_collection_means_i_dont_know(responder: SearchResponder, ports: Ports) -> None:
    result = await answer_question(Question("default", new_id("col"), "When do mallards migrate?"), ports)

    assert result["answer"].startswith("I don't know")
    assert result["citations"] == []


async def test_blank_question_is_invalid_input_and_searches_nothing(responder: SearchResponder, ports: Ports) -> None:
    with pytest.raises(InvalidInput, match="the question is empty"):
        await answer_question(Question("default", new_id("col"), "  \n "), ports)

    assert responder.requests == []


async def test_search_without_responder_is_dependency_unavailable(ports: Ports) -> None:
    with pytest.raises(DependencyUnavailable, match="did not answer"):
        await answer_question(Question("default", new_id("col"), "When do mallards migrate?"), ports)


async def test_search_that_times_out_is_dependency_unavailable(chat_bus: Bus, ports: Ports) -> None:
    async def never(_: object) -> None:
        """A subscriber that takes the request and never replies, like a hung embedder."""

    await chat_bus.nc.subscribe(SEARCH_SUBJECT, cb=never)
    ports.retriever = Retriever(chat_bus, timeout_s=0.2, cache_entries=0)

    with pytest.raises(DependencyUnavailable, match="TimeoutError"):
        await answer_question(Question("default", new_id("col"), "When do mallards migrate?"), ports)


async def test_search_error_reply_is_dependency_unavailable(responder: SearchResponder, ports: Ports) -> None:
    responder.error = "collection index is being rebuilt"

    with pytest.raises(DependencyUnavailable, match="collection index is being rebuilt"):
        await answer_question(Question("default", new_id("col"), "When do mallards migrate?"), ports)


async def test_rest_chat_answers_with_citations(
    responder: SearchResponder, client: httpx.AsyncClient, ports: Ports
) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    collection = new_id("col")

    response = await client.post(
        f"/v1/collections/{collection}/chat",
        json={"question": "When do mallards migrate?", "top_k": 2},
        headers={"X-Tenant-Id": "acme"},
    )

    assert response.status_code == 200
    assert response.json()["citations"][0]["text"] == MALLARDS
    assert (responder.requests[0].tenant_id, responder.requests[0].top_k) == ("acme", 2)


async def test_rest_chat_without_search_service_is_503(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v1/collections/{new_id('col')}/chat", json={"question": "Why?"})

    assert response.status_code == 503
    assert response.json()["error"] == "DependencyUnavailable"
    assert "did not answer" in response.json()["detail"]


async def test_rest_chat_with_blank_question_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v1/collections/{new_id('col')}/chat", json={"question": "   "})

    assert response.status_code == 400
    assert response.json()["error"] == "InvalidInput"
