"""A second start on the same data finds the first one's documents, jobs and index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id


async def test_restarted_system_keeps_documents_jobs_and_answers(
    tmp_path: Path, corpus: Path, start_stack: Callable[[Path, Path], Stack]
) -> None:
    collection = new_id("restart")
    first = start_stack(tmp_path / "data", tmp_path / "logs")
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            client = Client(first, http)
            upload = await client.upload(collection, "wiki.md", (corpus / "md" / "wiki.md").read_bytes())
            (job,) = await client.wait_done([upload.json()["job_id"]])
    finally:
        first.stop()

    second = start_stack(tmp_path / "data", tmp_path / "logs")
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            client = Client(second, http)
            again = await client.job(job["job_id"])
            answer = await client.chat(collection, "What is IBM nicknamed?")
            same = await client.upload(collection, "wiki.md", (corpus / "md" / "wiki.md").read_bytes())
    finally:
        second.stop()

    assert job["status"] == again["status"] == "indexed"
    assert again["history"] == job["history"]
    assert answer["citations"][0]["document_id"] == job["document_id"]
    assert "Big Blue" in " ".join(c["text"] for c in answer["citations"])
    assert same.json()["unchanged"] is True
