"""PDF structure from the native pipeline's lines, on the corpus PDFs.

The expected headings are the PDFs' own: the lines set in a bold or larger font than the body
text, as docling-parse reports them (font name and line height), checked by eye against the
pages: multi_page.pdf has a bold title and eleven bold section headings, the paper page two
numbered subsections, code_and_formula.pdf one heading per page, normal_4pages.pdf a title, five
numbered sections and their "(n)" subsections.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ragstream_parser.docling_parser import DoclingParser, ParsedDocument
from ragstream_parser.pdf_structure import structure_pdf

PDF = "application/pdf"
CORPUS_PDFS = ["2305.03393v1-pg9.pdf", "code_and_formula.pdf", "multi_page.pdf", "normal_4pages.pdf"]
MULTI_PAGE_TITLE = "The Evolution of the Word Processor"
MULTI_PAGE_SECTIONS = {
    "Pre-Digital Era (19th - Early 20th Century)": 1,
    "The Birth of Word Processing (1960s - 1970s)": 1,
    "The Rise of Personal Computers (1980s)": 1,
    "The Modern Era (1990s - Present)": 2,
    "Future of Word Processing": 2,
    "Specialized Word Processing Tools": 3,
    "Key Features That Changed Word Processing": 3,
    "The Cultural Impact of Word Processors": 3,
    "Word Processors in a Post-Digital Era": 4,
    "A Glimpse Into the Future": 4,
}
KOREAN_TITLE = "코로나-19 관련 보험약관상 재해보험금 지급문제 및 개선과제"
KOREAN_SECTIONS = ["1 들어가며", "2 코로나-19 관련 보험 현황", "3 문제점", "4 개선과제", "5 맺으며"]


@pytest.fixture(scope="module")
def parser() -> DoclingParser:
    return DoclingParser(max_tokens=254)


def parse(parser: DoclingParser, corpus: Path, name: str) -> ParsedDocument:
    return parser.parse((corpus / "pdf" / name).read_bytes(), file_name=name, media_type=PDF)


def convert(parser: DoclingParser, corpus: Path, name: str) -> Any:
    from docling.datamodel.base_models import DocumentStream

    stream = DocumentStream(name=name, stream=io.BytesIO((corpus / "pdf" / name).read_bytes()))
    return parser.converter.convert(stream)


def headings_of(document: Any) -> list[tuple[str, int, int]]:
    """(text, level, page) of each heading; the title has level 0."""
    from docling_core.types.doc import SectionHeaderItem, TitleItem

    return [
        (item.text, item.level if isinstance(item, SectionHeaderItem) else 0, item.prov[0].page_no)
        for item, _ in document.iterate_items()
        if isinstance(item, TitleItem | SectionHeaderItem)
    ]


def test_pdf_chunks_carry_the_title_and_section_as_heading_path(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, corpus, "multi_page.pdf")

    paths = {tuple(chunk.heading_path) for chunk in parsed.chunks}

    assert all(chunk.heading_path for chunk in parsed.chunks)
    assert (MULTI_PAGE_TITLE,) in paths
    assert {(MULTI_PAGE_TITLE, section) for section in MULTI_PAGE_SECTIONS} <= paths
    assert all(chunk.embed_text.startswith("\n".join(chunk.heading_path) + "\n") for chunk in parsed.chunks)


def test_pdf_headings_are_found_by_font_with_their_levels_and_pages(parser: DoclingParser, corpus: Path) -> None:
    document = structure_pdf(convert(parser, corpus, "multi_page.pdf"))

    headings = headings_of(document)

    assert headings[0] == (MULTI_PAGE_TITLE, 0, 1)
    assert headings[1:] == [(text, 1, page) for text, page in MULTI_PAGE_SECTIONS.items()]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2305.03393v1-pg9.pdf", [("5.1 Hyper Parameter Optimization", 1, 1), ("5.2 Quantitative Results", 1, 1)]),
        ("code_and_formula.pdf", [("JavaScript Code Example", 1, 1), ("Formula", 1, 2)]),
    ],
)
def test_numbered_and_latex_headings_are_found(
    parser: DoclingParser, corpus: Path, name: str, expected: list[tuple[str, int, int]]
) -> None:
    document = structure_pdf(convert(parser, corpus, name))

    assert headings_of(document) == expected


def test_two_column_pdf_gets_title_sections_and_subsections(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, corpus, "normal_4pages.pdf")

    paths = [chunk.heading_path for chunk in parsed.chunks]

    assert [KOREAN_TITLE, "1 들어가며"] in paths
    assert [KOREAN_TITLE, "5 맺으며"] in paths
    assert [KOREAN_TITLE, "2 코로나-19 관련 보험 현황", "(1) 「감염병의 예방 및 관리에 관한 법률」 개정"] in paths
    assert [KOREAN_TITLE, "3 문제점", "(4) 신종위험에 대비한 상품 부족"] in paths
    sections = [path[1] for path in paths if len(path) > 1]
    assert sorted(set(sections)) == KOREAN_SECTIONS
    assert sections == sorted(sections)  # in reading order


@pytest.mark.parametrize("name", CORPUS_PDFS)
def test_lines_are_merged_into_far_fewer_paragraphs(parser: DoclingParser, corpus: Path, name: str) -> None:
    result = convert(parser, corpus, name)
    lines = len(result.document.texts)

    paragraphs = len(structure_pdf(result).texts)

    assert paragraphs <= 0.45 * lines


def test_a_paragraph_is_one_item_with_its_lines_joined(parser: DoclingParser, corpus: Path) -> None:
    document = structure_pdf(convert(parser, corpus, "multi_page.pdf"))

    texts = [item.text for item in document.texts]

    assert (
        "The origins of word processing can be traced back to the invention of the typewriter in the "
        "mid-19th century. Patented in 1868 by Christopher Latham Sholes, the typewriter revolutionized "
        "written communication by enabling people to produce legible, professional documents more "
        "efficiently than handwriting."
    ) in texts
    assert any(text.startswith("• Wang Laboratories: In the 1970s") for text in texts)  # a list item of its own


def test_code_keeps_its_lines_and_indentation(parser: DoclingParser, corpus: Path) -> None:
    from docling_core.types.doc import CodeItem

    document = structure_pdf(convert(parser, corpus, "code_and_formula.pdf"))

    code = [item.text for item in document.texts if isinstance(item, CodeItem)]

    assert code == ["function add(a, b) {\n    return a + b;\n}\nconsole.log(add(3, 5));"]


@pytest.mark.parametrize("name", CORPUS_PDFS)
def test_every_item_keeps_the_page_of_its_lines(parser: DoclingParser, corpus: Path, name: str) -> None:
    result = convert(parser, corpus, name)
    characters_on_page = {
        page.page_no: Counter("".join(cell.text for cell in page.parsed_page.textline_cells).replace(" ", ""))
        for page in result.pages
    }

    document = structure_pdf(result)

    assert document.num_pages() == len(result.pages)
    for item in document.texts:
        (prov,) = item.prov
        characters = Counter(item.text.replace(" ", "").replace("\n", ""))
        assert set(characters - characters_on_page[prov.page_no]) <= {"•"}, item.text


def test_pdf_chunk_pages_follow_the_sections(parser: DoclingParser, corpus: Path) -> None:
    parsed = parse(parser, corpus, "multi_page.pdf")

    for chunk in parsed.chunks:
        section = chunk.heading_path[-1]
        if section in MULTI_PAGE_SECTIONS:
            assert chunk.pages[0] == MULTI_PAGE_SECTIONS[section]
    assert {page for chunk in parsed.chunks for page in chunk.pages} == {1, 2, 3, 4, 5}


def test_page_numbers_and_running_headers_are_left_out(parser: DoclingParser, corpus: Path) -> None:
    code = parse(parser, corpus, "code_and_formula.pdf")
    korean = parse(parser, corpus, "normal_4pages.pdf")

    assert all(chunk.text.strip() != "1" and not chunk.text.endswith("\n1") for chunk in code.chunks)
    assert not any(chunk.text.startswith("이슈와 논점") for chunk in korean.chunks if chunk.pages[0] > 1)


@pytest.mark.parametrize("name", CORPUS_PDFS)
def test_no_pdf_chunk_exceeds_the_model_limit(parser: DoclingParser, corpus: Path, name: str) -> None:
    parsed = parse(parser, corpus, name)

    assert parsed.chunks
    assert max(chunk.tokens for chunk in parsed.chunks) <= 254
    assert all(parser.tokenizer.count_tokens(chunk.embed_text) == chunk.tokens for chunk in parsed.chunks)


@pytest.fixture(scope="module")
def libreoffice_pdf(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """word_sample.docx printed to PDF by LibreOffice, whose line boxes hold only the glyphs drawn."""
    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.fail(
            "LibreOffice (soffice) is not installed: `make` installs libreoffice-writer-nogui where apt is"
            " available; install it to run the parser tests (the legacy-format tests need it too)"
        )
    out = tmp_path_factory.mktemp("libreoffice")
    profile = f"-env:UserInstallation={(out / 'profile').as_uri()}"
    docx = str(corpus / "docx/word_sample.docx")
    subprocess.run(
        [soffice, profile, "--headless", "--convert-to", "pdf", "--outdir", str(out), docx],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return out / "word_sample.pdf"


def test_headings_are_found_where_line_boxes_hold_only_the_glyphs(parser: DoclingParser, libreoffice_pdf: Path) -> None:
    parsed = parser.parse(libreoffice_pdf.read_bytes(), file_name="word_sample.pdf", media_type=PDF)

    paths = [chunk.heading_path for chunk in parsed.chunks]

    # the headings of the DOCX itself, as Docling reads them there
    assert ["Swimming in the lake", "Let's swim!"] in paths
    assert ["Swimming in the lake", "Let's swim!", "Let's eat"] in paths
    assert any("\n• You can relax and look around\n• Paddle about" in chunk.text for chunk in parsed.chunks)
