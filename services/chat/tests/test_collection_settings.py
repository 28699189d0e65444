"""Per-collection chat settings: provider, relevance threshold and passages, over the service defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ragstream_chat.answers import ExtractiveAnswerer
from ragstream_chat.handlers import Question, answer_question
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."


class QuotingAnswerer(ExtractiveAnswerer):
    """Another provider: the extractive answer under its own name."""

    mode = "quoting"


async def test_collection_without_settings_shows_the_defaults(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/collections/{new_id('col')}/chat/settings")

    assert response.json() | {"collection_id": None} == {
        "collection_id": None,
        "provider": "extractive",
        "min_score": 0.2,
        "top_k": 5,
        "openai_base_url": None,
        "openai_model": None,
        "api_key_set": False,
        "api_key_last4": None,
        "source": {"provider": "default", "min_score": "default", "top_k": "default", "endpoint": "default"},
        "providers": ["extractive"],
    }


async def test_collection_threshold_turns_a_weak_match_into_i_dont_know(
    responder: SearchResponder, client: httpx.AsyncClient
) -> None:
    responder.add_hit(MALLARDS, score=0.5)
    strict, lenient = new_id("col"), new_id("col")
    put = await client.put(f"/v1/collections/{strict}/chat/settings", json={"min_score": 0.8})

    # a question only partly in the passage's words: the keyword side of the gate does not keep it either
    question = {"question": "In which season do mallards leave?"}
    strict_answer = await client.post(f"/v1/collections/{strict}/chat", json=question)
    lenient_answer = await client.post(f"/v1/collections/{lenient}/chat", json=question)

    assert put.json()["source"]["min_score"] == "collection"
    assert strict_answer.json()["answer"].startswith("I don't know")
    assert len(lenient_answer.json()["citations"]) == 1


async def test_collection_top_k_is_what_the_search_is_asked_for(
    responder: SearchResponder, client: httpx.AsyncClient
) -> None:
    responder.add_hit(MALLARDS)
    collection = new_id("col")
    await client.put(f"/v1/collections/{collection}/chat/settings", json={"top_k": 2})

    await client.post(f"/v1/collections/{collection}/chat", json={"question": "When do mallards migrate?"})

    assert responder.requests[-1].top_k == 2


async def test_collection_provider_writes_its_answers_and_others_keep_the_default(
    responder: SearchResponder, ports: Ports, client: httpx.AsyncClient
) -> None:
    responder.add_hit(MALLARDS)
    ports.answerers["quoting"] = QuotingAnswerer()
    chosen, other = new_id("col"), new_id("col")
    await client.put(f"/v1/collections/{chosen}/chat/settings", json={"provider": "quoting"})

    chosen_answer = await answer_question(Question("default", chosen, "When do mallards migrate?"), ports)
    other_answer = await answer_question(Question("default", other, "When do mallards migrate?"), ports)

    assert (chosen_answer["mode"], other_answer["mode"]) == ("quoting", "extractive")


async def test_unconfigured_provider_is_refused_naming_the_configured_ones(client: httpx.AsyncClient) -> None:
    response = await client.put(f"/v1/collections/{new_id('col')}/chat/settings", json={"provider": "openai"})

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "provider 'openai' is not configured; configured: extractive"
        " (openai too, with openai_base_url and openai_model)"
    )


async def test_resetting_a_setting_to_null_restores_the_default(client: httpx.AsyncClient) -> None:
    collection = new_id("col")
    await client.put(f"/v1/collections/{collection}/chat/settings", json={"top_k": 9})

    reset = await client.put(f"/v1/collections/{collection}/chat/settings", json={"top_k": None})

    assert (reset.json()["top_k"], reset.json()["source"]["top_k"]) == (5, "default")
