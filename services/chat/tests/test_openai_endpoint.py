"""Our OpenAI-compatible API, spoken to by the official ``openai`` client; ``model`` names a collection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from ragstream_chat.handlers import Question, answer_question
from ragstream_core.proto.ragstream.v1.events_pb2 import EventMeta, IndexUpdated
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from conftest import Ports, SearchResponder

MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."
PEKIN = "The Pekin duck is raised for its meat. It was bred in China."


@pytest.fixture
async def tenant() -> str:
    return new_id("tenant")


@pytest.fixture
async def llm(chat_url: str, tenant: str) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        base_url=f"{chat_url}/v1", api_key="any-key", default_headers={"X-Tenant-Id": tenant}, max_retries=0
    ) as client:
        yield client


async def test_completion_answers_from_the_collection_with_citations_in_an_extra_field(
    responder: SearchResponder, llm: AsyncOpenAI
) -> None:
    responder.add_hit(MALLARDS, score=0.9, page=2)
    collection = new_id("col")

    completion = await llm.chat.completions.create(
        model=collection, messages=[{"role": "user", "content": "When do mallards migrate?"}]
    )

    assert completion.model == collection
    assert completion.choices[0].message.content == "Mallards migrate south when winter comes. [1]"
    assert completion.choices[0].finish_reason == "stop"
    extra: dict[str, Any] = completion.model_extra or {}
    assert [(c["number"], c["document_id"], c["page"], c["text"]) for c in extra["citations"]] == [
        (1, "doc-1", 2, MALLARDS)
    ]
    assert extra["sentences"][0]["citations"] == [1]
    assert responder.requests[-1].collection_id == collection


async def test_streamed_completion_arrives_as_chunks_with_citations_on_the_last(
    responder: SearchResponder, llm: AsyncOpenAI
) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    responder.add_hit(PEKIN, score=0.7, document_id="doc-2")

    stream = await llm.chat.completions.create(
        model=new_id("col"),
        messages=[{"role": "user", "content": "When do mallards migrate, and what is the Pekin for?"}],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Mallards migrate south when winter comes. [1] The Pekin duck is raised for its meat. [2]"
    assert len([c for c in chunks if c.choices[0].delta.content]) == 2
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert [c["document_id"] for c in (last.model_extra or {})["citations"]] == ["doc-1", "doc-2"]


async def test_earlier_messages_rewrite_the_retrieval_query_and_nothing_is_stored(
    responder: SearchResponder, llm: AsyncOpenAI, ports: Ports, tenant: str
) -> None:
    responder.add_hit(MALLARDS)

    await llm.chat.completions.create(
        model=new_id("col"),
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Where do mallards live?"},
            {"role": "assistant", "content": "In wetlands."},
            {"role": "user", "content": [{"type": "text", "text": "When do they migrate?"}]},
        ],
    )

    assert responder.requests[-1].query == "When do they migrate? mallards live"
    assert await ports.conversations.list(tenant) == []


async def test_last_message_not_from_the_user_is_a_400_in_openai_shape(
    responder: SearchResponder, llm: AsyncOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await llm.chat.completions.create(model=new_id("col"), messages=[{"role": "assistant", "content": "Hi"}])

    assert raised.value.status_code == 400
    assert raised.value.code == "InvalidInput"
    assert "the last message must be the user's question" in raised.value.message


async def test_search_unavailable_is_a_503_in_openai_shape(llm: AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        await llm.chat.completions.create(model=new_id("col"), messages=[{"role": "user", "content": "Why?"}])

    assert raised.value.status_code == 503
    assert "did not answer" in raised.value.message


async def test_models_are_the_collections_indexed_configured_or_chatted_in(
    responder: SearchResponder, llm: AsyncOpenAI, ports: Ports, tenant: str
) -> None:
    responder.add_hit(MALLARDS)
    indexed, configured, chatted = new_id("col-a"), new_id("col-b"), new_id("col-c")
    await ports.collections.note_indexed(tenant, indexed)
    await llm.put(
        f"/collections/{configured}/chat/settings", cast_to=object, body={"top_k": 3}
    )  # any route of the API, through the same client
    await answer_question(Question(tenant, chatted, "Where do mallards live?"), ports)

    models = await llm.models.list()

    assert sorted(m.id for m in models.data) == sorted([indexed, configured, chatted])
    assert {m.owned_by for m in models.data} == {tenant}


async def test_index_updated_makes_the_collection_a_model(ports: Ports, llm: AsyncOpenAI, tenant: str) -> None:
    from ragstream_chat.handlers import on_index_updated

    collection = new_id("col")

    await on_index_updated(IndexUpdated(meta=EventMeta(tenant_id=tenant, collection_id=collection)), ports)

    assert [m.id for m in (await llm.models.list()).data] == [collection]


async def test_a_body_of_the_wrong_shape_is_a_422_in_openai_shape_naming_the_field(llm: AsyncOpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        await llm.chat.completions.create(model=new_id("col"), messages=[])

    assert raised.value.code == "invalid_value"
    assert raised.value.param == "messages"
    assert "messages: List should have at least 1 item" in raised.value.message


async def test_other_routes_keep_fastapis_422(chat_url: str) -> None:
    async with httpx.AsyncClient(base_url=chat_url) as http:
        response = await http.post(f"/v1/collections/{new_id('col')}/chat", json={"question": ""})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "question"]
