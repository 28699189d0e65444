"""The document lifecycle on the real stack: version swap under load, delete, re-embed."""

from __future__ import annotations

import asyncio
from typing import Any

from ragstream_devstack.e2e import Client, long_markdown
from ragstream_devstack.testing import eventually, new_id


def gateway(client: Client, path: str) -> str:
    return f"{client.stack.url('ingest-gateway')}{path}"


def code_word_document(word: str, *, sections: int) -> bytes:
    """A document whose every section states the code word (many chunks, one answer)."""
    parts = ["# Launch plan\n"]
    for s in range(sections):
        parts.append(
            f"\n## Step {s}\n\nThe launch code word is {word}. Step {s} of the plan checks the code word {word} "
            "against the ledger before the team proceeds to the next step of the launch.\n"
        )
    return "".join(parts).encode()


async def test_versions_swap_atomically_under_continuous_querying(client: Client) -> None:
    collection = new_id("swap")
    first = await client.upload(collection, "plan.md", code_word_document("ALPHA", sections=4))
    await client.wait_done([first.json()["job_id"]])
    seen: list[set[tuple[int, bool, bool]]] = []
    done = asyncio.Event()

    async def ask_continuously() -> None:
        while not done.is_set():
            answer = await client.chat(collection, "What is the launch code word?", top_k=5)
            seen.append({(c["version"], "ALPHA" in c["text"], "BRAVO" in c["text"]) for c in answer["citations"]})

    asker = asyncio.create_task(ask_continuously())
    second = await client.upload(collection, "plan.md", code_word_document("BRAVO", sections=40))
    (job,) = await client.wait_done([second.json()["job_id"]])
    answered_by_then = len(seen)
    await eventually(lambda: asyncio.sleep(0, len(seen)), until=lambda n: n >= answered_by_then + 3, within_s=30)
    done.set()
    await asker

    assert job["status"] == "indexed"
    assert all(answer for answer in seen), "an answer cited nothing: the document vanished during the swap"
    versions = [{v for v, _, _ in answer} for answer in seen]
    assert all(len(v) == 1 for v in versions), f"an answer mixed versions: {versions}"
    order = [next(iter(v)) for v in versions]
    assert order == sorted(order), f"an answer went back to the old version: {order}"
    assert (order[0], order[-1]) == (1, 2)
    assert all((alpha, bravo) == (v == 1, v == 2) for answer in seen for v, alpha, bravo in answer)


async def job_reaching(client: Client, job_id: str, status: str) -> dict[str, Any]:
    return await eventually(lambda: client.job(job_id), until=lambda j: j["status"] == status, within_s=120)


async def gateway_knows_indexed(client: Client, document_id: str) -> None:
    """Wait until the gateway has seen the pipeline's index.updated (it follows events on its own)."""

    async def statuses() -> list[str]:
        response = await client.http.get(gateway(client, f"/v1/documents/{document_id}/versions"))
        return [v["status"] for v in response.json()["versions"]]

    await eventually(statuses, until=lambda found: "processing" not in found, within_s=30)


async def test_delete_while_embedding_cancels_the_job_and_leaves_nothing(client: Client) -> None:
    collection = new_id("delete")
    kept = await client.upload(collection, "kept.md", b"# Kept\n\nThe lighthouse keeper feeds the gulls at dawn.")
    await client.wait_done([kept.json()["job_id"]])
    doomed = await client.upload(collection, "doomed.md", long_markdown(4242, sections=40))
    job_id, document_id = doomed.json()["job_id"], doomed.json()["document_id"]
    await job_reaching(client, job_id, "embedding")

    refused = await client.http.delete(gateway(client, f"/v1/documents/{document_id}"))
    deleted = await client.http.delete(gateway(client, f"/v1/documents/{document_id}"), params={"cancel": "true"})

    assert refused.status_code == 409, refused.text
    assert deleted.status_code == 202, deleted.text
    delete_job = await job_reaching(client, deleted.json()["job_id"], "deleted")
    cancelled = await job_reaching(client, job_id, "cancelled")
    await asyncio.sleep(3)  # let the cancelled embedding finish whatever it was doing
    assert await client.points(document_id) == {}
    answer = await client.chat(collection, "Report 4242 river stone harbor signal")
    assert document_id not in {c["document_id"] for c in answer["citations"]}
    kept_answer = await client.chat(collection, "Who feeds the gulls at dawn?")
    assert [c["file_name"] for c in kept_answer["citations"]][:1] == ["kept.md"]
    assert cancelled["error"]["reason"].startswith("cancelled")
    assert delete_job["percent"] == 100


async def test_a_deleted_document_is_never_cited_again(client: Client) -> None:
    collection = new_id("delete")
    body = (await client.upload(collection, "secret.md", b"# Secret\n\nThe vault combination is 31-47-12.")).json()
    await client.wait_done([body["job_id"]])
    await gateway_knows_indexed(client, body["document_id"])
    before = await client.chat(collection, "What is the vault combination?")

    deleted = await client.http.delete(gateway(client, f"/v1/documents/{body['document_id']}"))
    await job_reaching(client, deleted.json()["job_id"], "deleted")
    after = await client.chat(collection, "What is the vault combination?")

    assert [c["document_id"] for c in before["citations"]] == [body["document_id"]]
    assert after["citations"] == []
    document = (await client.http.get(gateway(client, f"/v1/documents/{body['document_id']}"))).json()
    assert document["deleted_at"] is not None
    audit = (await client.http.get(gateway(client, "/v1/audit"), params={"document_id": body["document_id"]})).json()
    assert [e["action"] for e in audit["entries"]] == ["document.delete", "document.add"]


async def test_reembed_with_a_failure_in_the_middle_keeps_the_old_version_of_the_failed_one(client: Client) -> None:
    collection = new_id("reembed")
    facts = {
        "otters.md": b"# Otters\n\nSea otters hold hands while they sleep so they do not drift apart.",
        "bees.md": b"# Bees\n\nHoney bees dance in a figure eight to show where the flowers are.",
        "owls.md": b"# Owls\n\nBarn owls swallow their prey whole and cough up pellets later.",
    }
    uploads = {name: (await client.upload(collection, name, data)).json() for name, data in facts.items()}
    await client.wait_done([u["job_id"] for u in uploads.values()])
    for u in uploads.values():
        await gateway_knows_indexed(client, u["document_id"])
    # the failure: the stored bytes of one document are damaged before the re-embed reads them
    damaged = uploads["bees.md"]
    object_path = client.stack.data_dir / "objects" / "uploads" / "default" / damaged["sha256"]
    object_path.write_bytes(b"   \n\n   \n")  # nothing left to index: the parser fails the job

    response = await client.http.post(gateway(client, f"/v1/collections/{collection}/reembed"), json={})
    assert response.status_code == 202, response.text
    jobs = {j["file_name"]: j for j in response.json()["jobs"]}
    finished = await client.wait_done([j["job_id"] for j in jobs.values()])
    results = {name: job["status"] for name, job in zip(jobs, finished, strict=True)}

    assert results == {"otters.md": "indexed", "bees.md": "failed", "owls.md": "indexed"}
    versions = (await client.http.get(gateway(client, f"/v1/documents/{damaged['document_id']}/versions"))).json()
    assert [(v["version"], v["status"]) for v in versions["versions"]] == [(1, "indexed"), (2, "failed")]
    answer = await client.chat(collection, "How do honey bees show where the flowers are?")
    assert [(c["file_name"], c["version"]) for c in answer["citations"]][:1] == [("bees.md", 1)]
    otters = await client.chat(collection, "Why do sea otters hold hands?")
    assert [(c["file_name"], c["version"]) for c in otters["citations"]][:1] == [("otters.md", 2)]
