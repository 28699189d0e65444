"""Retrieval filters over the running system: documents with different tags and dates, a question
whose best match a filter excludes, and a tag change that reaches the index without re-embedding."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import eventually, new_id

MALLARDS = b"""# Mallards

Mallards migrate south when winter comes. Mallards return to the northern lakes in early spring.
"""
GEESE = b"""# Geese

Canada geese migrate south in autumn, flying in a V formation over the lakes.
"""
QUESTION = "When do mallards migrate south?"


async def upload(client: Client, collection: str, name: str, data: bytes, tags: list[str]) -> dict[str, Any]:
    response = await client.http.post(
        f"{client.stack.url('ingest-gateway')}/v1/collections/{collection}/documents",
        files={"file": (name, data)},
        data={"tags": ",".join(tags)},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def ask(stack: Stack, client: Client, collection: str, **filters: Any) -> dict[str, Any]:
    response = await client.http.post(
        f"{stack.url('chat')}/v1/collections/{collection}/chat", json={"question": QUESTION, **filters}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cited(answer: dict[str, Any]) -> set[str]:
    return {c["file_name"] for c in answer["citations"]}


async def test_filters_exclude_the_best_match_and_a_tag_change_applies_without_reembedding(
    client: Client, stack: Stack
) -> None:
    collection = new_id("filters")
    mallards = await upload(client, collection, "mallards.md", MALLARDS, ["birds", "ducks"])
    # the date filter compares whole seconds: the second document is created a second later
    await asyncio.sleep(1.1)
    geese = await upload(client, collection, "geese.md", GEESE, ["birds", "geese"])
    jobs = await client.wait_done([mallards["job_id"], geese["job_id"]])
    assert [j["status"] for j in jobs] == ["indexed", "indexed"], jobs
    mallards_at = datetime.fromisoformat(mallards["created_at"])
    geese_at = datetime.fromisoformat(geese["created_at"])

    unfiltered = await ask(stack, client, collection)
    by_tag = await ask(stack, client, collection, tags=["Geese"])
    any_of = await ask(stack, client, collection, tags=["geese", "nothing"])
    by_date = await ask(stack, client, collection, date_from=(geese_at - timedelta(milliseconds=100)).isoformat())
    up_to = await ask(stack, client, collection, date_to=mallards_at.isoformat())
    nothing = await ask(stack, client, collection, tags=["fish"])

    assert unfiltered["citations"][0]["file_name"] == "mallards.md"
    assert cited(by_tag) == {"geese.md"}
    assert cited(any_of) == {"geese.md"}
    assert cited(by_date) == {"geese.md"}
    assert cited(up_to) == {"mallards.md"}
    assert nothing["citations"] == []

    patched = await client.http.patch(
        f"{stack.url('ingest-gateway')}/v1/documents/{mallards['document_id']}", json={"tags": ["geese"]}
    )
    assert patched.status_code == 200, patched.text

    async def geese_tagged_answer() -> dict[str, Any]:
        return await ask(stack, client, collection, tags=["geese"])

    retagged = await eventually(
        geese_tagged_answer, until=lambda a: "mallards.md" in cited(a), within_s=30, interval_s=0.2
    )
    no_longer = await ask(stack, client, collection, tags=["ducks"])
    versions = await client.http.get(f"{stack.url('ingest-gateway')}/v1/documents/{mallards['document_id']}/versions")
    points = await client.points(mallards["document_id"])

    assert retagged["citations"][0]["file_name"] == "mallards.md"
    assert no_longer["citations"] == []
    assert [v["version"] for v in versions.json()["versions"]] == [1]  # not embedded again
    assert set(points) == {"1"}  # the same points, their payload updated
