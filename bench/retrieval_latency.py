"""Retrieval latency of an embedded index engine at 100,000 chunks in one collection.

Builds, in this process, the index the embedder would hold (``--engine edge``, the default,
or ``qdrant-local``; on disk in a fresh directory, all chunks of one tenant's collection,
active): chunk texts are synthesised from the
shared corpus (runs of 40-120 consecutive words cut from its documents' text, so the keyword
side sees the corpus' real word distribution); dense vectors are random unit vectors (a
brute-force scan costs the same whatever the values, and embedding 100,000 chunks here would
take more than an hour). Queries are the eval questions, embedded by the real model. Times
``ChunkIndex.search`` (what the embedder's search request spends after embedding the query)
per mode, with the sparse IDF over the collection (the default) and over every point. On edge
it times three phases: right after the writes (no HNSW graph yet: exact search), while the
background optimizer builds the HNSW graph, and after it (the build time is reported). Prints
p50/p95 and writes ``bench/results/retrieval_latency[_<engine>].json``.

Run from the project root: ``.venv/bin/python bench/retrieval_latency.py [--help]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragstream_embedder.edge_index import EdgeIndex
from ragstream_embedder.index import MODES, ChunkIndex, ChunkPoint
from ragstream_embedder.model import DIMENSIONS, MiniLMEmbedder
from ragstream_embedder.qdrant_index import QdrantIndex

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".md", ".csv", ".vtt", ".eml", ".html"}
CHUNKS_PER_DOCUMENT = 100


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def corpus_words(corpus: Path) -> list[str]:
    """The words of the corpus' text formats (markup stripped), in document order."""
    words: list[str] = []
    for path in sorted(corpus.glob("*/*")):
        if path.suffix.lower() in TEXT_SUFFIXES:
            text = path.read_text(encoding="utf-8", errors="replace")
            if path.suffix.lower() == ".html":
                text = re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", text, flags=re.S)
            words += text.split()
    return words


def synthetic_chunks(words: list[str], count: int, rng: random.Random) -> list[str]:
    texts = []
    for _ in range(count):
        length = rng.randint(40, 120)
        start = rng.randrange(0, max(1, len(words) - length))
        texts.append(" ".join(words[start : start + length]))
    return texts


def build(path: Path, texts: list[str], *, engine: str) -> ChunkIndex:
    index: ChunkIndex
    if engine == "edge":
        # the background optimizer is started by hand below, to time the phases apart
        index = EdgeIndex(
            path=path, dimensions=DIMENSIONS, optimize_idle_s=1e9, build_min_points=1 << 62, build_tail_points=None
        )
    else:
        index = QdrantIndex(path=path, collection="bench", dimensions=DIMENSIONS)
    rng = np.random.default_rng(7)
    for start in range(0, len(texts), CHUNKS_PER_DOCUMENT):
        document_id = f"doc-{start // CHUNKS_PER_DOCUMENT}"
        batch = texts[start : start + CHUNKS_PER_DOCUMENT]
        points = [
            ChunkPoint("t", "c", document_id, 1, i, text, f"{document_id}.md", "text/markdown")
            for i, text in enumerate(batch)
        ]
        vectors = rng.normal(size=(len(batch), DIMENSIONS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index.upsert(points, vectors)
        index.activate("t", document_id, 1, len(batch))
    return index


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_modes(
    index: ChunkIndex,
    questions: list[str],
    vectors: NDArray[np.float32],
    *,
    top_k: int,
    phase: str,
    until: Callable[[], bool] | None = None,
    scopes: tuple[bool, ...] = (True, False),
) -> dict[str, dict[str, float]]:
    """p50/p95 ms per mode and IDF scope over the questions.

    One untimed round of every mode first (page faults of a fresh shard). With ``until``,
    rounds of every mode repeat until it is true (a phase that lasts: the background build),
    and a round cut short keeps the queries it timed.
    """
    timings: dict[str, list[float]] = {}
    for mode in MODES:  # untimed: the first queries of a fresh (or freshly swapped) shard fault its pages in
        for question, vector in zip(questions, vectors, strict=True):
            index.search(vector, tenant_id="t", collection_id="c", top_k=top_k, query=question, mode=mode)
    while True:
        for idf_per_collection in scopes:
            index.idf_per_collection = idf_per_collection
            scope = "collection" if idf_per_collection else "global"
            for mode in MODES:
                if mode == "dense" and not idf_per_collection:
                    continue  # the IDF scope only concerns the keyword side
                key = mode if mode == "dense" else f"{mode} (IDF: {scope})"
                for question, vector in zip(questions, vectors, strict=True):
                    if until is not None and until():
                        break
                    began = time.perf_counter()
                    index.search(vector, tenant_id="t", collection_id="c", top_k=top_k, query=question, mode=mode)
                    timings.setdefault(key, []).append((time.perf_counter() - began) * 1000)
        if until is None or until():
            break
    index.idf_per_collection = True
    results: dict[str, dict[str, float]] = {}
    for key, values in timings.items():
        results[key] = {
            "p50": round(percentile(values, 0.5), 1),
            "p95": round(percentile(values, 0.95), 1),
            "n": len(values),
        }
        p50, p95 = results[key]["p50"], results[key]["p95"]
        say(f"{phase:10s} {key:28s} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms  (n={len(values)})")
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--questions", type=Path, default=ROOT / "bench" / "eval" / "questions.jsonl")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20, help="queries timed per mode and IDF scope")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--engine", choices=["edge", "qdrant-local"], default="edge")
    parser.add_argument(
        "--output", type=Path, default=None, help="default: bench/results/retrieval_latency_<engine>.json"
    )
    parser.add_argument(
        "--ingest",
        action="store_true",
        help="edge: time searches while the chunks are written at --write-rate under the embedder's build policy",
    )
    parser.add_argument("--write-rate", type=float, default=400.0, help="--ingest: chunks written per second")
    parser.add_argument(
        "--tail-points", type=int, default=20_000, help="--ingest: the build policy's tail (0: build only when idle)"
    )
    parser.add_argument("--checkpoint", type=int, default=10_000, help="--ingest: chunks between timed rounds")
    return parser.parse_args(argv)


def ingest(args: argparse.Namespace, texts: list[str], questions: list[str], vectors: NDArray[np.float32]) -> Any:
    """Search latency during a paced ingest and after it, until the HNSW build that follows has landed.

    The index runs the embedder's default build policy (``EdgeIndex`` defaults: a build once
    writes pause 5 s, and, unless ``--tail-points 0``, one whenever that many points were written
    since the last build). Documents of 100 chunks are written (upsert, activate) at
    ``--write-rate``; every ``--checkpoint`` chunks a round of every mode is timed. After the last
    write, rounds repeat until a build started after the writes has been swapped in, and one more
    round follows it; the window is the time from the last write until hybrid search first meets
    the 30 ms goal at p95.
    """
    work = Path(tempfile.mkdtemp(prefix="ragstream-ingest-"))
    index = EdgeIndex(path=work / "edge", dimensions=DIMENSIONS, build_tail_points=args.tail_points or None)
    rng = np.random.default_rng(7)
    rounds: list[dict[str, Any]] = []

    def timed(label: str, elapsed_s: float) -> dict[str, Any]:
        ms = time_modes(index, questions, vectors, top_k=args.top_k, phase=label, scopes=(True,))
        info = index.chunks.info()
        entry = {"at": label, "s": round(elapsed_s, 1), "ms": ms, "segments": info.segments_count}
        entry |= {"indexed": info.indexed_vectors_count, "points": info.points_count, "swaps": index.builder.swaps}
        rounds.append(entry)
        return entry

    try:
        started = time.perf_counter()
        for start in range(0, len(texts), CHUNKS_PER_DOCUMENT):
            document_id = f"doc-{start // CHUNKS_PER_DOCUMENT}"
            batch = texts[start : start + CHUNKS_PER_DOCUMENT]
            points = [
                ChunkPoint("t", "c", document_id, 1, i, text, f"{document_id}.md", "text/markdown")
                for i, text in enumerate(batch)
            ]
            dense = rng.normal(size=(len(batch), DIMENSIONS)).astype(np.float32)
            dense /= np.linalg.norm(dense, axis=1, keepdims=True)
            index.upsert(points, dense)
            index.activate("t", document_id, 1, len(batch))
            written = start + len(batch)
            ahead = written / args.write_rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
            if written % args.checkpoint == 0 and written < len(texts):
                timed(f"{written} written", time.perf_counter() - started)
        ended = time.perf_counter()
        say(f"wrote {len(texts)} chunks in {ended - started:.1f}s")
        builds_then = index.builder.builds
        window: float | None = None
        while True:
            entry = timed("after writes", time.perf_counter() - ended)
            if window is None and entry["ms"]["hybrid (IDF: collection)"]["p95"] < 30:
                window = entry["s"]
            if index.builder.builds > builds_then and not index.builder.running:
                timed("after the build", time.perf_counter() - ended)  # a round wholly after the swap
                break
            if time.perf_counter() - ended > 3600:
                raise RuntimeError("no build landed within an hour after the writes")
            time.sleep(5)
        return {
            "write_rate": args.write_rate,
            "tail_points": args.tail_points,
            "write_s": round(ended - started, 1),
            "window_s": window,
            "swaps": index.builder.swaps,
            "rounds": rounds,
        }
    finally:
        index.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(11)
    texts = synthetic_chunks(corpus_words(args.corpus), args.chunks, rng)
    rows = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [row["question"] for row in rows][: args.queries]
    vectors = MiniLMEmbedder().embed(questions)
    if args.ingest:
        report = ingest(args, texts, questions, vectors)
        report |= {"date": datetime.now(UTC).date().isoformat(), "chunks": args.chunks, "queries": len(questions)}
        suffix = f"tail{args.tail_points}" if args.tail_points else "idle_only"
        output = args.output or ROOT / "bench" / "results" / f"retrieval_latency_ingest_{suffix}.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n")
        say(f"window {report['window_s']}s after the writes; written to {output}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="ragstream-latency-"))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "engine": args.engine,
        "chunks": args.chunks,
        "queries": len(questions),
        "top_k": args.top_k,
        "ms": {},
    }
    try:
        started = time.perf_counter()
        index = build(work / args.engine, texts, engine=args.engine)
        results["build_s"] = round(time.perf_counter() - started, 1)
        say(f"wrote and activated {args.chunks} chunks in {results['build_s']}s")
        try:
            if isinstance(index, EdgeIndex):
                builder = index.builder
                results["ms"]["before HNSW"] = time_modes(index, questions, vectors, top_k=args.top_k, phase="exact")
                began = time.perf_counter()
                builder.request()
                results["ms"]["during HNSW build"] = time_modes(
                    index,
                    questions,
                    vectors,
                    top_k=args.top_k,
                    phase="building",
                    until=lambda: not builder.running and builder.builds > 0,
                )
                if not builder.wait_idle(3600):
                    raise RuntimeError("the HNSW build did not finish within an hour")
                results["hnsw_build_s"] = round(time.perf_counter() - began, 1)
                say(f"HNSW built in the background in {results['hnsw_build_s']}s")
                results["ms"]["after HNSW"] = time_modes(index, questions, vectors, top_k=args.top_k, phase="hnsw")
            else:
                results["ms"]["exact"] = time_modes(index, questions, vectors, top_k=args.top_k, phase="exact")
        finally:
            index.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    output = args.output or ROOT / "bench" / "results" / f"retrieval_latency_{args.engine}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    say(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
