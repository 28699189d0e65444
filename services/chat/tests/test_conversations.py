"""Conversations in PostgreSQL: started by the first question or explicitly, listed, fetched, deleted;
follow-ups searched with the history."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest

from ragstream_chat.handlers import Question, answer_question
from ragstream_core.errors import InvalidInput, NotFound
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."


async def test_first_question_starts_a_conversation_holding_question_answer_and_citations(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit(MALLARDS, score=0.9, page=3, heading_path=["Ducks"])
    tenant, collection = new_id("tenant"), new_id("col")

    result = await answer_question(Question(tenant, collection, "When do mallards migrate?"), ports)

    stored = await ports.conversations.get(tenant, result["conversation_id"])
    assert (stored["collection_id"], stored["title"]) == (collection, "When do mallards migrate?")
    question, answer = stored["messages"]
    assert (question["role"], question["content"], question["query"]) == (
        "user",
        "When do mallards migrate?",
        "When do mallards migrate?",
    )
    assert (answer["role"], answer["message_id"], answer["content"]) == (
        "assistant",
        result["message_id"],
        "Mallards migrate south when winter comes. [1]",
    )
    assert answer["citations"] == result["citations"]
    assert answer["citations"][0]["heading_path"] == ["Ducks"]
    assert answer["sentences"] == [
        {"index": 0, "text": "Mallards migrate south when winter comes. [1]", "citations": [1]}
    ]


async def test_follow_up_is_searched_with_the_previous_questions_key_terms(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit(MALLARDS)
    collection = new_id("col")
    first = await answer_question(Question("default", collection, "Where do mallards live?"), ports)

    follow_up = await answer_question(
        Question("default", collection, "When do they migrate?", conversation_id=first["conversation_id"]), ports
    )

    assert follow_up["conversation_id"] == first["conversation_id"]
    assert follow_up["query"] == "When do they migrate? mallards live"
    assert responder.requests[-1].query == "When do they migrate? mallards live"
    stored = await ports.conversations.get("default", first["conversation_id"])
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]


async def test_question_without_conversation_id_starts_another_conversation(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit(MALLARDS)
    collection = new_id("col")

    first = await answer_question(Question("default", collection, "Where do mallards live?"), ports)
    second = await answer_question(Question("default", collection, "When do they migrate?"), ports)

    assert second["conversation_id"] != first["conversation_id"]
    assert second["query"] == "When do they migrate?"


async def test_unknown_conversation_is_not_found_and_searches_nothing(responder: SearchResponder, ports: Ports) -> None:
    with pytest.raises(NotFound, match="no conversation 'conv-missing'"):
        await answer_question(Question("default", new_id("col"), "Why?", conversation_id="conv-missing"), ports)

    assert responder.requests == []


async def test_conversation_of_another_tenant_is_not_found(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit(MALLARDS)
    collection = new_id("col")
    first = await answer_question(Question(new_id("tenant"), collection, "Where do mallards live?"), ports)

    with pytest.raises(NotFound):
        await answer_question(Question("default", collection, "Why?", conversation_id=first["conversation_id"]), ports)


async def test_conversation_of_another_collection_is_invalid_input(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit(MALLARDS)
    first = await answer_question(Question("default", new_id("col"), "Where do mallards live?"), ports)

    with pytest.raises(InvalidInput, match="belongs to collection"):
        await answer_question(
            Question("default", new_id("col"), "Why?", conversation_id=first["conversation_id"]), ports
        )


async def test_rest_creates_lists_fetches_and_deletes_conversations(
    responder: SearchResponder, client: httpx.AsyncClient
) -> None:
    responder.add_hit(MALLARDS)
    tenant, collection = {"X-Tenant-Id": new_id("tenant")}, new_id("col")
    created = await client.post(f"/v1/collections/{collection}/conversations", json={"title": "Ducks"}, headers=tenant)
    conversation_id = created.json()["conversation_id"]
    asked = await client.post(
        f"/v1/collections/{collection}/chat",
        json={"question": "When do mallards migrate?", "conversation_id": conversation_id},
        headers=tenant,
    )
    implicit = await client.post(f"/v1/collections/{collection}/chat", json={"question": "Pekin?"}, headers=tenant)

    listed = await client.get("/v1/conversations", params={"collection_id": collection}, headers=tenant)
    by_collection = await client.get(f"/v1/collections/{collection}/conversations", headers=tenant)
    fetched = await client.get(f"/v1/conversations/{conversation_id}", headers=tenant)
    deleted = await client.delete(f"/v1/conversations/{conversation_id}", headers=tenant)
    gone = await client.get(f"/v1/conversations/{conversation_id}", headers=tenant)
    deleted_again = await client.delete(f"/v1/conversations/{conversation_id}", headers=tenant)

    assert created.status_code == 201
    assert asked.json()["conversation_id"] == conversation_id
    assert [(c["conversation_id"], c["message_count"]) for c in listed.json()["conversations"]] == [
        (implicit.json()["conversation_id"], 2),
        (conversation_id, 2),
    ]
    assert by_collection.json() == listed.json()
    assert fetched.json()["title"] == "Ducks"
    assert fetched.json()["messages"][1]["citations"][0]["text"] == MALLARDS
    assert (deleted.status_code, gone.status_code, deleted_again.status_code) == (204, 404, 404)


async def test_conversations_are_listed_only_to_their_tenant(
    responder: SearchResponder, client: httpx.AsyncClient
) -> None:
    collection = new_id("col")
    await client.post(f"/v1/collections/{collection}/conversations", json={}, headers={"X-Tenant-Id": new_id("t")})

    listed = await client.get("/v1/conversations", params={"collection_id": collection}, headers={"X-Tenant-Id": "x"})

    assert listed.json() == {"conversations": []}


async def test_rest_question_in_unknown_conversation_is_404(
    responder: SearchResponder, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"/v1/collections/{new_id('col')}/chat", json={"question": "Why?", "conversation_id": "conv-nope"}
    )

    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"


async def test_concurrent_questions_in_one_conversation_are_stored_as_whole_exchanges(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit(MALLARDS)
    collection = new_id("col")
    first = await answer_question(Question("default", collection, "Where do mallards live?"), ports)
    conversation_id = first["conversation_id"]

    await asyncio.gather(
        *(
            answer_question(Question("default", collection, f"Question {n}?", conversation_id=conversation_id), ports)
            for n in range(4)
        )
    )

    messages = (await ports.conversations.get("default", conversation_id))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 5
    assert sorted(m["content"] for m in messages[2::2]) == [f"Question {n}?" for n in range(4)]
