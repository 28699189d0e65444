"""The local provider with the real SmolLM2-135M-Instruct, over the real chat API.

Needs the local-model extra (``make test LLM=local``); without llama-cpp-python every test here
is reported as skipped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from ragstream_chat.handlers import Question, answer_question
from ragstream_chat.local_model import LocalAnswerer, load_local_answerer
from ragstream_chat.rewrite import Turn
from ragstream_core.errors import DependencyUnavailable
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

pytest.importorskip("llama_cpp", reason="the local-model extra is not installed (make test LLM=local)")

MALLARDS = "Mallards are ducks that live in wetlands. Mallards migrate south when winter comes."
PEKIN = "The Pekin duck is raised for its meat. It was bred in China."
IBM = (
    "International Business Machines Corporation (IBM) is an American multinational technology company "
    "headquartered in Armonk, New York. It was founded in 1911 in Endicott, New York, as the "
    "Computing-Tabulating-Recording Company and was renamed International Business Machines in 1924."
)


@pytest.fixture(scope="module")
def local() -> Iterator[LocalAnswerer]:
    """SmolLM2 loaded once for the module, one context: at most one answer generated at a time."""
    answerer = load_local_answerer("smollm2", concurrency=1, max_waiting=8)
    yield answerer
    answerer.close()


@pytest.fixture
def local_ports(ports: Ports, local: LocalAnswerer) -> Ports:
    ports.answerers["local"] = local
    return ports


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_streamed_answer_from_smollm2_cites_the_passage_it_comes_from(
    responder: SearchResponder, local_ports: Ports, chat_url: str
) -> None:
    responder.add_hit(IBM, score=0.7, page=3, file_name="ibm.md")
    responder.add_hit(PEKIN, score=0.3, document_id="doc-2", file_name="breeds.md")
    collection = new_id("col")
    async with httpx.AsyncClient(base_url=chat_url, timeout=60) as http:
        put = await http.put(f"/v1/collections/{collection}/chat/settings", json={"provider": "local"})
        response = await http.post(
            f"/v1/collections/{collection}/chat", json={"question": "Where is IBM headquartered?", "stream": True}
        )

    assert put.json()["providers"] == ["extractive", "local"]
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["started", "citation", "citation"]
    assert names.count("delta") > 3  # streamed token by token, not as one block
    done = events[-1][1]
    assert (names[-1], done["mode"]) == ("done", "local")
    assert done["answer"] == "".join(data["text"] for name, data in events if name == "delta").strip()
    assert "Armonk" in done["answer"]
    assert "[1]" in done["answer"]
    assert {n for sentence in done["sentences"] for n in sentence["citations"]} == {1}


async def test_follow_up_is_searched_with_the_topic_the_model_resolved(
    responder: SearchResponder, local_ports: Ports
) -> None:
    responder.add_hit(MALLARDS, score=0.8)
    local_ports.provider = "local"
    collection = new_id("col")
    first = await answer_question(Question("default", collection, "Where do mallards live?"), local_ports)

    follow_up = await answer_question(
        Question("default", collection, "When do they migrate?", conversation_id=first["conversation_id"]),
        local_ports,
    )

    words = follow_up["query"].lower().split()
    assert {"mallards", "migrate"} <= {w.strip("?") for w in words}
    assert "they" not in words  # the model resolved it: the deterministic rewrite keeps the pronoun
    assert responder.requests[-1].query == follow_up["query"]


async def test_a_rewrite_dropping_what_the_follow_up_asks_falls_back_to_the_deterministic_one(
    local: LocalAnswerer,
) -> None:
    # SmolLM2 rewrites this one as "What do IBM headquartered?": the question's "founded" is lost
    query = await local.rewrite("When was it founded?", [Turn("user", "Where is IBM headquartered?")])

    assert query == "When was it founded? ibm headquartered"


async def test_unrelated_question_is_i_dont_know_without_running_the_model(
    responder: SearchResponder, local_ports: Ports
) -> None:
    responder.add_hit(PEKIN, score=0.05)
    local_ports.provider = "local"

    result = await answer_question(Question("default", new_id("col"), "What is the capital of France?"), local_ports)

    assert (result["mode"], result["citations"]) == ("local", [])
    assert result["answer"].startswith("I don't know")


async def test_what_the_model_says_beyond_the_passages_is_left_uncited(local: LocalAnswerer) -> None:
    answer = await local.answer("What is the capital of France?", [SearchHit(text=IBM)])

    assert answer.text
    assert answer.cited == []


async def test_at_most_one_answer_is_generated_at_a_time(local: LocalAnswerer) -> None:
    spans: list[tuple[float, float]] = []

    async def timed(question: str) -> None:
        times = [time.perf_counter() async for _ in local.stream(question, [SearchHit(text=MALLARDS)])]
        spans.append((times[0], times[-1]))

    await asyncio.gather(*(timed(q) for q in ("When do mallards migrate?", "Where do mallards live?", "Ducks?")))

    ordered = sorted(spans)
    overlaps = [(a, b) for a, b in itertools.pairwise(ordered) if b[0] < a[1]]
    assert overlaps == [], f"generations overlapped: {ordered}"


async def test_two_contexts_generate_two_answers_at_once_and_never_three() -> None:
    answerer = load_local_answerer("smollm2", concurrency=2)
    spans: list[tuple[float, float]] = []

    async def timed(question: str) -> None:
        times = [time.perf_counter() async for _ in answerer.stream(question, [SearchHit(text=IBM)])]
        spans.append((times[0], times[-1]))

    try:
        await asyncio.gather(*(timed(q) for q in ("Where is IBM?", "When was IBM founded?", "What is IBM?")))
    finally:
        answerer.close()

    def at_once(moment: float) -> int:
        return sum(1 for start, end in spans if start <= moment <= end)

    assert max(at_once(start) for start, _ in spans) == 2, sorted(spans)


async def test_a_question_beyond_the_waiting_bound_is_refused_not_queued() -> None:
    answerer = load_local_answerer("smollm2", concurrency=1, max_waiting=0)
    try:
        running = answerer.stream("List every fact about mallards.", [SearchHit(text=MALLARDS)])
        assert isinstance(running, AsyncGenerator)
        await anext(running)  # the only context is now generating

        with pytest.raises(DependencyUnavailable, match="the local model is busy"):
            await anext(answerer.stream("Ducks?", [SearchHit(text=MALLARDS)]))
        await running.aclose()
    finally:
        answerer.close()


async def test_generation_leaves_the_event_loop_free(local: LocalAnswerer) -> None:
    gaps: list[float] = []
    generating = True

    async def tick() -> None:
        last = time.perf_counter()
        while generating:
            await asyncio.sleep(0.01)  # a timer, measuring the loop's latency, not a wait for a result
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    answer = await local.answer("When do mallards migrate?", [SearchHit(text=MALLARDS), SearchHit(text=PEKIN)])
    took = time.perf_counter() - started
    generating = False
    await ticker

    assert answer.text
    assert max(gaps) < 0.25, f"the loop stalled {max(gaps):.3f} s during {took:.2f} s of generation"
