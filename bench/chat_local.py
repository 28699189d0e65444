"""Chat with the local model (issue 5): seconds to the first token and to the whole answer, p50/p95.

Run from the project root after ``make install LLM=local``: ``make bench-chat-local`` or
``.venv/bin/python bench/chat_local.py [--help]``. Without llama-cpp-python it says so and exits 0.

Starts the stack (``ragstream_devstack.Stack``, fresh temporary directory) with
``RAGSTREAM_CHAT_LOCAL_MODEL=smollm2``, indexes the Markdown files of ``../shared/corpus/md`` into
a fresh collection, and asks the eval questions about them (``bench/eval/questions.jsonl``, 12)
one at a time over SSE, first with the extractive provider, then with ``local`` (the collection's
provider set through ``PUT .../chat/settings``), each after one untimed warm-up question. Time to
first token is the first ``delta`` event, the whole answer the ``done`` event, both from just
before the request. Also counts answers citing the question's document and answers saying
"I don't know", and asks three questions nothing in the collection answers (untimed), which
must get "I don't know". Writes ``bench/results/chat_local.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from steering_probes import percentile

from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "bench" / "eval" / "questions.jsonl"
RESULTS = ROOT / "bench" / "results" / "chat_local.json"
# Nothing in the collection answers these: the relevance gate must turn them into "I don't know".
UNRELATED = (
    "What is the airspeed of an unladen swallow?",
    "Who won the football world cup in 1998?",
    "How long should sourdough bread rise?",
)


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus", help="shared corpus")
    parser.add_argument("--model", default="smollm2", help="RAGSTREAM_CHAT_LOCAL_MODEL of the chat service")
    parser.add_argument("--rounds", type=int, default=1, help="times each question is asked per provider")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def md_questions() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["document"].startswith("md/")]


def summary(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"samples": 0}
    return {
        "samples": len(seconds),
        "p50_s": round(percentile(seconds, 0.5), 3),
        "p95_s": round(percentile(seconds, 0.95), 3),
        "max_s": round(max(seconds), 3),
    }


async def ask(http: httpx.AsyncClient, url: str, question: str) -> dict[str, Any]:
    """One streamed answer: seconds to the first delta and to done, and the done event's data."""
    started = time.perf_counter()
    first: float | None = None
    event = ""
    done: dict[str, Any] = {}
    async with http.stream("POST", url, json={"question": question, "stream": True}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if event == "delta" and first is None:
                    first = time.perf_counter() - started
            elif line.startswith("data: ") and event in ("done", "error"):
                if event == "error":
                    raise RuntimeError(f"chat failed on {question!r}: {line[6:]}")
                done = json.loads(line[6:])
    whole = time.perf_counter() - started
    return {"first_token_s": first if first is not None else whole, "whole_s": whole, "done": done}


async def measure(client: Client, collection: str, provider: str, rounds: int) -> dict[str, Any]:
    chat = client.stack.url("chat")
    put = await client.http.put(f"{chat}/v1/collections/{collection}/chat/settings", json={"provider": provider})
    put.raise_for_status()
    url = f"{chat}/v1/collections/{collection}/chat"
    questions = md_questions()
    await ask(client.http, url, "What is this collection about?")  # warm-up: caches, first allocation
    first: list[float] = []
    whole: list[float] = []
    answers: list[dict[str, Any]] = []
    right = unknown = 0
    for _ in range(rounds):
        for row in questions:
            result = await ask(client.http, url, row["question"])
            first.append(result["first_token_s"])
            whole.append(result["whole_s"])
            done = result["done"]
            cited = {c["file_name"] for c in done["citations"] if f"[{c['number']}]" in done["answer"]}
            right += Path(row["document"]).name in cited
            unknown += done["answer"].lower().startswith("i don't know")
            answers.append({"id": row["id"], "question": row["question"], "answer": done["answer"]})
            say(f"  {provider:10} {row['id']}  {result['first_token_s']:.2f} s / {result['whole_s']:.2f} s  "
                f"{done['answer'][:90]!r}")  # fmt: skip
    unrelated = []
    for question in UNRELATED:
        done = (await ask(client.http, url, question))["done"]
        unrelated.append({"question": question, "answer": done["answer"], "citations": len(done["citations"])})
    return {
        "provider": provider,
        "unrelated_i_dont_know": sum(u["answer"].lower().startswith("i don't know") for u in unrelated),
        "unrelated": unrelated,
        "questions": len(first),
        "first_token": summary(first),
        "whole_answer": summary(whole),
        "cites_right_document": right,
        "i_dont_know": unknown,
        "answers": answers,
    }


async def bench(stack: Stack, corpus: Path, rounds: int) -> dict[str, Any]:
    collection = f"bench-local-{int(time.time())}"
    async with httpx.AsyncClient(timeout=120) as http:
        client = Client(stack, http)
        jobs = []
        for path in sorted((corpus / "md").glob("*.md")):
            response = await client.upload(collection, path.name, path.read_bytes())
            response.raise_for_status()
            jobs.append(response.json()["job_id"])
        done = await client.wait_done(jobs)
        failed = [j for j in done if j["status"] != "indexed"]
        if failed:
            raise RuntimeError(f"documents not indexed: {failed}")
        say(f"indexed {len(jobs)} Markdown documents into {collection}")
        return {
            "documents": len(jobs),
            "runs": [await measure(client, collection, provider, rounds) for provider in ("extractive", "local")],
        }


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("llama_cpp") is None:
        say("the local-model extra is not installed (llama_cpp is missing): nothing measured.")
        say("install it with `make install LLM=local`, then run `make bench-chat-local`.")
        return 0
    env = {"RAGSTREAM_CHAT_LOCAL_MODEL": args.model, "RAGSTREAM_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory(prefix="ragstream-chat-local-") as work:
        stack = Stack(data_dir=Path(work) / "data", log_dir=Path(work) / "logs", env=env)
        try:
            stack.start()
            load_before = os.getloadavg()
            result = asyncio.run(bench(stack, args.corpus, args.rounds))
            result["load_average_1_5_15"] = {"before": load_before, "after": os.getloadavg()}
        finally:
            stack.stop()
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "model": args.model,
        **result,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    say()
    for item in result["runs"]:
        f, w = item["first_token"], item["whole_answer"]
        say(
            f"{item['provider']:10} first token p50 {f['p50_s']:.2f} s p95 {f['p95_s']:.2f} s | "
            f"whole answer p50 {w['p50_s']:.2f} s p95 {w['p95_s']:.2f} s | "
            f"cites the right document {item['cites_right_document']}/{item['questions']}, "
            f"I don't know {item['i_dont_know']}; unrelated questions: I don't know "
            f"{item['unrelated_i_dont_know']}/{len(UNRELATED)}"
        )
    say(f"load average (1, 5, 15 min) before {result['load_average_1_5_15']['before']}, after "
        f"{result['load_average_1_5_15']['after']}: above {os.cpu_count()} other work shared the cores")  # fmt: skip
    say(f"written to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
