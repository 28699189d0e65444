"""Docling, offline, on real documents of the shared corpus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ragstream_core.errors import UnreadableDocument
from ragstream_parser.docling_parser import DoclingParser

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


@pytest.fixture(scope="module")
def parser() -> DoclingParser:
    return DoclingParser(max_tokens=254)


@pytest.mark.parametrize(
    ("relative", "media_type"),
    [
        ("pdf/multi_page.pdf", PDF),
        ("docx/word_sample.docx", DOCX),
        ("pptx/powerpoint_sample.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
        ("xlsx/xlsx_01.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("xlsx/xlsx_02_sample_sales_data.xlsm", "application/vnd.ms-excel.sheet.macroEnabled.12"),
        ("html/example_03.html", "text/html"),
        ("md/wiki.md", "text/markdown"),
        ("csv/csv-comma.csv", "text/csv"),
    ],
)
def test_every_supported_format_yields_chunks_within_the_model_limit(
    parser: DoclingParser, corpus: Path, relative: str, media_type: str
) -> None:
    parsed = parser.parse((corpus / relative).read_bytes(), file_name=Path(relative).name, media_type=media_type)

    assert parsed.chunks
    assert all(chunk.text.strip() for chunk in parsed.chunks)
    assert max(chunk.tokens for chunk in parsed.chunks) <= 254
    assert [chunk.index for chunk in parsed.chunks] == list(range(len(parsed.chunks)))


def test_pdf_chunks_carry_their_pages(parser: DoclingParser, corpus: Path) -> None:
    parsed = parser.parse((corpus / "pdf/multi_page.pdf").read_bytes(), file_name="multi_page.pdf", media_type=PDF)

    assert parsed.page_count == 5
    assert {page for chunk in parsed.chunks for page in chunk.pages} == {1, 2, 3, 4, 5}


def test_docx_chunks_carry_their_heading_path(parser: DoclingParser, corpus: Path) -> None:
    data = (corpus / "docx/unit_test_headers.docx").read_bytes()

    parsed = parser.parse(data, file_name="unit_test_headers.docx", media_type=DOCX)

    paths = [chunk.heading_path for chunk in parsed.chunks]
    assert ["Test Document", "Section 1"] in paths
    assert all(chunk.embed_text.startswith(chunk.heading_path[0]) for chunk in parsed.chunks if chunk.heading_path)


def test_markdown_headings_are_embedded_with_the_text(parser: DoclingParser, corpus: Path) -> None:
    parsed = parser.parse((corpus / "md/wiki.md").read_bytes(), file_name="wiki.md", media_type="text/markdown")

    first = parsed.chunks[0]
    assert first.heading_path == ["IBM"]
    assert first.embed_text.startswith("IBM\n")
    assert "International Business Machines" in first.text


def test_corrupt_pdf_is_unreadable_with_a_reason(parser: DoclingParser) -> None:
    with pytest.raises(UnreadableDocument, match=r"broken\.pdf"):
        parser.parse(b"%PDF-1.7\n this is not a real PDF body", file_name="broken.pdf", media_type=PDF)


def test_type_without_reader_is_unreadable(parser: DoclingParser) -> None:
    with pytest.raises(UnreadableDocument, match="no reader"):
        parser.parse(b"x", file_name="x.bin", media_type="application/octet-stream")


@pytest.mark.parametrize(
    ("relative", "media_type", "unit"),
    [
        ("pdf/multi_page.pdf", PDF, "pages"),
        ("pptx/powerpoint_sample.pptx", PPTX, "pages"),
        ("docx/word_sample.docx", DOCX, "items"),
        ("csv/csv-comma.csv", "text/csv", "rows"),
    ],
)
def test_progress_grows_to_the_whole_document_and_leaves_the_chunks_alone(
    parser: DoclingParser, corpus: Path, relative: str, media_type: str, unit: str
) -> None:
    data = (corpus / relative).read_bytes()
    told: list[tuple[int, int, str]] = []
    without = parser.parse(data, file_name=Path(relative).name, media_type=media_type)

    parsed = parser.parse(
        data, file_name=Path(relative).name, media_type=media_type, progress=lambda *update: told.append(update)
    )

    assert parsed.chunks == without.chunks
    done = [update[0] for update in told]
    assert done == sorted(set(done))
    assert done[0] > 0
    total = told[-1][1]
    assert {(update[1], update[2]) for update in told} == {(total, unit)}
    assert done[-1] == total
    if unit == "pages":
        assert total == parsed.page_count


@pytest.mark.filterwarnings("ignore:Headers and captions:UserWarning")  # a heading of normal_4pages.pdf
def test_pdf_progress_counts_pages_as_they_are_converted_then_as_they_are_chunked(
    parser: DoclingParser, corpus_pages_pdf: Callable[[int], bytes]
) -> None:
    told: list[tuple[int, int, str]] = []

    parser.parse(corpus_pages_pdf(24), file_name="long.pdf", media_type=PDF, progress=lambda *u: told.append(u))

    done = [update[0] for update in told]
    assert done == sorted(set(done))
    assert sum(d <= 0.6 * 24 for d in done) >= 10  # conversion: 60 % of each page's worth
    assert sum(d > 0.6 * 24 for d in done) >= 5  # chunking: the rest
    assert done[-1] == 24
