"""Upload-to-answerable latency: how long a small new document takes to be cited by chat.

Each probe is a distinct one-page Markdown document about a made-up word that occurs nowhere
else. The clock starts just before the upload request and stops when a chat answer to
"What is <word>?" cites that document; chat is asked every 50 ms. Probes run one at a time,
so the system is otherwise idle.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import datetime
from typing import Any

import httpx

from ragstream_devstack.stack import Stack

POLL_S = 0.05
PROBE_TIMEOUT_S = 120.0
_CONSONANTS = "bdfgklmnprstvz"
_STAGES = (
    ("gateway_s", "uploaded"),  # upload request until the gateway published doc.uploaded
    ("queued_for_parser_s", "parsing"),
    ("parsing_s", "parsed"),
    ("embedding_s", "indexed"),  # includes any wait in the embedder's queue
)
_VOWELS = "aeiou"


def made_up_word(number: int) -> str:
    """A pronounceable nonsense word, the same for the same number (reproducible runs)."""
    rng = random.Random(f"ragstream-bench-probe-{number}")
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(4)) + rng.choice(_CONSONANTS)


def probe_document(word: str, number: int) -> bytes:
    title = word.capitalize()
    return (
        f"# {title}\n\n"
        f"{title} is the name the benchmark gave to its probe number {number}. "
        f"The word {word} appears in no other document of the collection.\n\n"
        f"Whoever asks what {word} is should be pointed to this page about {word}.\n"
    ).encode()


def _at(job: dict[str, Any], status: str) -> float | None:
    value = job["timestamps"].get(status)
    return datetime.fromisoformat(value).timestamp() if value else None


async def _finished_job(client: httpx.AsyncClient, progress: str, job_id: str) -> dict[str, Any]:
    """The job once progress has projected its end (chat may cite a document a moment before)."""
    deadline = time.perf_counter() + 30
    while True:
        response = await client.get(f"{progress}/v1/jobs/{job_id}", timeout=30)
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        if job["status"] in ("indexed", "failed") or time.perf_counter() > deadline:
            return job
        await asyncio.sleep(POLL_S)


async def _probe(client: httpx.AsyncClient, stack: Stack, collection: str, number: int) -> dict[str, Any]:
    word = made_up_word(number)
    gateway, chat, progress = stack.url("ingest-gateway"), stack.url("chat"), stack.url("progress")
    files = {"file": (f"probe-{number:02d}-{word}.md", probe_document(word, number), "text/markdown")}
    started_wall, started = time.time(), time.perf_counter()
    response = await client.post(f"{gateway}/v1/collections/{collection}/documents", files=files, timeout=60)
    if response.status_code != 202:
        raise RuntimeError(f"probe upload answered {response.status_code} (expected 202): {response.text[:300]}")
    upload = response.json()
    accepted = time.perf_counter() - started
    question = {"question": f"What is {word}?", "top_k": 10}
    polls, seconds, last_cited = 0, None, []
    while time.perf_counter() - started < PROBE_TIMEOUT_S:
        polls += 1
        answer = await client.post(f"{chat}/v1/collections/{collection}/chat", json=question, timeout=30)
        answer.raise_for_status()
        cited = [c["document_id"] for c in answer.json()["citations"]]
        if upload["document_id"] in cited:
            seconds = time.perf_counter() - started
            break
        last_cited = cited
        await asyncio.sleep(POLL_S)
    job = await _finished_job(client, progress, upload["job_id"])
    # the span between two consecutive events of the job, named after what happened in it
    stages: dict[str, float | None] = {}
    previous: float | None = started_wall
    for name, status in _STAGES:
        at = _at(job, status)
        stages[name] = None if at is None or previous is None else round(at - previous, 4)
        previous = at
    answerable = None if seconds is None else started_wall + seconds
    stages["indexed_to_cited_s"] = None if answerable is None or previous is None else round(answerable - previous, 4)
    return {
        "word": word,
        "document_id": upload["document_id"],
        "job_status": job["status"],
        "seconds": None if seconds is None else round(seconds, 4),
        "upload_request_s": round(accepted, 4),
        "chat_polls": polls,
        "stages": stages,
        "error": None
        if seconds is not None
        else f"not cited within {PROBE_TIMEOUT_S:.0f}s (job {job['status']}; last citations {last_cited})",
    }


async def measure_latency(stack: Stack, *, collection: str, probes: int) -> list[dict[str, Any]]:
    """One sample per probe, in order; a probe that is never cited has ``seconds`` None and an error."""
    samples = []
    async with httpx.AsyncClient() as client:
        for number in range(1, probes + 1):
            sample = await _probe(client, stack, collection, number)
            samples.append(sample)
            shown = f"{sample['seconds']:.3f}s" if sample["seconds"] is not None else sample["error"]
            _say(f"  probe {number:2d} ({sample['word']}): {shown}")
    return samples


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
