"""Parse rate of the corpus PDFs through the parser alone: pages/s per file and in total.

    .venv/bin/python bench/pdf_parse_rate.py [--runs 7] [--chunking structure]

Each PDF is parsed once to warm up, then ``--runs`` times; the best and the median time of each
are reported (the best is the least disturbed by other work on the machine). Conversion,
PDF structure and chunking are all timed, as ``DoclingParser.parse`` runs them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "pdf"


def main(argv: list[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--runs", type=int, default=7)
    arguments.add_argument("--chunking", default="structure")
    arguments.add_argument("--corpus", type=Path, default=CORPUS)
    options = arguments.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ragstream_parser.docling_parser import DoclingParser, ParseOptions

    parser = DoclingParser()
    parse_options = ParseOptions(chunking=options.chunking)
    pages_total, best_total, median_total = 0, 0.0, 0.0
    for path in sorted(options.corpus.glob("*.pdf")):
        data = path.read_bytes()
        parsed = parser.parse(data, file_name=path.name, media_type="application/pdf", options=parse_options)
        seconds = []
        for _ in range(options.runs):
            started = time.perf_counter()
            parser.parse(data, file_name=path.name, media_type="application/pdf", options=parse_options)
            seconds.append(time.perf_counter() - started)
        best, median = min(seconds), statistics.median(seconds)
        pages_total += parsed.page_count
        best_total += best
        median_total += median
        sys.stdout.write(
            f"{path.name:28} {parsed.page_count:3} pages {len(parsed.chunks):4} chunks  "
            f"best {parsed.page_count / best:6.1f} pages/s  median {parsed.page_count / median:6.1f} pages/s\n"
        )
    if not pages_total:
        sys.stdout.write(f"no PDF in {options.corpus}\n")
        return 1
    sys.stdout.write(
        f"{'total':28} {pages_total:3} pages              "
        f"best {pages_total / best_total:6.1f} pages/s  median {pages_total / median_total:6.1f} pages/s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
