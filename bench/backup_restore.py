"""``make bench-backup``: how long a backup and a restore of a deployment take, part by part.

Starts a stack in a fresh directory, ingests every supported corpus file ``--copies`` times
(distinct bytes, ``corpus_copies``), asks one question, takes a backup while the stack runs,
stops it, starts NATS and PostgreSQL alone on a new, empty data directory, restores, starts the
services and asks the question again (the same citations, or the run fails). Prints a summary and
writes ``bench/results/backup_restore.json``: seconds per part, sizes, counts, and the ingest's
wall time (what rebuilding the index by re-embedding would cost instead of a snapshot, at least
its embedding share).

Run from the project root: ``.venv/bin/python bench/backup_restore.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_copies import distinct_copy, supported_files

from ragstream_core.settings import CoreSettings
from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_ops import backup, restore

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Where is IBM headquartered?"
ENV = {"RAGSTREAM_LOG_LEVEL": "WARNING"}


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def settings_of(stack: Stack) -> CoreSettings:
    assert stack.postgres
    return CoreSettings(data_dir=stack.data_dir, nats_url=stack.bus_url, postgres_url=stack.postgres.url)


def cited(answer: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(c["document_id"], c["chunk_index"], c["text"]) for c in answer["citations"]]


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ragstream-bench-backup-"))
    collection = f"bench-{uuid.uuid4().hex[:8]}"
    copies = [distinct_copy(f, n) for n in range(1, args.copies + 1) for f in supported_files(args.corpus)]
    results: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "documents": len(copies)}
    first = Stack(data_dir=work / "data-1", log_dir=work / "logs", env=dict(ENV)).start()
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            client = Client(first, http)
            started = time.perf_counter()
            jobs = []
            for copy in copies:
                response = await client.upload(collection, copy.file_name, copy.data)
                response.raise_for_status()
                jobs.append(response.json()["job_id"])
            done = await client.wait_done(jobs, within_s=1800)
            results["ingest_seconds"] = round(time.perf_counter() - started, 1)
            results["failed_jobs"] = sum(1 for j in done if j["status"] != "indexed")
            before = await client.chat(collection, QUESTION)
        say(f"ingested {len(copies)} documents in {results['ingest_seconds']} s; backing up")
        started = time.perf_counter()
        manifest = await backup(work / "backup", settings_of(first))
        results["backup_seconds"] = round(time.perf_counter() - started, 2)
    finally:
        first.stop()
    second = Stack(data_dir=work / "data-2", log_dir=work / "logs", env=dict(ENV))
    try:
        second.start_servers()
        started = time.perf_counter()
        restored = await restore(work / "backup", settings_of(second))
        results["restore_seconds"] = round(time.perf_counter() - started, 2)
        second.start_services()
        async with httpx.AsyncClient(timeout=120) as http:
            after = await Client(second, http).chat(collection, QUESTION)
    finally:
        second.stop()
    if cited(after) != cited(before):
        raise SystemExit(f"the restored deployment cites other passages: {cited(after)} != {cited(before)}")
    results["parts"] = {
        name: {k: v for k, v in part.items() if k not in ("files", "tables", "streams")}
        | {"restore_seconds": restored.restore_seconds.get(name)}
        for name, part in manifest.parts.items()
    }
    results["parts"]["streams"]["messages"] = {
        n: s["messages"] for n, s in manifest.parts["streams"]["streams"].items()
    }
    results["parts"]["postgres"]["rows"] = manifest.parts["postgres"]["rows"]
    results["backup_disk_bytes"] = disk_bytes(work / "backup")
    if not args.keep_data:
        shutil.rmtree(work)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=2, help="distinct copies of each corpus file")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "backup_restore.json")
    parser.add_argument("--keep-data", action="store_true", help="keep the data, backup and logs directory")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    say(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
