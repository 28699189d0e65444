"""Upload → parse → embed → index-updated → cited answer, over every supported corpus file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ragstream_devstack.e2e import SUPPORTED, Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

STATUS_ORDER = ["uploaded", "released", "parsing", "parsed", "embedding", "indexed"]


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.suffix.lower() in SUPPORTED)


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) >= 40]


def distinctive_sentence(chunk_text: str, others: str = "") -> str:
    """The longest sentence (40+ characters) of a chunk that no other document contains.

    A chunk without one (a table, a list of short items) is asked about by its opening text.
    """
    unique = sorted((s for s in sentences_of(chunk_text) if s not in others), key=len, reverse=True)
    return unique[0][:300] if unique else chunk_text[:300]


async def test_every_supported_corpus_file_is_indexed_and_answerable(
    client: Client, stack: Stack, corpus: Path
) -> None:
    collection = new_id("corpus")
    files = corpus_files(corpus)
    accepted = {}
    for path in files:
        response = await client.upload(collection, path.name, path.read_bytes())
        assert response.status_code == 202, (path.name, response.text)
        accepted[response.json()["job_id"]] = path

    jobs = await client.wait_done(list(accepted))

    failed = [(j["file_name"], j["error"]) for j in jobs if j["status"] != "indexed"]
    assert failed == []
    texts = {}
    for job in jobs:
        stored = stack.data_dir / "objects" / "chunks" / "default" / job["document_id"] / "v1.json"
        texts[job["document_id"]] = [c["text"] for c in json.loads(stored.read_text())["chunks"]]
    misses = []
    for job in jobs:
        assert job["percent"] == 100
        assert job["counts"]["chunks"] == job["counts"]["chunks_embedded"] > 0
        assert list(dict.fromkeys(h["status"] for h in job["history"] if h["status"] != "embedding")) == [
            "uploaded",
            "released",
            "parsing",
            "parsed",
            "indexed",
        ]
        assert {h["trace_id"] for h in job["history"]} == {job["trace_id"]}, "one upload, one trace"
        chunks = texts[job["document_id"]]
        others = "\n".join(t for d, ts in texts.items() if d != job["document_id"] for t in ts)
        question = distinctive_sentence(chunks[len(chunks) // 2], others)
        holders = {d for d, ts in texts.items() if any(question in t for t in ts)}
        answer = await client.chat(collection, question, top_k=10)
        if not holders & {c["document_id"] for c in answer["citations"]}:
            misses.append((job["file_name"], question))
    assert misses == []


async def test_job_moves_through_every_stage_with_counts_and_timestamps(client: Client, corpus: Path) -> None:
    collection = new_id("stages")
    upload = await client.upload(collection, "multi_page.pdf", (corpus / "pdf" / "multi_page.pdf").read_bytes())
    body = upload.json()

    (job,) = await client.wait_done([body["job_id"]])

    assert upload.status_code == 202
    assert job["status"] == "indexed"
    assert job["document_id"] == body["document_id"]
    assert job["counts"]["pages"] == 5
    statuses = [h["status"] for h in job["history"]]
    assert sorted(set(statuses), key=STATUS_ORDER.index) == STATUS_ORDER
    assert statuses == sorted(statuses, key=STATUS_ORDER.index)
    assert set(job["timestamps"]) == set(STATUS_ORDER)


async def test_answer_cites_file_heading_and_page(client: Client, stack: Stack, corpus: Path) -> None:
    collection = new_id("cite")
    wiki = await client.upload(collection, "wiki.md", (corpus / "md" / "wiki.md").read_bytes())
    pdf = await client.upload(collection, "multi_page.pdf", (corpus / "pdf" / "multi_page.pdf").read_bytes())
    await client.wait_done([wiki.json()["job_id"], pdf.json()["job_id"]])

    answer = await client.chat(collection, "In which year was IBM founded?")

    assert answer["mode"] == "extractive"
    top = answer["citations"][0]
    assert (top["file_name"], top["heading_path"][0]) == ("wiki.md", "IBM")
    assert "1911" in " ".join(c["text"] for c in answer["citations"])
    pdf_document = pdf.json()["document_id"]
    stored = stack.data_dir / "objects" / "chunks" / "default" / pdf_document / "v1.json"
    last = json.loads(stored.read_text())["chunks"][-1]
    pdf_answer = await client.chat(collection, distinctive_sentence(last["text"]))
    cited = [c for c in pdf_answer["citations"] if c["document_id"] == pdf_document]
    assert cited[0]["page"] == last["pages"][0] > 1


async def test_same_bytes_again_return_the_existing_version_without_a_job(client: Client, corpus: Path) -> None:
    collection = new_id("same")
    data = (corpus / "md" / "duck.md").read_bytes()
    first = await client.upload(collection, "duck.md", data)

    second = await client.upload(collection, "duck.md", data)

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["unchanged"] is True
    assert second.json()["job_id"] == first.json()["job_id"]


async def test_question_about_nothing_indexed_says_i_dont_know(client: Client) -> None:
    answer = await client.chat(new_id("empty"), "What is the airspeed of an unladen swallow?")

    assert answer["citations"] == []
    assert answer["answer"].startswith("I don't know")


async def test_uploads_on_one_keep_alive_connection_are_separate_traces(client: Client) -> None:
    collection = new_id("traces")
    big = ("# Big\n" + "plenty of words " * 20_000).encode()  # arrives in several reads
    first = await client.upload(collection, "big.md", big)
    second = await client.upload(collection, "small.md", b"# Small\nA short note about kites.")

    jobs = await client.wait_done([first.json()["job_id"], second.json()["job_id"]])

    assert jobs[0]["trace_id"] != jobs[1]["trace_id"]
