"""A changed file becomes a new version; chat answers from the old one until the new one is in."""

from __future__ import annotations

from ragstream_devstack.e2e import Client
from ragstream_devstack.testing import new_id


async def test_new_version_replaces_the_old_one_in_answers(client: Client) -> None:
    collection = new_id("versions")
    first = await client.upload(
        collection, "meeting.md", b"# Meeting\nThe quarterly meeting is on Monday in room Aurora."
    )
    (v1,) = await client.wait_done([first.json()["job_id"]])
    before = await client.chat(collection, "When is the quarterly meeting?")

    second = await client.upload(
        collection, "meeting.md", b"# Meeting\nThe quarterly meeting moved to Friday in room Borealis."
    )
    (v2,) = await client.wait_done([second.json()["job_id"]])
    after = await client.chat(collection, "When is the quarterly meeting?")

    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    assert second.json()["document_id"] == first.json()["document_id"]
    assert (v1["status"], v2["status"]) == ("indexed", "indexed")
    assert [(c["version"], "Monday" in c["text"]) for c in before["citations"]] == [(1, True)]
    assert [(c["version"], "Friday" in c["text"]) for c in after["citations"]] == [(2, True)]
    assert await client.points(first.json()["document_id"]) == {"2": v2["counts"]["chunks"]}
