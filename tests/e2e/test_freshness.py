"""Freshness: new content is answerable right after its ``index.updated`` and never before the swap.

Chat's retrieval cache is dropped per collection on ``index.updated``; the embedder activates a
version (the swap) before it publishes that event. The unit tests of the index show that
written, inactive points are invisible to every search mode; this test shows the order on the
running stack, including the cache.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import nats
from nats.aio.msg import Msg

from ragstream_core.events import SUBJECT_OF
from ragstream_core.proto.ragstream.v1.events_pb2 import IndexUpdated
from ragstream_devstack.e2e import Client
from ragstream_devstack.testing import eventually, new_id


def code_word_document(word: str, *, sections: int) -> bytes:
    parts = ["# Launch plan\n"]
    for s in range(sections):
        parts.append(
            f"\n## Step {s}\n\nThe launch code word is {word}. Step {s} of the plan checks the code word {word} "
            "against the ledger before the team proceeds to the next step of the launch.\n"
        )
    return "".join(parts).encode()


@dataclass(frozen=True)
class Answer:
    asked_at: float
    answered_at: float
    versions: frozenset[int]


@dataclass(frozen=True)
class Probe:
    """The embedder's points of the document, per version, as seen by one request."""

    asked_at: float
    versions: frozenset[int]


async def test_content_is_answerable_after_its_index_update_and_not_before_the_swap(client: Client) -> None:
    collection = new_id("fresh")
    question = "What is the launch code word?"
    first = await client.upload(collection, "plan.md", code_word_document("ALPHA", sections=4))
    await client.wait_done([first.json()["job_id"]])
    document_id = first.json()["document_id"]
    cached = await client.chat(collection, question)  # now in chat's retrieval cache
    updated: dict[str, float] = {}

    async def record(msg: Msg) -> None:
        event = IndexUpdated.FromString(msg.data)
        updated.setdefault(event.meta.job_id, time.monotonic())

    events = await nats.connect(client.stack.bus_url)
    await events.subscribe(SUBJECT_OF[IndexUpdated], cb=record)
    await events.flush()
    answers: list[Answer] = []
    probes: list[Probe] = []
    done = asyncio.Event()

    async def ask_continuously() -> None:
        n = 0
        while not done.is_set():
            n += 1  # a new wording each time: every question reaches the index, none the cache
            asked = time.monotonic()
            reply = await client.chat(collection, f"{question} (attempt {n})")
            answers.append(Answer(asked, time.monotonic(), frozenset(c["version"] for c in reply["citations"])))

    async def probe_continuously() -> None:
        # the embedder runs searches, writes, activation and these counts on one index thread, so a
        # count that still holds both versions ran before the activation (which drops version 1)
        while not done.is_set():
            asked = time.monotonic()
            probes.append(Probe(asked, frozenset(int(v) for v in await client.points(document_id))))

    workers = [asyncio.create_task(ask_continuously()), asyncio.create_task(probe_continuously())]
    try:
        second = await client.upload(collection, "plan.md", code_word_document("BRAVO", sections=40))
        job_id = second.json()["job_id"]
        await eventually(lambda: asyncio.sleep(0, updated.get(job_id)), until=bool, within_s=180)
        updated_at = updated[job_id]
        cached_after = await eventually(
            lambda: client.chat(collection, question),
            until=lambda reply: {c["version"] for c in reply["citations"]} == {2},
            within_s=5,
            interval_s=0.02,
        )
        answered_by_then = len(answers)
        await eventually(lambda: asyncio.sleep(0, len(answers)), until=lambda k: k >= answered_by_then + 2, within_s=30)
    finally:
        done.set()
        await asyncio.gather(*workers)
        await events.close()

    # before the swap: version 2 absent, or present but not yet active (both versions in the index)
    before_swap = max(p.asked_at for p in probes if 1 in p.versions)
    answered_before_swap = [a for a in answers if a.answered_at < before_swap]
    asked_after_update = [a for a in answers if a.asked_at > updated_at]
    assert {c["version"] for c in cached["citations"]} == {1}
    assert answered_before_swap
    assert all(a.versions == {1} for a in answered_before_swap), [sorted(a.versions) for a in answered_before_swap]
    assert asked_after_update
    assert all(a.versions == {2} for a in asked_after_update), [sorted(a.versions) for a in asked_after_update]
    assert all("BRAVO" in c["text"] for c in cached_after["citations"])
