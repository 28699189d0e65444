"""Recognising uploads from their bytes: every accepted corpus file, and the mislabelled or unsupported ones."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ragstream_core.errors import UnsupportedMediaType
from ragstream_devstack.testing import CORPUS
from ragstream_gateway.media import (
    CSV,
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PPTX,
    XLSM,
    XLSX,
    accepted_list,
    detect_media_type,
)

EXPECTED = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".pptx": PPTX,
    ".xlsx": XLSX,
    ".xlsm": XLSM,
    ".html": HTML,
    ".md": MARKDOWN,
    ".csv": CSV,
}
ACCEPTED_FOLDERS = ("pdf", "docx", "pptx", "xlsx", "html", "md", "csv")
UNSUPPORTED_FOLDERS = ("doc", "xls", "odf", "email", "webvtt")


def corpus_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (CORPUS.resolve() / folder).iterdir() if p.is_file())


def detect(file_name: str, data: bytes) -> str:
    return detect_media_type(file_name, io.BytesIO(data))


def first(folder: str) -> bytes:
    return corpus_files(folder)[0].read_bytes()


@pytest.mark.parametrize("path", corpus_files(*ACCEPTED_FOLDERS), ids=lambda p: p.name)
def test_every_accepted_corpus_file_is_recognised_as_its_type(path: Path) -> None:
    with path.open("rb") as source:
        media_type = detect_media_type(path.name, source)

    assert media_type == EXPECTED[path.suffix]


def test_every_accepted_format_of_the_corpus_is_covered() -> None:
    suffixes = {p.suffix for p in corpus_files(*ACCEPTED_FOLDERS)}

    assert suffixes == set(EXPECTED)


def test_detection_leaves_the_stream_at_its_start_for_the_next_reader() -> None:
    source = io.BytesIO(first("docx"))
    source.seek(100)

    detect_media_type("report.docx", source)

    assert source.tell() == 0


def test_upper_case_extension_is_recognised() -> None:
    assert detect("REPORT.PDF", first("pdf")) == PDF


def test_text_without_extension_is_plain_text() -> None:
    assert detect("notes", b"just some words\n") == "text/plain"


def test_pdf_name_with_docx_content_is_rejected_naming_both() -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        detect("report.pdf", first("docx"))

    message = str(raised.value)
    assert "the name says .pdf but the content is" in message
    assert DOCX in message
    assert accepted_list() in message


def test_docx_name_with_pdf_bytes_is_rejected() -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        detect("letter.docx", first("pdf"))

    assert f"the name says .docx but the content is {PDF}" in str(raised.value)
    assert accepted_list() in str(raised.value)


def test_html_name_with_plain_text_is_rejected_for_lack_of_markup() -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        detect("page.html", b"Ducks are birds. They swim in lakes.\n")

    assert "no HTML markup" in str(raised.value)
    assert accepted_list() in str(raised.value)


def test_markdown_name_with_pdf_bytes_is_rejected() -> None:
    with pytest.raises(UnsupportedMediaType, match=r"the name says \.md but the content is application/pdf"):
        detect("notes.md", first("pdf"))


def test_legacy_word_document_is_rejected_by_its_extension(corpus: Path) -> None:
    legacy = corpus / "doc" / "legacy_sample.doc"

    with legacy.open("rb") as source, pytest.raises(UnsupportedMediaType) as raised:
        detect_media_type(legacy.name, source)

    assert "extension '.doc' is not supported" in str(raised.value)
    assert accepted_list() in str(raised.value)


def test_legacy_word_content_renamed_to_docx_is_rejected_as_legacy_ole2(corpus: Path) -> None:
    data = (corpus / "doc" / "legacy_sample.doc").read_bytes()

    with pytest.raises(UnsupportedMediaType, match="legacy OLE2"):
        detect("modern.docx", data)


def test_unknown_extension_is_rejected_listing_accepted_types() -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        detect("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00")

    assert "extension '.exe' is not supported" in str(raised.value)
    assert accepted_list() in str(raised.value)


@pytest.mark.parametrize("path", corpus_files(*UNSUPPORTED_FOLDERS), ids=lambda p: p.name)
def test_corpus_formats_this_version_does_not_parse_are_rejected(path: Path) -> None:
    with path.open("rb") as source, pytest.raises(UnsupportedMediaType, match="accepted types: "):
        detect_media_type(path.name, source)


def test_unknown_binary_without_extension_is_rejected() -> None:
    with pytest.raises(UnsupportedMediaType, match="binary data of an unknown type"):
        detect("blob", bytes(range(256)))


def test_truncated_zip_is_rejected_as_corrupt() -> None:
    with pytest.raises(UnsupportedMediaType, match="corrupt ZIP"):
        detect("cut.docx", first("docx")[:200])
