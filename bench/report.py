"""The benchmark's figures, computed from the finished jobs, and their printed summary.

``build_results`` turns the raw observations into the JSON written to
``bench/results/latest.json``; ``render_summary`` prints it for a reader. bench/README.md
explains each figure.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TARGET_RATIO = 0.95

#: design.md, "What the peers do on this machine" (measured 2026-11-22, same corpus, 2 cores).
PEERS: dict[str, Any] = {
    "source": "design.md, measured 2026-11-22 on this machine, 200 files of ../shared/corpus",
    "model_alone": {"chunks_per_s": [20, 22], "tokens_per_s": [4500, 4900]},
    "llamaindex": {
        "ratio": 0.87,
        "chunks_per_s": 16.97,
        "seconds_for_200_files": 226.9,
        "share_of_tokens_never_embedded": 0.156,
    },
    "haystack": {"ratio": 0.78, "share_of_tokens_never_embedded": 0.46},
}


@dataclass(frozen=True)
class FinishedJob:
    """One bulk upload and its job as the progress service reports it at the end."""

    format: str
    file_name: str
    job: dict[str, Any]
    tokens: list[int]  # WordPiece tokens of each embedded chunk text, [CLS] and [SEP] included


def _at(job: dict[str, Any], status: str) -> float | None:
    value = job.get("timestamps", {}).get(status)
    return datetime.fromisoformat(value).timestamp() if value else None


def _last_detail(job: dict[str, Any], status: str) -> dict[str, Any]:
    details = [h["detail"] for h in job.get("history", []) if h["status"] == status]
    return details[-1] if details else {}


def _job_row(j: FinishedJob, started_at: float, max_tokens: int) -> dict[str, Any]:
    """One job, compactly: for finding out afterwards which documents were slow and when."""
    times = {status: _at(j.job, status) for status in ("uploaded", "parsing", "parsed", "indexed", "failed")}
    return {
        "file": j.file_name,
        "format": j.format,
        "status": j.job.get("status"),
        "attempts": j.job.get("attempts"),
        "pages": j.job.get("counts", {}).get("pages"),
        "chunks": len(j.tokens),
        "tokens_embedded": sum(min(n, max_tokens) for n in j.tokens),
        "parse_seconds": _last_detail(j.job, "parsed").get("parse_seconds"),
        "embed_seconds": _last_detail(j.job, "indexed").get("embed_seconds"),
        # seconds after the first upload request at which each event happened
        "at_s": {status: round(t - started_at, 3) for status, t in times.items() if t is not None},
    }


def _busy(jobs: list[FinishedJob], status: str, key: str) -> float:
    """Seconds during which the stage had at least one document in hand: the union of each job's
    ``[event time - stage seconds, event time]``. Unlike a sum, this stays a share of the wall
    time when the stage works on several documents at once."""
    spans = sorted(
        (at - float(seconds), at)
        for j in jobs
        if (at := _at(j.job, status)) is not None and (seconds := _last_detail(j.job, status).get(key)) is not None
    )
    total, current_start, current_end = 0.0, None, None
    for start, end in spans:
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _rate(amount: float, seconds: float) -> float | None:
    return round(amount / seconds, 3) if seconds > 0 else None


def build_results(
    *,
    date: str,
    machine: dict[str, Any],
    config: dict[str, Any],
    jobs: list[FinishedJob],
    started_at: float,
    uploads_done_at: float,
    observed_done_at: float,
    stack_cpu: dict[str, float],
    model: dict[str, Any],
    latency: list[dict[str, Any]],
    max_tokens: int,
) -> dict[str, Any]:
    """Every figure of the run; raises ``ValueError`` when no job reached a terminal state."""
    terminal = [t for j in jobs if (t := _at(j.job, "indexed") or _at(j.job, "failed")) is not None]
    if not terminal:
        raise ValueError("no job reached indexed or failed: there is no end-to-end time")
    indexed = [j for j in jobs if j.job.get("status") == "indexed"]
    failed = [j for j in jobs if j.job.get("status") == "failed"]
    wall = max(terminal) - started_at
    chunks = sum(len(j.tokens) for j in indexed)
    tokens_embedded = sum(min(n, max_tokens) for j in indexed for n in j.tokens)
    e2e_tokens_per_s = tokens_embedded / wall
    baselines = model["baselines"]
    headline = next(iter(baselines))
    alone = {
        name: {
            "seconds": round(b["seconds"], 3),
            "chunks_per_s": _rate(len(model["tokens"]), b["seconds"]),
            "tokens_per_s": round(model["tokens_embedded"] / b["seconds"], 1),
            "cpu_seconds": round(b["cpu_seconds"], 3),
            "model_calls": b["model_calls"],
            "padded_tokens": b["padded_tokens"],
            "ratio": round(e2e_tokens_per_s / (model["tokens_embedded"] / b["seconds"]), 3),
        }
        for name, b in baselines.items()
    }
    parse_seconds = [float(_last_detail(j.job, "parsed").get("parse_seconds", 0.0)) for j in jobs]
    embed_seconds = [float(_last_detail(j.job, "indexed").get("embed_seconds", 0.0)) for j in indexed]
    parsed_jobs = [(j, s) for j, s in zip(jobs, parse_seconds, strict=True) if _at(j.job, "parsed") is not None]
    paged = [(j, s) for j, s in parsed_jobs if j.job["counts"]["pages"] > 0]
    pdf = [(j, s) for j, s in paged if j.format == "pdf"]

    per_format: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for j, seconds in zip(jobs, parse_seconds, strict=True):
        row = per_format[j.format]
        row["documents"] += 1
        row["failed"] += j.job.get("status") == "failed"
        row["chunks"] += len(j.tokens)
        row["tokens_embedded"] += sum(min(n, max_tokens) for n in j.tokens)
        row["pages"] += j.job["counts"]["pages"]
        row["parse_seconds"] += seconds
        row["embed_seconds"] += float(_last_detail(j.job, "indexed").get("embed_seconds", 0.0))
    parsed_at = [t for j in jobs if (t := _at(j.job, "parsed")) is not None]
    indexed_at = [t for j in indexed if (t := _at(j.job, "indexed")) is not None]
    seconds_ok = [s["seconds"] for s in latency if s["seconds"] is not None]

    return {
        "date": date,
        "machine": machine,
        "config": config,
        "corpus": {
            "documents": len(jobs),
            "indexed": len(indexed),
            "failed": len(failed),
            "chunks": chunks,
            "tokens_embedded": tokens_embedded,
            "per_format": {
                f: {k: round(v, 3) if isinstance(v, float) and not v.is_integer() else int(v) for k, v in row.items()}
                for f, row in sorted(per_format.items())
            },
        },
        "end_to_end": {
            "seconds": round(wall, 3),
            "documents_per_s": _rate(len(indexed), wall),
            "chunks_per_s": _rate(chunks, wall),
            "tokens_per_s": round(e2e_tokens_per_s, 1),
            "uploads_seconds": round(uploads_done_at - started_at, 3),
            "first_indexed_after_s": round(min(indexed_at) - started_at, 3) if indexed_at else None,
            "last_parsed_after_s": round(max(parsed_at) - started_at, 3) if parsed_at else None,
            "observed_done_after_s": round(observed_done_at - started_at, 3),
            "parser_busy_seconds": round(_busy(jobs, "parsed", "parse_seconds"), 3),
            "embedder_busy_seconds": round(_busy(jobs, "indexed", "embed_seconds"), 3),
            "parse_seconds_sum": round(sum(parse_seconds), 3),
            "embed_seconds_sum": round(sum(embed_seconds), 3),
            "redelivered_jobs": sum(1 for j in jobs if j.job.get("attempts", 1) > 1),
            "cpu_seconds_by_process": stack_cpu,
            "cpu_seconds_total": round(sum(stack_cpu.values()), 3),
        },
        "model_alone": {
            "headline": headline,
            **{k: v for k, v in alone[headline].items() if k != "ratio"},
            "load_seconds": round(model["load_seconds"], 3),
            "chunks": len(model["tokens"]),
            "tokens_embedded": model["tokens_embedded"],
            "batch_size": config["batch_size"],
            "baselines": alone,
        },
        "ratio": {
            "end_to_end_over_model_alone": alone[headline]["ratio"],
            "baseline": headline,
            "target": TARGET_RATIO,
            "meets_target": alone[headline]["ratio"] >= TARGET_RATIO,
            "by_baseline": {name: b["ratio"] for name, b in alone.items()},
        },
        "peers": PEERS,
        "parse": {
            "documents_per_s": _rate(len(parsed_jobs), sum(s for _, s in parsed_jobs)),
            "pages": sum(j.job["counts"]["pages"] for j, _ in paged),
            "pages_per_s": _rate(sum(j.job["counts"]["pages"] for j, _ in paged), sum(s for _, s in paged)),
            "pdf_pages_per_s": _rate(sum(j.job["counts"]["pages"] for j, _ in pdf), sum(s for _, s in pdf)),
            "declared_tokens": sum(int(_last_detail(j.job, "parsed").get("tokens", 0)) for j in jobs),
        },
        "latency": {
            "probes": len(latency),
            "answered": len(seconds_ok),
            "p50_s": round(statistics.median(seconds_ok), 3) if seconds_ok else None,
            "p95_s": round(percentile(seconds_ok, 0.95), 3) if seconds_ok else None,
            "max_s": round(max(seconds_ok), 3) if seconds_ok else None,
            "median_stages_s": {
                stage: round(statistics.median(values), 3)
                for stage in (latency[0]["stages"] if latency else {})
                if (values := [s["stages"][stage] for s in latency if s["stages"].get(stage) is not None])
            },
            "samples": latency,
        },
        "jobs": [_job_row(j, started_at, max_tokens) for j in jobs],
        "quality": {
            "truncated_chunks": sum(int(_last_detail(j.job, "indexed").get("truncated_chunks", 0)) for j in indexed),
            "truncated_chunks_recounted": sum(1 for j in indexed for n in j.tokens if n > max_tokens),
            "failed_jobs": len(failed),
            "failures": [
                {"file": j.file_name, **(j.job.get("error") or {}), "attempts": j.job.get("attempts")} for j in failed
            ],
        },
    }


def render_summary(r: dict[str, Any]) -> str:
    """The figures a reader looks at first, with the peers beside ours."""
    e2e, alone, ratio, parse, lat, q = (
        r["end_to_end"],
        r["model_alone"],
        r["ratio"],
        r["parse"],
        r["latency"],
        r["quality"],
    )
    c, m, peers = r["corpus"], r["machine"], r["peers"]
    verdict = "meets" if ratio["meets_target"] else "BELOW"
    others = [
        f"{name}: {b['seconds']:.1f} s ({b['cpu_seconds']:.1f} CPU s), {b['chunks_per_s']} chunks/s, "
        f"{b['tokens_per_s']:.0f} tokens/s, padded tokens {b['padded_tokens']}, ratio {b['ratio']:.3f}"
        for name, b in alone["baselines"].items()
    ]
    lines = [
        f"ragstream ingest bench  {r['date']}  {m['nproc']} cores  Python {m['python']}  "
        f"load avg at start {m['load_average_at_start']}  commit {m['git_commit'][:10]}"
        + (" (dirty)" if m["git_dirty"] else ""),
        f"documents {c['documents']} ({c['indexed']} indexed, {c['failed']} failed)  chunks {c['chunks']}  "
        f"tokens embedded {c['tokens_embedded']}",
        "",
        f"{'format':<6} {'docs':>5} {'failed':>6} {'chunks':>7} {'tokens':>8} {'pages':>6} "
        f"{'parse s':>8} {'embed s':>8}",
    ]
    for name, row in c["per_format"].items():
        lines.append(
            f"{name:<6} {row['documents']:>5} {row['failed']:>6} {row['chunks']:>7} {row['tokens_embedded']:>8} "
            f"{row['pages']:>6} {row['parse_seconds']:>8.2f} {row['embed_seconds']:>8.2f}"
        )
    lines += [
        "",
        f"1. end to end      {e2e['seconds']:.1f} s: {e2e['documents_per_s']} docs/s, {e2e['chunks_per_s']} chunks/s, "
        f"{e2e['tokens_per_s']:.0f} tokens/s",
        f"   (uploads took {e2e['uploads_seconds']:.1f} s, first indexed at {e2e['first_indexed_after_s']} s, "
        f"last parsed at {e2e['last_parsed_after_s']} s; busy: parser {e2e['parser_busy_seconds']:.1f} s, "
        f"embedder {e2e['embedder_busy_seconds']:.1f} s (per-document embed seconds add up to "
        f"{e2e['embed_seconds_sum']:.1f} s); redelivered jobs {e2e['redelivered_jobs']})",
        f"   CPU seconds in that window: {e2e['cpu_seconds_total']:.1f} total, "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in e2e["cpu_seconds_by_process"].items()),
        f"2. model alone     {alone['seconds']:.1f} s: {alone['chunks_per_s']} chunks/s, "
        f"{alone['tokens_per_s']:.0f} tokens/s (batches of {alone['batch_size']} in {alone['headline']}; "
        f"design.md: {peers['model_alone']['chunks_per_s']} chunks/s, {peers['model_alone']['tokens_per_s']} tokens/s)",
        *(f"     {line}" for line in others),
        f"3. ratio           {ratio['end_to_end_over_model_alone']:.3f} vs {ratio['baseline']}  target >= "
        f"{ratio['target']} ({verdict})   LlamaIndex {peers['llamaindex']['ratio']}   "
        f"Haystack {peers['haystack']['ratio']}",
        f"4. parse only      {parse['documents_per_s']} docs/s; {parse['pages_per_s']} pages/s over paginated "
        f"formats ({parse['pages']} pages), PDF {parse['pdf_pages_per_s']} pages/s",
        f"5. upload to answerable (one-page .md, idle): p50 {lat['p50_s']} s, p95 {lat['p95_s']} s, "
        f"max {lat['max_s']} s ({lat['answered']}/{lat['probes']} answered); median stages {lat['median_stages_s']}",
        f"6. truncated chunks {q['truncated_chunks']} (recounted: {q['truncated_chunks_recounted']}; goal 0)   "
        f"failed jobs {q['failed_jobs']}",
    ]
    lines += [f"   failed: {f['file']} at {f.get('stage')}: {f.get('reason')}" for f in q["failures"]]
    if bulk := r.get("collections_bulk"):
        lines.append(
            f"7. collections     {bulk['count']} created in one request in {bulk['create_seconds']} s "
            f"({bulk['collections_per_s']}/s); listed in {bulk['list_seconds']} s"
        )
    steering = r.get("steering", {})
    if (feed := steering.get("feed_latency")) and feed.get("samples"):
        lines.append(
            f"8. live feed       event -> WebSocket client during the bulk run: p50 {feed['p50_ms']} ms, "
            f"p95 {feed['p95_ms']} ms, max {feed['max_ms']} ms ({feed['samples']} messages)"
        )
    if pause := steering.get("pause_resume"):
        lines.append(
            f"9. pause/resume    {pause['documents']} docs at {pause['steady_chunks_per_s']} chunks/s; after the "
            f"resume: first chunk {pause['first_chunk_after_resume_s']} s, full speed "
            f"{pause['full_speed_after_resume_s']} s (held {pause['held_jobs']} jobs; drained in "
            f"{pause['drain_seconds']} s)"
        )
    if kill := steering.get("embedder_kill"):
        lines.append(
            f"10. SIGKILL embedder {kill['documents']} docs at {kill['steady_chunks_per_s']} chunks/s; restarted in "
            f"{kill['restart_seconds']} s; after the kill: first chunk {kill['first_chunk_after_kill_s']} s, "
            f"full speed {kill['full_speed_after_kill_s']} s, batch done {kill['finished_after_kill_s']} s; "
            f"final {kill['final_counts']}"
        )
    if chat := r.get("chat"):
        fresh, first, load = chat["freshness"], chat["first_token"], chat["concurrency"]
        lines += [
            f"11. freshness     index.updated -> first citing answer: p50 {fresh.get('p50_ms')} ms, p95 "
            f"{fresh.get('p95_ms')} ms ({fresh['samples']} probes; cited before the event: "
            f"{fresh['cited_before_the_event']})",
            f"12. first token   extractive, streamed (SSE), idle: p50 {first['first_token'].get('p50_ms')} ms, p95 "
            f"{first['first_token'].get('p95_ms')} ms; whole answer p50 {first['whole_answer'].get('p50_ms')} ms",
            f"13. chat load     {load['clients']} clients: {load['answers_per_s']} answers/s, latency p50 "
            f"{load['latency'].get('p50_ms')} ms, p95 {load['latency'].get('p95_ms')} ms ({load['errors']} errors)",
        ]
    if r["machine"]["load_average_at_start"][0] > 0.5:
        lines.append("note: the machine was not idle at the start (load average above); figures may be noisy")
    return "\n".join(lines)
