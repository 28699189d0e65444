"""The collection's chunking strategies on real documents of the shared corpus."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docling.chunking import HybridChunker

from ragstream_parser.chunking import DEFAULT_OVERLAP_TOKENS, STRATEGIES
from ragstream_parser.docling_parser import DoclingParser, ParsedDocument, ParseOptions

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MAX_TOKENS = 254
DOCUMENTS = [
    ("pdf/multi_page.pdf", PDF),
    ("pdf/normal_4pages.pdf", PDF),
    ("docx/word_sample.docx", DOCX),
    ("docx/word_tables.docx", DOCX),
    ("html/wiki_duck.html", "text/html"),
    ("md/wiki.md", "text/markdown"),
]


@pytest.fixture(scope="module")
def parser() -> DoclingParser:
    return DoclingParser(max_tokens=MAX_TOKENS)


def parse(parser: DoclingParser, corpus: Path, relative: str, media_type: str, chunking: str) -> ParsedDocument:
    data = (corpus / relative).read_bytes()
    return parser.parse(data, file_name=Path(relative).name, media_type=media_type, options=ParseOptions(chunking))


def overlap_of(first: str, second: str) -> str:
    """The longest end of ``first`` that ``second`` starts with."""
    return next((second[:k] for k in range(min(len(first), len(second)), 0, -1) if first.endswith(second[:k])), "")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("relative", "media_type"), DOCUMENTS)
def test_every_strategy_yields_chunks_within_the_model_limit(
    parser: DoclingParser, corpus: Path, relative: str, media_type: str, strategy: str
) -> None:
    parsed = parse(parser, corpus, relative, media_type, strategy)

    assert parsed.chunks
    assert [chunk.index for chunk in parsed.chunks] == list(range(len(parsed.chunks)))
    assert all(chunk.text.strip() for chunk in parsed.chunks)
    assert all(parser.tokenizer.count_tokens(chunk.embed_text) == chunk.tokens for chunk in parsed.chunks)
    assert max(chunk.tokens for chunk in parsed.chunks) <= MAX_TOKENS


def test_token_windows_overlap_their_predecessor(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, corpus, "html/wiki_duck.html", "text/html", "tokens")

    windows = parsed.chunks

    assert len(windows) > 10
    for previous, window in itertools.pairwise(windows):
        shared = overlap_of(previous.text, window.text)
        assert 0 < parser.tokenizer.count_tokens(shared) <= DEFAULT_OVERLAP_TOKENS, window.index
        assert window.embed_text == window.text


def test_token_windows_of_prose_are_full_and_cut_between_words(parser: DoclingParser, corpus: Path) -> None:
    windows = parse(parser, corpus, "pdf/multi_page.pdf", PDF, "tokens").chunks

    assert all(window.tokens >= MAX_TOKENS - 16 for window in windows[:-1])
    for previous, window in itertools.pairwise(windows):
        shared = overlap_of(previous.text, window.text)
        assert previous.text[-len(shared) - 1].isspace(), window.text[:40]


def test_token_windows_cover_the_document_in_reading_order(parser: DoclingParser, corpus: Path) -> None:
    structure = parse(parser, corpus, "pdf/multi_page.pdf", PDF, "structure")

    windows = parse(parser, corpus, "pdf/multi_page.pdf", PDF, "tokens").chunks

    pieces = [windows[0].text]
    pieces += [
        window.text[len(overlap_of(previous.text, window.text)) :] for previous, window in itertools.pairwise(windows)
    ]
    words = " ".join(re.findall(r"\w+", "".join(pieces)))
    for chunk in structure.chunks:
        assert " ".join(re.findall(r"\w+", chunk.text)) in words
    assert [window.pages[0] for window in windows] == sorted(window.pages[0] for window in windows)
    assert {page for window in windows for page in window.pages} == {1, 2, 3, 4, 5}


def test_markdown_chunks_are_the_sections_of_the_document(parser: DoclingParser, corpus: Path) -> None:
    source = (corpus / "md/duck.md").read_text()
    section_titles = [line.lstrip("#").strip() for line in source.splitlines() if line.startswith("#")]

    parsed = parse(parser, corpus, "md/duck.md", "text/markdown", "markdown")

    leaves = [chunk.heading_path[-1] for chunk in parsed.chunks if chunk.heading_path]
    assert leaves == [title for title in section_titles if title in leaves]
    assert len(leaves) == len(set(leaves))  # one chunk per section that fits
    for chunk in parsed.chunks:
        assert chunk.embed_text == "\n".join([*chunk.heading_path, chunk.text])
        assert not any(line.startswith("#") for line in chunk.text.splitlines())


def test_markdown_sections_follow_the_heading_hierarchy(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, corpus, "md/wiki.md", "text/markdown", "markdown")

    paths = [chunk.heading_path for chunk in parsed.chunks]

    assert paths[0] == ["IBM"]
    assert ["IBM", "1910s\u20131950s"] in paths
    assert paths[-1] == ["IBM", "1960s\u20131980s"]
    assert "In 1961, IBM developed the SABRE reservation system" in parsed.chunks[-1].text


def test_a_long_markdown_section_is_split_at_paragraphs(parser: DoclingParser, corpus: Path) -> None:
    structure = parse(parser, corpus, "md/wiki.md", "text/markdown", "structure")

    parsed = parse(parser, corpus, "md/wiki.md", "text/markdown", "markdown")

    intro = [chunk for chunk in parsed.chunks if chunk.heading_path == ["IBM"]]
    assert len(intro) > 1
    paragraphs = [p for chunk in structure.chunks if chunk.heading_path == ["IBM"] for p in chunk.text.split("\n")]
    pieces = [p for chunk in intro for p in chunk.text.split("\n\n")]
    assert pieces == paragraphs  # whole paragraphs, in order, none cut


def test_pdf_markdown_sections_keep_their_pages(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, corpus, "pdf/multi_page.pdf", PDF, "markdown")

    by_section = {chunk.heading_path[-1]: chunk.pages for chunk in parsed.chunks}

    assert by_section["The Modern Era (1990s - Present)"] == [2]
    assert by_section["The Rise of Personal Computers (1980s)"] == [1, 2]


def test_unknown_strategy_is_refused_with_the_accepted_names(parser: DoclingParser, corpus: Path) -> None:
    with pytest.raises(ValueError, match=r"'sentences'.*accepted: structure, tokens, markdown"):
        parse(parser, corpus, "md/wiki.md", "text/markdown", "sentences")


def converted(parser: DoclingParser, data: bytes, name: str) -> Any:
    """The ``DoclingDocument`` the parser chunks (for a PDF, the one ``structure_pdf`` rebuilds)."""
    from docling.datamodel.base_models import DocumentStream

    from ragstream_parser.pdf_structure import structure_pdf

    result = parser.converter.convert(DocumentStream(name=name, stream=io.BytesIO(data)))
    return structure_pdf(result) if name.endswith(".pdf") else result.document


@pytest.mark.filterwarnings("ignore:Headers and captions:UserWarning")  # a heading of normal_4pages.pdf
@pytest.mark.parametrize(
    "relative",
    [
        "pdf/2305.03393v1-pg9.pdf",
        "pdf/code_and_formula.pdf",
        "pdf/multi_page.pdf",
        "pdf/normal_4pages.pdf",
        "docx/word_tables.docx",
        "html/wiki_duck.html",
        "md/wiki.md",
        "long.pdf",
    ],
)
def test_structure_chunks_made_as_the_document_is_read_are_those_of_docling(
    parser: DoclingParser, corpus: Path, corpus_pages_pdf: Callable[[int], bytes], relative: str
) -> None:
    data = corpus_pages_pdf(30) if relative == "long.pdf" else (corpus / relative).read_bytes()
    document = converted(parser, data, Path(relative).name)
    passed: list[Any] = []

    streamed = list(parser.chunking.hybrid.stream(document, passed=passed.extend))

    all_at_once = HybridChunker.chunk(parser.chunking.hybrid, document)  # splits all, then merges all
    assert [c.export_json_dict() for c in streamed] == [c.export_json_dict() for c in all_at_once]
    assert {item.self_ref for c in streamed for item in c.meta.doc_items} <= {item.self_ref for item in passed}
