"""``make eval``: retrieval quality over the shared corpus, dense-only, sparse-only and hybrid.

Starts the stack (embedded NATS, PostgreSQL and the five services) in a fresh directory,
uploads every supported file of ``../shared/corpus`` once into one collection, waits until
every job is indexed or failed, then asks each question of ``bench/eval/questions.jsonl``:

- of the embedder's search (NATS request/reply, as chat asks it) in each mode, with adjacent
  chunks merged into passages, and scores the rank of the first passage from a right document
  (the question's ``document`` or, where the corpus holds the same content in another format,
  one of its ``also``): hit@1, hit@5 and MRR (reciprocal rank within the first 10 passages);
- of chat (``POST /v1/collections/{id}/chat``), and counts the answers whose citations
  include a right document.

A question's ``passage`` is the text that answers it, for a reader checking the set; it is not
scored (parsers render tables and lists differently from the source). Prints a table and writes
``bench/results/eval.json``.

Run from the project root: ``.venv/bin/python bench/eval_retrieval.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_copies import supported_files
from ingest_bench import BenchError, say, watch_jobs

from ragstream_core.bus import Bus
from ragstream_core.events import SEARCH_SUBJECT
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchMode, SearchRequest, SearchResponse
from ragstream_devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
TENANT = "default"
COLLECTION = "eval"
MODES = {
    "dense": SearchMode.SEARCH_MODE_DENSE,
    "sparse": SearchMode.SEARCH_MODE_SPARSE,
    "hybrid": SearchMode.SEARCH_MODE_HYBRID,
}
DEPTH = 10  # passages read per question for MRR


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # "lookup" (worded like the passage) or "paraphrase" (worded unlike it)
    question: str
    document: str  # corpus path: folder/file
    also: tuple[str, ...]  # the same content in other formats
    passage: str

    @property
    def right_names(self) -> frozenset[str]:
        return frozenset(Path(p).name for p in (self.document, *self.also))


@dataclass
class Scores:
    ranks: list[int] = field(default_factory=list)  # 0: no right passage in the first DEPTH

    def add(self, rank: int) -> None:
        self.ranks.append(rank)

    def hit_at(self, k: int) -> float:
        return sum(1 for r in self.ranks if 0 < r <= k) / len(self.ranks)

    @property
    def mrr(self) -> float:
        return sum(1 / r for r in self.ranks if r) / len(self.ranks)


def load_questions(path: Path, corpus: Path) -> list[Question]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        question = Question(
            row["id"], row["kind"], row["question"], row["document"], tuple(row.get("also", ())), row["passage"]
        )
        for document in (question.document, *question.also):
            if not (corpus / document).is_file():
                raise BenchError(f"{path}:{number}: {document!r} is not a file of the corpus {corpus}")
        questions.append(question)
    return questions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus", help="the shared corpus")
    parser.add_argument("--questions", type=Path, default=ROOT / "bench" / "eval" / "questions.jsonl")
    parser.add_argument("--top-k", type=int, default=DEPTH, help="chunks asked of the search per question")
    parser.add_argument("--stall-s", type=float, default=180.0, help="give up when no job changes for this long")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "eval.json")
    parser.add_argument("--keep-data", action="store_true", help="keep the stack's data and logs directory")
    return parser.parse_args(argv)


async def ingest(stack: Stack, corpus: Path, *, stall_s: float) -> dict[str, dict[str, Any]]:
    """Upload every supported corpus file once; returns each file's final job, by file name."""
    gateway, progress = stack.url("ingest-gateway"), stack.url("progress")
    files = supported_files(corpus)
    jobs: dict[str, str] = {}
    async with httpx.AsyncClient() as client:
        started = time.time()
        for corpus_file in files:
            upload = {"file": (corpus_file.path.name, corpus_file.path.read_bytes(), "application/octet-stream")}
            response = await client.post(f"{gateway}/v1/collections/{COLLECTION}/documents", files=upload, timeout=120)
            if response.status_code != 202:
                raise BenchError(f"upload of {corpus_file.path} answered {response.status_code}: {response.text[:300]}")
            jobs[corpus_file.path.name] = response.json()["job_id"]
        await watch_jobs(client, stack, COLLECTION, len(files), stall_s=stall_s, started=started)
        finished = {}
        for name, job_id in jobs.items():
            response = await client.get(f"{progress}/v1/jobs/{job_id}", timeout=30)
            response.raise_for_status()
            finished[name] = response.json()
    return finished


def rank_of(hits: list[Any], right: frozenset[str]) -> int:
    for rank, hit in enumerate(hits[:DEPTH], start=1):
        if hit.file_name in right:
            return rank
    return 0


async def evaluate(stack: Stack, questions: list[Question], *, top_k: int) -> dict[str, Any]:
    bus = await Bus.connect(stack.bus_url, service="eval")
    scores = {mode: Scores() for mode in MODES}
    by_kind = {(mode, q.kind): Scores() for mode in MODES for q in questions}
    per_question: list[dict[str, Any]] = []
    search_ms: dict[str, list[float]] = {mode: [] for mode in MODES}
    cited_right = 0
    try:
        async with httpx.AsyncClient() as client:
            for question in questions:
                row: dict[str, Any] = {"id": question.id, "kind": question.kind, "document": question.document}
                for mode, value in MODES.items():
                    request = SearchRequest(
                        tenant_id=TENANT, collection_id=COLLECTION, query=question.question, top_k=top_k, mode=value
                    )
                    started = time.perf_counter()
                    response = await bus.request(SEARCH_SUBJECT, request, SearchResponse, timeout_s=60)
                    search_ms[mode].append((time.perf_counter() - started) * 1000)
                    if response.error:
                        raise BenchError(f"search of {question.id} ({mode}) failed: {response.error}")
                    rank = rank_of(list(response.hits), question.right_names)
                    scores[mode].add(rank)
                    by_kind[mode, question.kind].add(rank)
                    row[mode] = rank
                answer = await client.post(
                    f"{stack.url('chat')}/v1/collections/{COLLECTION}/chat",
                    json={"question": question.question},
                    headers={"X-Tenant-Id": TENANT},
                    timeout=60,
                )
                answer.raise_for_status()
                cited = {c.get("file_name") for c in answer.json().get("citations", [])}
                row["chat_cites_right_document"] = bool(cited & question.right_names)
                cited_right += row["chat_cites_right_document"]
                per_question.append(row)
    finally:
        await bus.stop()
    return {
        "modes": {
            mode: {
                "hit@1": round(s.hit_at(1), 3),
                "hit@5": round(s.hit_at(5), 3),
                "mrr": round(s.mrr, 3),
                "search_ms_median": round(sorted(search_ms[mode])[len(search_ms[mode]) // 2], 1),
            }
            for mode, s in scores.items()
        },
        "by_kind": {
            f"{mode}/{kind}": {"questions": len(s.ranks), "hit@1": round(s.hit_at(1), 3), "mrr": round(s.mrr, 3)}
            for (mode, kind), s in sorted(by_kind.items(), key=lambda item: (item[0][1], item[0][0]))
        },
        "chat_citations_include_right_document": round(cited_right / len(questions), 3),
        "questions": per_question,
    }


def render(results: dict[str, Any]) -> str:
    lines = [
        f"{results['questions_count']} questions over {results['documents_indexed']} indexed documents "
        f"({results['documents_failed']} failed), {results['date']}",
        "",
        "| retrieval | hit@1 | hit@5 | MRR@10 | median search ms |",
        "|---|---|---|---|---|",
    ]
    for mode, m in results["modes"].items():
        lines.append(f"| {mode} | {m['hit@1']:.3f} | {m['hit@5']:.3f} | {m['mrr']:.3f} | {m['search_ms_median']} |")
    lines += ["", "| retrieval / questions | n | hit@1 | MRR@10 |", "|---|---|---|---|"]
    for key, m in results["by_kind"].items():
        lines.append(f"| {key} | {m['questions']} | {m['hit@1']:.3f} | {m['mrr']:.3f} |")
    lines.append("")
    share = results["chat_citations_include_right_document"]
    lines.append(f"chat answers whose citations include the right document: {share:.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    questions = load_questions(args.questions, args.corpus)
    formats = {Path(q.document).parts[0] for q in questions}
    missing = {f.format for f in supported_files(args.corpus)} - formats
    if missing:
        raise BenchError(f"no question about the formats {sorted(missing)}: every format needs one")
    work = Path(tempfile.mkdtemp(prefix="ragstream-eval-"))
    stack = Stack(data_dir=work / "data", log_dir=work / "logs", env={"RAGSTREAM_LOG_LEVEL": "WARNING"})
    say(f"eval: {len(questions)} questions, stack in {work}")
    try:
        stack.start()
        jobs = asyncio.run(ingest(stack, args.corpus, stall_s=args.stall_s))
        failed = {name: job.get("error") for name, job in jobs.items() if job["status"] != "indexed"}
        for name, error in failed.items():
            say(f"  not indexed: {name}: {error}")
        results = asyncio.run(evaluate(stack, questions, top_k=args.top_k))
    finally:
        stack.stop()
        if not args.keep_data:
            shutil.rmtree(work, ignore_errors=True)
    results.update(
        date=datetime.now(UTC).date().isoformat(),
        questions_count=len(questions),
        documents_indexed=len(jobs) - len(failed),
        documents_failed=len(failed),
        failed=failed,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    say(render(results))
    say(f"written to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except BenchError as error:
        say(f"eval failed: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
