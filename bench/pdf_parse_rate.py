"""Parse rate of the corpus PDFs through the parser alone: pages/s per file and in total.

    .venv/bin/python bench/pdf_parse_rate.py [--runs 7] [--chunking structure] [--long 200] [--progress]

Each PDF is parsed once to warm up, then ``--runs`` times; the best and the median time of each
are reported (the best is the least disturbed by other work on the machine). Conversion,
PDF structure and chunking are all timed, as ``DoclingParser.parse`` runs them.

``--long N`` adds a PDF of N pages made of the corpus PDFs' pages, repeated. ``--progress``
parses each PDF twice per run, alternately without and with progress reporting (on the parser's
worker thread, through ``ProgressPublisher`` into an in-memory publisher, as the handler does),
and reports both rates, the overhead in wall time and in CPU time of this process (steadier
when other work shares the cores), and the progress events of the last run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "pdf"
PDF = "application/pdf"


def main(argv: list[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--runs", type=int, default=7)
    arguments.add_argument("--chunking", default="structure")
    arguments.add_argument("--corpus", type=Path, default=CORPUS)
    arguments.add_argument("--long", type=int, default=0, help="add a PDF of this many pages of corpus pages")
    arguments.add_argument("--progress", action="store_true", help="compare runs without and with progress")
    options = arguments.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", module="docling_core")  # one per heading too long to embed: noise here
    paths = sorted(options.corpus.glob("*.pdf"))
    if not paths:
        sys.stdout.write(f"no PDF in {options.corpus}\n")
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        if options.long:
            paths.append(long_pdf(paths, pages=options.long, into=Path(scratch)))
        return asyncio.run(measure(paths, options))


def long_pdf(sources: list[Path], *, pages: int, into: Path) -> Path:
    """A PDF of ``pages`` pages: the pages of ``sources`` in turn, repeated."""
    import pypdfium2

    document = pypdfium2.PdfDocument.new()
    while len(document) < pages:
        for source in sources:
            taken = min(len(pypdfium2.PdfDocument(source)), pages - len(document))
            if taken > 0:
                document.import_pages(pypdfium2.PdfDocument(source), list(range(taken)))
    path = into / f"long_{pages}_pages.pdf"
    document.save(path)
    return path


async def measure(paths: list[Path], options: argparse.Namespace) -> int:
    from ragstream_core.proto.ragstream.v1.events_pb2 import EventMeta, StageProgress
    from ragstream_parser.docling_parser import DoclingParser, ParseOptions, ThreadedParser

    parser = ThreadedParser(DoclingParser())
    parse_options = ParseOptions(chunking=options.chunking)
    meta = EventMeta(job_id="bench", tenant_id="t", document_id="d", version=1, file_name="bench.pdf")
    modes = (False, True) if options.progress else (False,)
    pages_total = 0
    seconds_total = {mode: [0.0, 0.0] for mode in modes}  # best, median
    cpu_total = dict.fromkeys(modes, 0.0)  # median
    for path in paths:
        data = path.read_bytes()
        parsed, _ = await timed_parse(parser, data, name=path.name, options=parse_options, meta=meta, progress=False)
        seconds: dict[bool, list[float]] = {mode: [] for mode in modes}
        cpu: dict[bool, list[float]] = {mode: [] for mode in modes}
        published: list[StageProgress] = []
        for number in range(options.runs):
            for mode in modes if number % 2 == 0 else modes[::-1]:  # alternate the order: same disturbance
                started, started_cpu = time.perf_counter(), time.process_time()
                _, events = await timed_parse(
                    parser, data, name=path.name, options=parse_options, meta=meta, progress=mode
                )
                seconds[mode].append(time.perf_counter() - started)
                cpu[mode].append(time.process_time() - started_cpu)
                published = events if mode else published
        for mode in modes:
            cpu_total[mode] += statistics.median(cpu[mode])
        pages_total += parsed.page_count
        line = f"{path.name:28} {parsed.page_count:3} pages {len(parsed.chunks):5} chunks"
        for mode in modes:
            best, median = min(seconds[mode]), statistics.median(seconds[mode])
            seconds_total[mode][0] += best
            seconds_total[mode][1] += median
            label = "progress" if mode else "plain" if options.progress else ""
            line += f"  {label} best {parsed.page_count / best:6.1f} median {parsed.page_count / median:6.1f} pages/s"
        if options.progress:
            overhead = statistics.median(seconds[True]) / statistics.median(seconds[False]) - 1
            cpu_overhead = statistics.median(cpu[True]) / statistics.median(cpu[False]) - 1
            done = [event.done for event in published]
            line += f"  overhead {overhead:+.1%} wall, {cpu_overhead:+.1%} CPU; {len(published)} events, done {done}"
        sys.stdout.write(line + "\n")
    line = f"{'total':28} {pages_total:3} pages             "
    for mode in modes:
        best, median = seconds_total[mode]
        label = "progress" if mode else "plain" if options.progress else ""
        line += f"  {label} best {pages_total / best:6.1f} median {pages_total / median:6.1f} pages/s"
    if options.progress:
        overhead = seconds_total[True][1] / seconds_total[False][1] - 1
        line += f"  overhead {overhead:+.1%} wall, {cpu_total[True] / cpu_total[False] - 1:+.1%} CPU (medians)"
    sys.stdout.write(line + "\n")
    return 0


async def timed_parse(
    parser: Any, data: bytes, *, name: str, options: Any, meta: Any, progress: bool
) -> tuple[Any, list[Any]]:
    """The parsed document and, with ``progress``, the ``StageProgress`` events its parse published."""
    from ragstream_parser.progress import ProgressPublisher

    published: list[Any] = []

    async def publish(event: Any) -> None:
        published.append(event)

    if not progress:
        return await parser.parse(data, file_name=name, media_type=PDF, options=options), published
    async with ProgressPublisher(publish, meta, stage="parsing", attempt=1) as publisher:
        parsed = await parser.parse(data, file_name=name, media_type=PDF, options=options, progress=publisher.report)
    return parsed, published


if __name__ == "__main__":
    sys.exit(main())
