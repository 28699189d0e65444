"""Chat under measurement (issue 5): freshness after ``index.updated``, time to first token, and
answers per second under concurrent clients.

- ``measure_freshness``: a one-page document about a made-up word is uploaded while this
  process listens to ``index.updated`` on NATS and asks chat about the word in a tight loop.
  Freshness is the time from the event reaching this process to the first answer that cites
  the document; an answer citing it *before* the event would break the ordering and is counted.
- ``measure_first_token``: questions streamed over SSE one at a time on the idle system; the
  seconds to the first ``delta`` event (the first words of the answer) and to ``done``.
- ``measure_concurrency``: ``clients`` clients ask distinct questions back to back for
  ``seconds``; answers per second and the latency of each answer.

Questions are distinct (the first words of the corpus' sentences), so the retrieval cache
never answers them.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import nats
from latency_probes import made_up_word, probe_document
from steering_probes import percentile

from ragstream_core.proto.ragstream.v1.events_pb2 import IndexUpdated
from ragstream_devstack.stack import Stack

INDEX_UPDATED = "ragstream.events.index.updated"


def corpus_questions(corpus: Path, count: int) -> list[str]:
    """``count`` distinct questions: the first eight words of sentences of the corpus' Markdown."""
    questions: list[str] = []
    for path in sorted((corpus / "md").glob("*.md")):
        for sentence in re.split(r"(?<=[.!?])\s+", path.read_text(errors="ignore")):
            words = re.findall(r"[A-Za-z][A-Za-z'-]+", sentence)
            if len(words) >= 8:
                question = "What about " + " ".join(words[:8]) + "?"
                if question not in questions:
                    questions.append(question)
    if not questions:
        raise RuntimeError(f"no sentences in {corpus / 'md'} to ask about")
    # past the corpus' own sentences, numbered variants: still distinct texts for the cache
    variants = (f"{q} ({n})" for n in range(1, count) for q in questions)
    return [*questions, *variants][:count]


def _summary(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"samples": 0}
    return {
        "samples": len(seconds),
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


async def measure_freshness(stack: Stack, *, collection: str, probes: int, first_number: int = 1000) -> dict[str, Any]:
    """Per probe: seconds from ``index.updated`` (as this process heard it) to the first citing answer."""
    gateway, chat = stack.url("ingest-gateway"), stack.url("chat")
    connection = await nats.connect(stack.bus_url)
    heard: dict[str, float] = {}
    arrived = asyncio.Event()

    async def on_event(message: Any) -> None:
        event = IndexUpdated()
        event.ParseFromString(message.data)
        heard.setdefault(event.meta.document_id, time.perf_counter())
        arrived.set()

    subscription = await connection.subscribe(INDEX_UPDATED, cb=on_event)
    samples: list[float] = []
    early = 0
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for number in range(first_number, first_number + probes):
                word = made_up_word(number)
                files = {"file": (f"fresh-{number}-{word}.md", probe_document(word, number), "text/markdown")}
                response = await client.post(f"{gateway}/v1/collections/{collection}/documents", files=files)
                response.raise_for_status()
                document_id = response.json()["document_id"]
                question = {"question": f"What is {word}?", "top_k": 5}
                deadline = time.perf_counter() + 120
                while time.perf_counter() < deadline:
                    answer = await client.post(f"{chat}/v1/collections/{collection}/chat", json=question)
                    answer.raise_for_status()
                    if any(c["document_id"] == document_id for c in answer.json()["citations"]):
                        cited_at = time.perf_counter()
                        if document_id not in heard:
                            early += 1  # cited before the event: the ordering is broken
                        else:
                            samples.append(cited_at - heard[document_id])
                        break
                else:
                    raise RuntimeError(f"freshness probe {number} was never cited within 120 s")
    finally:
        await subscription.unsubscribe()
        await connection.close()
    return {"probes": probes, "cited_before_the_event": early, **_summary(samples)}


async def measure_first_token(stack: Stack, *, collection: str, questions: list[str]) -> dict[str, Any]:
    """Seconds to the first ``delta`` and to ``done`` of streamed answers, one question at a time."""
    chat = stack.url("chat")
    first: list[float] = []
    whole: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for question in questions:
            started = time.perf_counter()
            body = {"question": question, "stream": True}
            seen_delta = False
            async with client.stream("POST", f"{chat}/v1/collections/{collection}/chat", json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line == "event: delta" and not seen_delta:
                        seen_delta = True
                        first.append(time.perf_counter() - started)
                    elif line == "event: done":
                        whole.append(time.perf_counter() - started)
    return {"provider": "extractive", "first_token": _summary(first), "whole_answer": _summary(whole)}


async def measure_concurrency(
    stack: Stack, *, collection: str, questions: list[str], clients: int = 20, seconds: float = 20.0
) -> dict[str, Any]:
    """``clients`` clients asking back to back for ``seconds``: answers/s and latency per answer."""
    chat = stack.url("chat")
    latencies: list[float] = []
    errors = 0
    pending = iter(questions)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one_client(client: httpx.AsyncClient, stop_at: float) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            question = next(pending, None)
            if question is None:
                return
            started = time.perf_counter()
            response = await client.post(f"{chat}/v1/collections/{collection}/chat", json={"question": question})
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(one_client(client, stop_at) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "answers": len(latencies),
        "errors": errors,
        "answers_per_s": round(len(latencies) / elapsed, 1),
        "latency": _summary(latencies),
    }
