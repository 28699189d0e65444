"""The local model answering over the running system, as ``make run LLM=local`` starts it.

Needs the local-model extra (``make test LLM=local``); without llama-cpp-python it is reported as skipped.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

pytest.importorskip("llama_cpp", reason="the local-model extra is not installed (make test LLM=local)")

LOGS = Path(__file__).resolve().parents[2] / "test-output" / "e2e" / "logs-local"
IBM = b"""# IBM

## History

International Business Machines Corporation (IBM) is an American multinational technology company
headquartered in Armonk, New York. It was founded in 1911 in Endicott, New York, as the
Computing-Tabulating-Recording Company and was renamed International Business Machines in 1924.

## Slogan

Thomas J. Watson's favourite slogan, THINK, became a mantra for the company's employees.
"""


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of this module's own whose chat has the local model (and keeps extractive as default)."""
    env = {"RAGSTREAM_CHAT_LOCAL_MODEL": "smollm2", "RAGSTREAM_LOG_LEVEL": "INFO"}
    stack = Stack(data_dir=tmp_path_factory.mktemp("local-stack"), log_dir=LOGS, env=env).start()
    yield stack
    stack.stop()


@pytest.fixture
async def local_client(local_stack: Stack) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(timeout=120) as http:
        yield Client(local_stack, http)


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    blocks = [dict(line.split(": ", 1) for line in b.splitlines()) for b in body.strip().split("\n\n")]
    return [(b["event"], json.loads(b["data"])) for b in blocks]


async def test_local_model_streams_a_cited_answer_from_an_indexed_document(local_client: Client) -> None:
    collection = new_id("local")
    upload = await local_client.upload(collection, "ibm.md", IBM)
    [job] = await local_client.wait_done([upload.json()["job_id"]])
    chat = f"{local_client.stack.url('chat')}/v1/collections/{collection}/chat"
    put = await local_client.http.put(f"{chat}/settings", json={"provider": "local"})

    response = await local_client.http.post(chat, json={"question": "Where is IBM headquartered?", "stream": True})

    assert (job["status"], put.status_code) == ("indexed", 200)
    events = sse_events(response.text)
    done = events[-1][1]
    assert (events[0][1]["mode"], events[-1][0]) == ("local", "done")
    assert [name for name, _ in events].count("delta") > 3
    assert "Armonk" in done["answer"]
    cited = {n for sentence in done["sentences"] for n in sentence["citations"]}
    assert {c["file_name"] for c in done["citations"] if c["number"] in cited} == {"ibm.md"}
