"""The ceiling: the embedder's model, alone in this process, on the chunk texts the pipeline embedded.

A batch is padded to its longest text, so the time depends on how texts are grouped into
batches of the same size. Three groupings are timed, each after the same warm-up:

- ``upload_order``: all texts in the order they were uploaded, in batches of ``batch_size``.
- ``per_document``: each document's texts in batches of ``batch_size``: an embedder that
  batches each document on its own (the service now pools concurrent documents instead).
- ``length_sorted``: all texts sorted by length, in batches of ``batch_size``: the least
  padding, so the fastest these texts can be embedded with this model and batch size.

The baselines' batches are interleaved, so they share whatever else the machine is doing.
"""

from __future__ import annotations

import time
from typing import Any

from ragstream_embedder.model import MAX_TOKENS, MiniLMEmbedder

BASELINES = ("length_sorted", "per_document", "upload_order")


def batches_of(documents: list[list[str]], tokens: dict[str, int], baseline: str, size: int) -> list[list[str]]:
    """The model calls of ``baseline``, as lists of texts."""
    if baseline == "per_document":
        return [doc[i : i + size] for doc in documents for i in range(0, len(doc), size)]
    flat = [text for doc in documents for text in doc]
    if baseline == "length_sorted":
        flat.sort(key=lambda text: tokens[text])
    elif baseline != "upload_order":
        raise ValueError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
    return [flat[i : i + size] for i in range(0, len(flat), size)]


def time_model_alone(documents: list[list[str]], *, batch_size: int, baselines: tuple[str, ...]) -> dict[str, Any]:
    """Tokens of every text (in order) and, per baseline, the seconds to embed them all."""
    loaded = time.perf_counter()
    model = MiniLMEmbedder()
    load_seconds = time.perf_counter() - loaded
    flat = [text for doc in documents for text in doc]
    counts = model.count_tokens(flat)
    tokens = dict(zip(flat, counts, strict=True))
    model.embed(flat[:batch_size])  # warm-up: ONNX Runtime's first run allocates
    planned = {baseline: batches_of(documents, tokens, baseline, batch_size) for baseline in baselines}
    seconds = dict.fromkeys(baselines, 0.0)
    cpu = dict.fromkeys(baselines, 0.0)
    # the baselines' batches interleaved in step (each at the same fraction of its work at the
    # same time): a load that comes and goes on a shared machine then slows every baseline
    # alike, instead of whichever happened to run at the time
    schedule = sorted(
        ((index + 0.5) / len(batches), baseline, batch)
        for baseline, batches in planned.items()
        for index, batch in enumerate(batches)
    )
    for _, baseline, batch in schedule:
        started, cpu_started = time.perf_counter(), time.process_time()
        model.embed(batch)
        seconds[baseline] += time.perf_counter() - started
        cpu[baseline] += time.process_time() - cpu_started
    timed = {
        baseline: {
            "seconds": seconds[baseline],
            "cpu_seconds": cpu[baseline],
            "model_calls": len(batches),
            # what the model computed over: every text padded to the longest of its batch
            "padded_tokens": sum(min(MAX_TOKENS, max(tokens[t] for t in b)) * len(b) for b in batches),
        }
        for baseline, batches in planned.items()
    }
    return {
        "load_seconds": load_seconds,
        "tokens": counts,
        "tokens_embedded": sum(min(n, MAX_TOKENS) for n in counts),
        "max_tokens": MAX_TOKENS,
        "baselines": timed,
    }
