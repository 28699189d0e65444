"""The ``ragstream`` command line against the real stack, run as a person runs it: the installed
console script in a subprocess, reading its output and exit code."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstream_devstack.servers import free_port
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

RAGSTREAM = Path(sys.executable).parent / "ragstream"
THREE = ("md/duck.md", "docx/lorem_ipsum.docx", "csv/csv-comma.csv")
BROKEN_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n garbage"


def environment(stack: Stack | None, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGSTREAM_")}
    env.update(
        {
            "RAGSTREAM_CONFIG": str(tmp_path / "no-config.toml"),  # never the user's own file
            "COLUMNS": "250",  # tables wide enough to read whole rows
            "NO_COLOR": "1",
        }
    )
    if stack is not None:
        env["RAGSTREAM_URL"] = stack.url("ingest-gateway")
        env["RAGSTREAM_PROGRESS_URL"] = stack.url("progress")
        env["RAGSTREAM_CHAT_URL"] = stack.url("chat")
    env.update(extra)
    return env


def ragstream(stack: Stack | None, tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; its stdout, stderr and exit code."""
    assert RAGSTREAM.exists(), f"the ragstream console script is missing at {RAGSTREAM}: run `make install`"
    return subprocess.run(
        [str(RAGSTREAM), *args],
        env=environment(stack, tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


def row_of(output: str, file_name: str) -> str:
    """The summary table's line of one file."""
    lines = [line for line in output.splitlines() if f" {file_name} " in line]
    assert lines, f"no row for {file_name} in:\n{output}"
    return lines[-1]


@pytest.fixture(scope="module")
def ingested(stack: Stack, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A collection holding three corpus files, ingested by ``ragstream ingest --wait``; its id
    and the command's output."""
    collection = new_id("cli")
    tmp = tmp_path_factory.mktemp("cli")
    result = ragstream(stack, tmp, "ingest", *(str(corpus / f) for f in THREE), "-c", collection, "--wait")
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return collection, result.stdout


def documents(stack: Stack, tmp_path: Path, collection: str) -> dict[str, dict[str, Any]]:
    body = as_json(ragstream(stack, tmp_path, "docs", "list", "-c", collection, "--json"))
    return {d["file_name"]: d for d in body["documents"]}


def test_ingest_wait_indexes_three_files_and_ends_with_a_summary(ingested: tuple[str, str]) -> None:
    collection, output = ingested

    assert f"{collection}: 3 indexed" in output
    for path in THREE:
        row = row_of(output, Path(path).name)
        assert re.search(r" indexed\s+1\s+\d+\s+[\d.]+s ", row), row


def test_a_corrupt_pdf_fails_with_its_reason_and_exit_1_an_empty_file_is_refused(
    stack: Stack, corpus: Path, tmp_path: Path
) -> None:
    (tmp_path / "broken.pdf").write_bytes(BROKEN_PDF)
    (tmp_path / "empty.md").write_bytes(b"")
    collection = new_id("cli-bad")

    result = ragstream(
        stack, tmp_path, "ingest", str(tmp_path / "*.pdf"), str(tmp_path / "empty.md"), str(corpus / "md" / "wiki.md"),
        "-c", collection, "--wait", "--json",
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    files = {f["file"]: f for f in json.loads(result.stdout)["files"]}
    assert files["broken.pdf"]["status"] == "failed"
    assert files["broken.pdf"]["error"].startswith("parsing: ")
    assert "broken.pdf" in files["broken.pdf"]["error"]
    assert files["empty.md"]["status"] == "refused"
    assert "the uploaded file is empty" in files["empty.md"]["error"]
    assert files["wiki.md"]["status"] == "indexed"
    assert files["wiki.md"]["chunks"] > 0


def test_a_failure_shows_its_reason_in_the_summary_table(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(BROKEN_PDF)

    result = ragstream(stack, tmp_path, "ingest", str(tmp_path / "broken.pdf"), "-c", new_id("cli-bad"), "--wait")

    assert result.returncode == 1
    assert "broken.pdf: failed" in result.stdout  # the line printed when it was done
    assert re.search(r" failed\s+1\s+-\s+[\d.]+s\s+parsing: .*broken\.pdf", row_of(result.stdout, "broken.pdf"))


def stop_batch(stack: Stack, batch_id: str) -> None:
    """Cancel a batch's unfinished jobs and wait until each is final."""
    httpx.post(f"{stack.url('ingest-gateway')}/v1/batches/{batch_id}/jobs:cancel", timeout=30).raise_for_status()
    deadline = time.monotonic() + 120
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answer = httpx.get(f"{stack.url('progress')}/v1/jobs", params={"batch_id": batch_id}, timeout=30)
        jobs = answer.raise_for_status().json()["jobs"]
        if jobs and all(j["status"] in ("indexed", "failed", "cancelled") for j in jobs):
            return
        time.sleep(0.25)
    raise AssertionError(f"batch {batch_id} not finished after cancel: {[j['status'] for j in jobs]}")


def test_ctrl_c_during_ingest_wait_sums_up_so_far_and_exits_130(stack: Stack, corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(BROKEN_PDF)
    command = [str(RAGSTREAM), "ingest", str(tmp_path / "broken.pdf"), str(corpus / "pdf" / "normal_4pages.pdf")]
    ingest = subprocess.Popen(
        [*command, "-c", new_id("cli-int"), "--wait"],
        env=environment(stack, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert ingest.stdout is not None
    first = ingest.stdout.readline()  # the broken file is done long before the 88-chunk PDF
    ingest.send_signal(signal.SIGINT)
    out, _ = ingest.communicate(timeout=60)

    batch_id = re.search(r"--batch (cli-\w+)", out)
    if batch_id:  # the PDF's job goes on; cancel it so that it does not load the tests after this one
        stop_batch(stack, batch_id.group(1))

    assert first.startswith("broken.pdf: failed")
    assert ingest.returncode == 130
    assert "interrupted: uploaded files go on; follow them with `ragstream jobs --batch cli-" in out
    assert " failed " in row_of(out, "broken.pdf")


def test_docs_list_show_and_versions_answer_json(stack: Stack, ingested: tuple[str, str], tmp_path: Path) -> None:
    collection, _ = ingested

    listed = documents(stack, tmp_path, collection)
    duck = listed["duck.md"]
    shown = as_json(ragstream(stack, tmp_path, "docs", "show", duck["document_id"], "--json"))
    versions = as_json(ragstream(stack, tmp_path, "docs", "versions", duck["document_id"], "--json"))

    assert sorted(listed) == sorted(Path(f).name for f in THREE)
    assert all(d["status"] == "indexed" and d["chunk_count"] > 0 for d in listed.values())
    assert shown["file_name"] == "duck.md"
    assert shown["collection_id"] == collection
    assert [v["version"] for v in versions["versions"]] == [1]
    assert versions["versions"][0]["sha256"] == duck["sha256"]


def test_docs_show_prints_the_versions_table_and_an_unknown_document_exits_1(
    stack: Stack, ingested: tuple[str, str], tmp_path: Path
) -> None:
    collection, _ = ingested
    duck = documents(stack, tmp_path, collection)["duck.md"]

    shown = ragstream(stack, tmp_path, "docs", "show", duck["document_id"])
    unknown = ragstream(stack, tmp_path, "docs", "show", "no-such-document")

    assert shown.returncode == 0
    assert "duck.md" in shown.stdout
    assert re.search(r" 1\s+v1\s+indexed ", shown.stdout), shown.stdout
    assert unknown.returncode == 1
    assert "document 'no-such-document' does not exist (HTTP 404 NotFound)" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_ask_streams_an_answer_citing_the_right_document(
    stack: Stack, ingested: tuple[str, str], tmp_path: Path
) -> None:
    collection, _ = ingested

    question = "What should I wear when swimming in the lake?"

    text = ragstream(stack, tmp_path, "ask", collection, question)
    answer = as_json(ragstream(stack, tmp_path, "ask", collection, question, "--json"))

    assert text.returncode == 0, text.stderr
    assert answer["citations"][0]["file_name"] == "duck.md"
    assert "swimming" in answer["answer"].lower()
    assert text.stdout.startswith(answer["answer"]), "the streamed text is the answer"
    assert re.search(r" \[1\]\*\s+duck\.md ", text.stdout), text.stdout


def test_delete_wait_removes_the_document(stack: Stack, corpus: Path, tmp_path: Path) -> None:
    collection = new_id("cli-del")
    ragstream(stack, tmp_path, "ingest", str(corpus / "md" / "mixed.md"), "-c", collection, "--wait")
    document_id = documents(stack, tmp_path, collection)["mixed.md"]["document_id"]

    deleted = as_json(ragstream(stack, tmp_path, "docs", "delete", document_id, "--wait", "--json"))
    again = ragstream(stack, tmp_path, "docs", "delete", document_id)

    assert deleted["documents"][0]["status"] == "deleted"
    assert documents(stack, tmp_path, collection) == {}
    assert again.returncode == 1
    assert "refused" in again.stdout


def test_reembed_wait_indexes_a_new_version(stack: Stack, corpus: Path, tmp_path: Path) -> None:
    collection = new_id("cli-re")
    ragstream(stack, tmp_path, "ingest", str(corpus / "md" / "mixed.md"), "-c", collection, "--wait")
    document_id = documents(stack, tmp_path, collection)["mixed.md"]["document_id"]

    reembedded = as_json(ragstream(stack, tmp_path, "docs", "reembed", document_id, "--wait", "--json"))
    # --wait follows the progress service; the gateway's registry learns the same events through its
    # own consumer, a moment later under load: the swap must be there within seconds, not at once
    deadline = time.monotonic() + 30
    while True:
        versions = as_json(ragstream(stack, tmp_path, "docs", "versions", document_id, "--json"))
        states = [(v["version"], v["status"]) for v in versions["versions"]]
        if states == [(1, "superseded"), (2, "indexed")] or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    assert reembedded["documents"][0]["status"] == "indexed"
    assert reembedded["documents"][0]["version"] == 2
    assert states == [(1, "superseded"), (2, "indexed")]


def test_jobs_lists_the_collections_jobs_and_live_follows_them(
    stack: Stack, ingested: tuple[str, str], tmp_path: Path
) -> None:
    collection, _ = ingested

    listed = as_json(ragstream(stack, tmp_path, "jobs", "-c", collection, "--json"))
    table = ragstream(stack, tmp_path, "jobs", "-c", collection, "--status", "indexed")
    live = subprocess.Popen(
        [str(RAGSTREAM), "jobs", "--live", "--json", "-c", collection],
        env=environment(stack, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None
        first = json.loads(live.stdout.readline())
    finally:
        live.send_signal(signal.SIGINT)
        live.wait(timeout=30)

    assert sorted(j["file_name"] for j in listed["jobs"]) == sorted(Path(f).name for f in THREE)
    assert table.returncode == 0
    assert all(job["job_id"] in table.stdout for job in listed["jobs"]), table.stdout
    assert table.stdout.count(" indexed ") == 3, table.stdout
    assert first["collection_id"] == collection
    assert first["status"] == "indexed"
    assert live.returncode == 0, "Ctrl-C ends a live view normally"


def test_dlq_lists_a_dead_letter_and_replays_it(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "poison.pdf").write_bytes(BROKEN_PDF)
    collection = new_id("cli-dlq")
    failed = json.loads(
        ragstream(stack, tmp_path, "ingest", str(tmp_path / "poison.pdf"), "-c", collection, "--wait", "--json").stdout
    )
    job_id = failed["files"][0]["job_id"]

    letters = as_json(ragstream(stack, tmp_path, "dlq", "list", "--stage", "parsing", "--json"))["dead_letters"]
    (letter,) = [d for d in letters if d["job_id"] == job_id]
    table = ragstream(stack, tmp_path, "dlq", "list")
    replayed = as_json(ragstream(stack, tmp_path, "dlq", "replay", str(letter["sequence"]), "--json"))

    assert letter["file_name"] == "poison.pdf"
    assert "poison.pdf" in table.stdout
    assert replayed["replays"][0]["status"] == "replayed"
    assert replayed["replays"][0]["job_id"] == job_id


def test_collections_create_list_show_and_delete(stack: Stack, corpus: Path, tmp_path: Path) -> None:
    collection = new_id("cli-col")

    created = as_json(ragstream(stack, tmp_path, "collections", "create", collection, "--chunking", "tokens", "--json"))
    twice = ragstream(stack, tmp_path, "collections", "create", collection)
    listed = as_json(ragstream(stack, tmp_path, "collections", "list", "--json"))
    ragstream(stack, tmp_path, "ingest", str(corpus / "md" / "duck.md"), "-c", collection, "--wait")
    shown = as_json(ragstream(stack, tmp_path, "collections", "show", collection, "--json"))
    refused = ragstream(stack, tmp_path, "collections", "delete", collection)
    deleted = ragstream(stack, tmp_path, "collections", "delete", collection, "--cascade")

    assert created["chunking"] == "tokens"
    assert twice.returncode == 1
    assert f"collection '{collection}' already exists (HTTP 409 Conflict)" in twice.stderr
    assert collection in [c["collection_id"] for c in listed["collections"]]
    assert shown["document_count"] == 1
    assert shown["progress"]["counts"]["done"] == 1
    assert refused.returncode == 1
    assert "has 1 documents" in refused.stderr
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted collection {collection}" in deleted.stdout


def test_verify_reports_a_consistent_system(stack: Stack, ingested: tuple[str, str], tmp_path: Path) -> None:
    collection, _ = ingested

    report = as_json(ragstream(stack, tmp_path, "verify", "--collection", collection, "--json"))
    text = ragstream(stack, tmp_path, "verify", "--collection", collection)
    repaired = as_json(ragstream(stack, tmp_path, "verify", "--repair", "--collection", collection, "--json"))

    assert report["consistent"] is True
    assert report["checked"]["documents"] == 3
    assert report["problems"] == []
    assert text.returncode == 0
    assert "consistent" in text.stdout
    assert repaired["consistent"] is True, "nothing to repair on a healthy collection"
    assert repaired["repaired"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "/nonexistent/*.pdf", "-c", "c1"], "no file matches '/nonexistent/*.pdf'"),
        (["ingest", "x.md", "-c", "c1", "--priority", "urgent"], "'urgent' is not one of 'high', 'normal', 'low'"),
        (["ingest", "x.md"], "Missing option '--collection'"),
        (["docs", "frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    result = ragstream(None, tmp_path, *args)

    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_server_exits_3_naming_it_and_the_setting(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = ragstream(None, tmp_path, "docs", "list", "-c", "c1", RAGSTREAM_URL=url)

    assert result.returncode == 3
    assert f"cannot reach the gateway at {url}" in result.stderr
    assert "RAGSTREAM_URL" in result.stderr
    assert "Traceback" not in result.stderr
