"""Fixtures of the parser's tests (the servers and the corpus come from ``ragstream_devstack.testing``)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus_pages_pdf(corpus: Path) -> Callable[[int], bytes]:
    """Makes a PDF of the given number of pages: the corpus PDFs' pages in turn, repeated."""
    import pypdfium2

    def make(pages: int) -> bytes:
        document = pypdfium2.PdfDocument.new()
        while len(document) < pages:
            for source in sorted((corpus / "pdf").glob("*.pdf")):
                pdf = pypdfium2.PdfDocument(source)
                taken = min(len(pdf), pages - len(document))
                if taken > 0:
                    document.import_pages(pdf, list(range(taken)))
        buffer = io.BytesIO()
        document.save(buffer)
        return buffer.getvalue()

    return make
