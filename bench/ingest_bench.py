"""``make bench``: ingestion throughput of the whole pipeline against the embedding model alone.

Starts the stack (embedded NATS, PostgreSQL and the five services) in a fresh directory,
uploads distinct copies of every supported file of the shared corpus (at least 200
documents), waits until every job is indexed or failed, then measures upload-to-answerable
latency of small documents on the now idle system. After the stack is stopped, the same
model the embedder uses embeds the same chunk texts in this process, in batches of the same
size, for the ceiling the pipeline is compared with. Prints a summary and writes
``bench/results/latest.json``; ``bench/README.md`` explains every figure.

Run from the project root: ``.venv/bin/python bench/ingest_bench.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_probes import corpus_questions, measure_concurrency, measure_first_token, measure_freshness
from collections_bulk import measure_bulk_collections
from corpus_copies import Copy, distinct_copy, skipped_files, supported_files
from latency_probes import measure_latency
from model_alone import BASELINES, time_model_alone
from process_cpu import cpu_seconds, cpu_spent, stack_roots
from report import FinishedJob, build_results, render_summary
from steering_probes import FeedLatency, SteeringError, measure_embedder_kill, measure_pause_resume

from ragstream_core.events import chunks_key
from ragstream_devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
TENANT = "default"
TERMINAL = frozenset({"indexed", "failed"})
MAX_JOBS = 1000  # the progress list endpoint's page size, used to watch the run


class BenchError(RuntimeError):
    """The benchmark could not produce its figures; the message says what was seen."""


@dataclass
class Upload:
    copy: Copy
    job_id: str = ""
    document_id: str = ""
    version: int = 0
    job: dict[str, Any] = field(default_factory=dict)


@dataclass
class BulkRun:
    uploads: list[Upload]
    started_at: float  # wall clock, seconds since the epoch, just before the first upload
    uploads_done_at: float
    observed_done_at: float  # when this process saw the last job terminal
    cpu: dict[str, float]  # CPU seconds per part of the stack from the first upload until all ended
    feed: dict[str, Any]  # latency of the progress WebSocket feed during the run


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus", help="the shared corpus")
    parser.add_argument("--min-docs", type=int, default=200, help="documents to ingest, at least")
    parser.add_argument("--concurrency", type=int, default=4, help="uploads in flight")
    parser.add_argument("--probes", type=int, default=10, help="latency probes after the bulk run")
    parser.add_argument("--batch-size", type=int, default=32, help="model-alone batch (the embedder's batch_size)")
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help=f"model-alone groupings to time, the first is the headline (default {','.join(BASELINES)})",
    )
    parser.add_argument(
        "--steering-docs",
        type=int,
        default=150,
        help="documents of each steering probe (pause/resume, SIGKILL of the embedder); 0 skips them",
    )
    parser.add_argument("--stall-s", type=float, default=180.0, help="give up when no job changes for this long")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--keep-data", action="store_true", help="keep the stack's data and logs directory")
    args = parser.parse_args(argv)
    if not 1 <= args.min_docs <= MAX_JOBS:
        parser.error(f"--min-docs must be between 1 and {MAX_JOBS}, got {args.min_docs}")
    args.baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    if not args.baselines or not set(args.baselines) <= set(BASELINES):
        parser.error(f"--baselines takes some of {','.join(BASELINES)}, got {args.baselines}")
    return args


def plan_copies(corpus: Path, min_docs: int) -> tuple[list[Copy], int]:
    """Every supported file the same number of times, round by round, so the mix is steady."""
    files = supported_files(corpus)
    if not files:
        raise BenchError(f"no supported documents under {corpus}: is ../shared/corpus there?")
    copies_each = math.ceil(min_docs / len(files))
    return [distinct_copy(f, n) for n in range(1, copies_each + 1) for f in files], copies_each


async def upload_one(client: httpx.AsyncClient, gateway: str, collection: str, upload: Upload) -> None:
    files = {"file": (upload.copy.file_name, upload.copy.data, "application/octet-stream")}
    response = await client.post(f"{gateway}/v1/collections/{collection}/documents", files=files, timeout=120)
    if response.status_code != 202:
        raise BenchError(
            f"upload of {upload.copy.file_name} answered {response.status_code} (expected 202): {response.text[:300]}"
        )
    body = response.json()
    upload.job_id, upload.document_id, upload.version = body["job_id"], body["document_id"], int(body["version"])


def check_alive(stack: Stack) -> None:
    """Raise at once when a service has exited: its jobs would otherwise only show up as a stall."""
    for name, process in stack.processes.items():
        if process.poll() is not None:
            raise BenchError(f"service {name} exited with code {process.returncode} during the run; see its log")


async def watch_jobs(
    client: httpx.AsyncClient, stack: Stack, collection: str, expected: int, *, stall_s: float, started: float
) -> None:
    """Return once ``expected`` jobs of the collection are terminal; raise when nothing moves for ``stall_s``."""
    progress = stack.url("progress")
    last_change, last_seen, last_report = time.monotonic(), None, 0.0
    while True:
        check_alive(stack)
        response = await client.get(
            f"{progress}/v1/jobs", params={"collection_id": collection, "limit": MAX_JOBS}, timeout=30
        )
        response.raise_for_status()
        jobs = response.json()["jobs"]
        statuses = Counter(j["status"] for j in jobs)
        seen = (tuple(sorted(statuses.items())), sum(j["counts"]["chunks_embedded"] for j in jobs))
        now = time.monotonic()
        if seen != last_seen:
            last_seen, last_change = seen, now
        terminal = statuses["indexed"] + statuses["failed"]
        if now - last_report >= 10 or terminal >= expected:
            last_report = now
            say(
                f"  [{time.time() - started:6.1f}s] {statuses['indexed']}/{expected} indexed, "
                f"{statuses['failed']} failed, {seen[1]} chunks embedded, in progress: "
                + (", ".join(f"{s} {n}" for s, n in sorted(statuses.items()) if s not in TERMINAL) or "none")
            )
        if len(jobs) >= expected and terminal >= expected:
            return
        if now - last_change > stall_s:
            raise BenchError(
                f"no job changed for {stall_s:.0f}s: {dict(statuses)} of {expected} jobs; see the service logs"
            )
        await asyncio.sleep(1.0)


async def fetch_job(client: httpx.AsyncClient, progress: str, upload: Upload) -> None:
    response = await client.get(f"{progress}/v1/jobs/{upload.job_id}", timeout=30)
    response.raise_for_status()
    upload.job = response.json()


async def ingest(stack: Stack, copies: list[Copy], *, collection: str, concurrency: int, stall_s: float) -> BulkRun:
    """Upload every copy with ``concurrency`` uploads in flight and wait for every job to end."""
    gateway, progress = stack.url("ingest-gateway"), stack.url("progress")
    uploads = [Upload(c) for c in copies]
    limit = asyncio.Semaphore(concurrency)

    async def limited(upload: Upload) -> None:
        async with limit:
            await upload_one(client, gateway, collection, upload)

    roots = stack_roots(stack)
    async with httpx.AsyncClient() as client, FeedLatency(stack, collection) as feed:
        cpu_before = cpu_seconds(roots)
        started = time.time()
        watcher = asyncio.create_task(
            watch_jobs(client, stack, collection, len(uploads), stall_s=stall_s, started=started)
        )
        try:
            await asyncio.gather(*(limited(u) for u in uploads))
        except BaseException:
            watcher.cancel()
            raise
        uploads_done = time.time()
        say(f"  all {len(uploads)} uploads accepted after {uploads_done - started:.1f}s")
        await watcher
        observed_done = time.time()
        cpu = cpu_spent(cpu_before, cpu_seconds(roots))
        fetch_limit = asyncio.Semaphore(8)

        async def fetch(upload: Upload) -> None:
            async with fetch_limit:
                await fetch_job(client, progress, upload)

        await asyncio.gather(*(fetch(u) for u in uploads))
    return BulkRun(uploads, started, uploads_done, observed_done, cpu, feed.summary())


def chunk_texts(data_dir: Path, uploads: list[Upload]) -> dict[str, list[str]]:
    """The texts the embedder embedded, per job, read from the local object store."""
    texts: dict[str, list[str]] = {}
    for upload in uploads:
        if upload.job.get("status") != "indexed":
            continue
        path = data_dir / "objects" / chunks_key(TENANT, upload.document_id, upload.version)
        texts[upload.job_id] = [c["embed_text"] for c in json.loads(path.read_bytes())["chunks"]]
    return texts


def machine_info() -> dict[str, Any]:
    import platform
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
    }


def run(args: argparse.Namespace) -> int:
    machine = machine_info()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    copies, copies_each = plan_copies(args.corpus, args.min_docs)
    files = supported_files(args.corpus)
    skipped = skipped_files(args.corpus)
    say(f"ragstream bench, {date}, {machine['nproc']} cores, load average {machine['load_average_at_start']}")
    say(
        f"corpus {args.corpus}: {len(files)} supported files x {copies_each} distinct copies = {len(copies)} documents"
        f"; not parsed by this version, skipped: {', '.join(p.name for p in skipped) or 'none'}"
    )
    work = Path(tempfile.mkdtemp(prefix="ragstream-bench-"))
    stack = Stack(data_dir=work / "data", log_dir=work / "logs", env={"RAGSTREAM_LOG_LEVEL": "WARNING"})
    failed = True
    try:
        say(f"starting the stack under {work} ...")
        started = time.perf_counter()
        stack.start()
        say(f"  ready after {time.perf_counter() - started:.1f}s")
        say(f"ingesting {len(copies)} documents, {args.concurrency} uploads in flight ...")
        bulk = asyncio.run(
            ingest(stack, copies, collection="bench", concurrency=args.concurrency, stall_s=args.stall_s)
        )
        say(f"measuring upload-to-answerable latency with {args.probes} one-page documents on the idle system ...")
        latency = asyncio.run(measure_latency(stack, collection="bench", probes=args.probes))
        say("creating 1,000 collections in one request ...")
        collections = asyncio.run(measure_bulk_collections(stack, count=1000))
        steering: dict[str, Any] = {"feed_latency": bulk.feed}
        if args.steering_docs:
            batch = [(c.file_name, c.data) for c in copies[: args.steering_docs]]
            say(f"pausing and resuming a batch of {len(batch)} documents mid-run ...")
            steering["pause_resume"] = asyncio.run(measure_pause_resume(stack, batch, collection="bench-pause"))
            say(f"killing the embedder (SIGKILL) in a batch of {len(batch)} documents ...")
            steering["embedder_kill"] = asyncio.run(measure_embedder_kill(stack, batch, collection="bench-kill"))
        say("measuring chat: freshness after index.updated, time to first token, 20 concurrent clients ...")
        questions = corpus_questions(args.corpus, 3000)
        chat = {
            "freshness": asyncio.run(measure_freshness(stack, collection="bench", probes=args.probes)),
            "first_token": asyncio.run(measure_first_token(stack, collection="bench", questions=questions[:30])),
            "concurrency": asyncio.run(measure_concurrency(stack, collection="bench", questions=questions[30:])),
        }
    except (BenchError, SteeringError, TimeoutError, RuntimeError, httpx.HTTPError) as exc:
        say(f"bench FAILED: {type(exc).__name__}: {exc}")
        say(f"service logs kept in {work / 'logs'}")
        return 1
    finally:
        say("stopping the stack ...")
        stack.stop()
    try:
        texts = chunk_texts(stack.data_dir, bulk.uploads)
        documents = [texts[u.job_id] for u in bulk.uploads if u.job_id in texts]
        if not documents:
            raise BenchError("no job was indexed: there is nothing to compare with the model alone")
        say(
            f"embedding the same {sum(map(len, documents))} chunk texts with the model alone, "
            f"batches of {args.batch_size}, grouped: {', '.join(args.baselines)} ..."
        )
        model = time_model_alone(documents, batch_size=args.batch_size, baselines=args.baselines)
        tokens = iter(model["tokens"])
        jobs = [
            FinishedJob(
                format=u.copy.source.format,
                file_name=u.copy.file_name,
                job=u.job,
                tokens=[next(tokens) for _ in texts.get(u.job_id, [])],
            )
            for u in bulk.uploads
        ]
        results = build_results(
            date=date,
            machine=machine,
            config={
                "corpus": str(args.corpus),
                "min_docs": args.min_docs,
                "copies_each": copies_each,
                "upload_concurrency": args.concurrency,
                "batch_size": args.batch_size,
                "baselines": list(args.baselines),
                "supported_files": [f"{f.format}/{f.path.name}" for f in files],
                "skipped_files": [f"{p.parent.name}/{p.name}" for p in skipped],
            },
            jobs=jobs,
            started_at=bulk.started_at,
            uploads_done_at=bulk.uploads_done_at,
            observed_done_at=bulk.observed_done_at,
            stack_cpu=bulk.cpu,
            model=model,
            latency=latency,
            max_tokens=model["max_tokens"],
        )
        results["collections_bulk"] = collections
        results["steering"] = steering
        results["chat"] = chat
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        say()
        say(render_summary(results))
        say(f"\nwritten to {args.output}")
        failed = False
    finally:
        if args.keep_data or failed:
            say(f"data and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
