"""Backup, wipe, restore: a fresh deployment restored from a backup answers as the old one did.

One stack ingests documents (one of them fails and is dead-lettered) and answers questions; a
backup is taken while it runs; the stack is stopped and a new one starts on an empty data dir
and an empty PostgreSQL; the backup is restored before its services start. Then: the same
answers with the same citations, the same jobs and documents, and a new upload is processed
once, with no old event processed again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from ragstream_core.events import EVENTS_STREAM, TYPE_OF_SUBJECT
from ragstream_core.settings import CoreSettings
from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id
from ragstream_ops import Manifest, backup, restore
from ragstream_ops.backup import ServicesRunning
from ragstream_ops.manifest import DeploymentNotEmpty

# distinct contents (duck.md and word_sample.docx hold the same text: their tied scores may come
# back in either order, on any restart)
DOCUMENTS = ("md/duck.md", "md/mixed.md", "md/wiki.md", "docx/lorem_ipsum.docx")
QUESTIONS = (
    "What should you remember to wear when swimming in the lake in summer?",
    "What is Scrooge McDuck called in German?",
    "Where is IBM headquartered?",
)


def settings_of(stack: Stack) -> CoreSettings:
    assert stack.postgres
    return CoreSettings(data_dir=stack.data_dir, nats_url=stack.bus_url, postgres_url=stack.postgres.url)


def ragstream_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``ragstream`` command with the settings of ``stack``'s servers."""
    settings = settings_of(stack)
    env = {
        **os.environ,
        "RAGSTREAM_DATA_DIR": str(settings.data_dir),
        "RAGSTREAM_NATS_URL": settings.nats_url,
        "RAGSTREAM_POSTGRES_URL": settings.postgres_url,
    }
    command = [str(Path(sys.executable).parent / "ragstream"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def cited(answer: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    return [(c["document_id"], c["version"], c["chunk_index"], c["text"]) for c in answer["citations"]]


async def jobs_of(client: Client, collection: str) -> list[dict[str, Any]]:
    response = await client.http.get(
        f"{client.stack.url('progress')}/v1/jobs", params={"collection_id": collection, "limit": 100}
    )
    response.raise_for_status()
    return sorted(response.json()["jobs"], key=lambda j: str(j["job_id"]))


async def documents_of(client: Client, collection: str) -> list[dict[str, Any]]:
    response = await client.http.get(f"{client.stack.url('ingest-gateway')}/v1/collections/{collection}/documents")
    response.raise_for_status()
    body = response.json()
    return sorted(body["documents"] if isinstance(body, dict) else body, key=lambda d: str(d["document_id"]))


async def dead_letters(client: Client) -> list[dict[str, Any]]:
    response = await client.http.get(f"{client.stack.url('ingest-gateway')}/v1/dead-letters")
    response.raise_for_status()
    # a restored message is stored anew: its time is the restore's (README: Backup and restore)
    return [{k: v for k, v in d.items() if k != "dead_lettered_at"} for d in response.json()["dead_letters"]]


async def job_ids_after(nats_url: str, sequence: int) -> set[str]:
    """The job of every event stored after ``sequence``."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        jobs = set()
        for seq in range(sequence + 1, last + 1):
            msg = await js.get_msg(EVENTS_STREAM, seq)
            event = TYPE_OF_SUBJECT[msg.subject].FromString(msg.data)
            jobs.add(event.meta.job_id)  # type: ignore[attr-defined]
        return jobs
    finally:
        await nc.close()


async def test_backup_wipe_restore_gives_the_same_answers(
    tmp_path: Path, corpus: Path, unstarted_stack: Callable[[Path, Path], Stack]
) -> None:
    collection = new_id("backup")
    log_dir = tmp_path / "logs"
    first = unstarted_stack(tmp_path / "data-1", log_dir).start()
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            client = Client(first, http)
            uploads = [await client.upload(collection, Path(d).name, (corpus / d).read_bytes()) for d in DOCUMENTS]
            broken = await client.upload(collection, "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n garbage")
            ids = [u.json()["job_id"] for u in [*uploads, broken]]
            done = await client.wait_done(ids)
            assert [j["status"] for j in done] == ["indexed"] * len(DOCUMENTS) + ["failed"]
            answers = [await client.chat(collection, q) for q in QUESTIONS]
            jobs = await jobs_of(client, collection)
            documents = await documents_of(client, collection)
            dead = await dead_letters(client)
        started = time.perf_counter()
        manifest = await backup(tmp_path / "backup", settings_of(first))
        backup_s = time.perf_counter() - started
        by_cli = ragstream_cli(first, "backup", str(tmp_path / "backup-cli"), "--skip-index", "--json")
        assert by_cli.returncode == 0, by_cli.stderr
        summary = json.loads(by_cli.stdout)
        assert summary["parts"]["index"]["skipped"] is True
        assert summary["parts"]["postgres"]["seconds"] >= 0
        objects = Manifest.read(tmp_path / "backup-cli").parts["objects"]
        assert (objects["objects"], objects["bytes"]) == (
            manifest.parts["objects"]["objects"],
            manifest.parts["objects"]["bytes"],
        )
        again = ragstream_cli(first, "backup", str(tmp_path / "backup-cli"))
        assert again.returncode == 1, "a backup never writes into a directory that holds files"
    finally:
        first.stop()

    assert all(a["citations"] for a in answers), "every question must be answered with citations before the backup"
    assert manifest.parts["streams"]["streams"]["RAGSTREAM_DLQ"]["messages"] >= 1
    assert manifest.parts["index"]["taken_by"] == "embedder"
    assert manifest.parts["index"]["points"] > 0
    assert manifest.parts["objects"]["objects"] >= len(DOCUMENTS) * 2  # uploads and their chunks
    assert manifest.parts["postgres"]["tables"]["progress.jobs"] >= len(ids)
    assert Manifest.read(tmp_path / "backup").parts == manifest.parts

    # the wipe: a new data dir (empty NATS store, index and objects) and a new, empty PostgreSQL
    second = unstarted_stack(tmp_path / "data-2", log_dir)
    try:
        second.start_servers()
        started = time.perf_counter()
        restored = await restore(tmp_path / "backup", settings_of(second))
        restore_s = time.perf_counter() - started
        with pytest.raises(DeploymentNotEmpty, match="already holds data"):
            await restore(tmp_path / "backup", settings_of(second))
        # the same refusals through the command line, with its exit codes (1 refused, 2 unusable backup)
        refused = ragstream_cli(second, "restore", str(tmp_path / "backup"), "--json")
        assert refused.returncode == 1, refused.stderr
        assert "already holds data" in json.loads(refused.stdout)["detail"]
        missing = ragstream_cli(second, "restore", str(tmp_path / "no-such-backup"))
        assert missing.returncode == 2
        assert "does not exist" in missing.stderr
        events_restored = manifest.parts["streams"]["streams"][EVENTS_STREAM]["last_seq"]
        second.start_services()
        with pytest.raises(ServicesRunning, match="stop the five services"):
            await restore(tmp_path / "backup", settings_of(second), force=True)
        async with httpx.AsyncClient(timeout=60) as http:
            client = Client(second, http)
            answers_after = [await client.chat(collection, q) for q in QUESTIONS]
            jobs_after = await jobs_of(client, collection)
            documents_after = await documents_of(client, collection)
            dead_after = await dead_letters(client)
            same = await client.upload(collection, "wiki.md", (corpus / "md" / "wiki.md").read_bytes())
            new = await client.upload(collection, "wiki_duck.html", (corpus / "html" / "wiki_duck.html").read_bytes())
            (new_job,) = await client.wait_done([new.json()["job_id"]])
            jobs_final = await jobs_of(client, collection)
            later_jobs = await job_ids_after(second.bus_url, events_restored)
    finally:
        second.stop()

    print(  # noqa: T201 - the figures the README quotes
        f"\nbackup {backup_s:.2f} s, restore {restore_s:.2f} s; parts (backup):"
        f" { {p: v.get('seconds') for p, v in manifest.parts.items()} }, (restore): {restored.restore_seconds}"
    )
    for before, after in zip(answers, answers_after, strict=True):
        assert after["answer"] == before["answer"]
        assert cited(after) == cited(before)
    assert jobs_after == jobs
    assert documents_after == documents
    assert dead_after == dead
    assert broken.json()["job_id"] in {d.get("job_id") for d in dead}
    assert same.json()["unchanged"] is True
    assert new_job["status"] == "indexed"
    assert len(jobs_final) == len(jobs) + 1
    assert [j for j in jobs_final if j["job_id"] != new_job["job_id"]] == jobs  # old jobs untouched
    assert later_jobs == {new_job["job_id"]}, "events after the restore must be the new job's only (no replay)"
