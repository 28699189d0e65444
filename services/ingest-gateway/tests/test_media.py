"""Recognising uploads from their bytes: every accepted corpus file, and the mislabelled or unsupported ones."""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ragstream_core.errors import UnprocessableInput, UnsupportedMediaType, UploadTooLarge
from ragstream_devstack.testing import CORPUS
from ragstream_gateway.media import (
    CSV,
    DOC,
    DOCX,
    EML,
    HTML,
    MARKDOWN,
    MAX_XML_PROLOG_BYTES,
    ODP,
    ODS,
    ODT,
    PARQUET,
    PDF,
    PPT,
    PPTX,
    TEXT,
    VTT,
    XLS,
    XLSM,
    XLSX,
    accepted_list,
    detect_media_type,
    require_converter,
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
    ".doc": DOC,
    ".xls": XLS,
    ".odt": ODT,
    ".ods": ODS,
    ".eml": EML,
    ".vtt": VTT,
}
ACCEPTED_FOLDERS = ("pdf", "docx", "pptx", "xlsx", "html", "md", "csv", "doc", "xls", "odf", "email", "webvtt")


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


def test_unknown_extension_is_rejected_listing_accepted_types() -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        detect("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00")

    assert "extension '.exe' is not supported" in str(raised.value)
    assert accepted_list() in str(raised.value)


def test_unknown_binary_without_extension_is_rejected() -> None:
    with pytest.raises(UnsupportedMediaType, match="binary data of an unknown type"):
        detect("blob", bytes(range(256)))


def test_truncated_zip_is_rejected_as_corrupt() -> None:
    with pytest.raises(UnsupportedMediaType, match="corrupt ZIP"):
        detect("cut.docx", first("docx")[:200])


# ---- formats read through LibreOffice, Parquet, e-mail, WebVTT -----------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A .ppt and an .odp made by the real LibreOffice from a corpus presentation (the corpus has none)."""
    work = tmp_path_factory.mktemp("soffice")
    source = work / "slides.pptx"
    source.write_bytes(first("pptx"))
    made = {}
    for target in ("ppt", "odp"):
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation={(work / 'profile').as_uri()}",
                "--headless",
                "--convert-to",
                target,
                "--outdir",
                str(work),
                str(source),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        made[target] = (work / f"slides.{target}").read_bytes()
    return made


def parquet_bytes() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"Region": ["North", "South"], "Sales": [120, 95]}), sink)
    return sink.getvalue()


EMAIL = b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: Lunch\r\n\r\nNoon at the pond?\r\n"
SUBTITLES = b"WEBVTT\n\n00:01.000 --> 00:04.000\n<v Ann>Ducks are waterfowl.\n"


def test_powerpoint_97_file_is_recognised_by_its_ole2_streams(converted: dict[str, bytes]) -> None:
    assert detect("slides.ppt", converted["ppt"]) == PPT


def test_opendocument_presentation_is_recognised_by_its_mimetype_entry(converted: dict[str, bytes]) -> None:
    assert detect("slides.odp", converted["odp"]) == ODP


@pytest.mark.parametrize(("folder", "media_type"), [("doc", DOC), ("xls", XLS)], ids=["word", "excel"])
def test_legacy_office_file_without_extension_is_recognised_by_content(folder: str, media_type: str) -> None:
    assert detect("scan", first(folder)) == media_type


def test_parquet_written_by_pyarrow_is_recognised_with_or_without_extension() -> None:
    data = parquet_bytes()

    assert (detect("sales.parquet", data), detect("sales", data)) == (PARQUET, PARQUET)


def test_email_and_subtitles_without_extension_are_recognised_by_their_text() -> None:
    assert (detect("message", EMAIL), detect("captions", SUBTITLES)) == (EML, VTT)


def test_plain_text_file_is_plain_text() -> None:
    assert detect("notes.txt", b"Ducks are birds.\nThey swim.\n") == TEXT


def test_text_name_wins_over_mail_like_content() -> None:
    assert detect("saved-mail.txt", EMAIL) == TEXT


def test_markdown_with_metadata_lines_is_not_taken_for_email() -> None:
    assert detect("notes", b"Title: Ducks\nAuthor: Ann\n\n# Ducks\n") == TEXT


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("report.doc", first("docx"), f"the name says .doc but the content is {DOCX}"),
        ("budget.xls", first("doc"), f"the name says .xls but the content is {DOC}"),
        ("letter.docx", first("doc"), f"the name says .docx but the content is {DOC}"),
        ("sheet.odt", (CORPUS.resolve() / "odf" / "odf_table_with_title_01.ods").read_bytes(), f"content is {ODS}"),
        ("deck.ppt", first("xls"), f"the name says .ppt but the content is {XLS}"),
        ("mail.eml", b"Just a note, no headers.\n", "the name says .eml but the content has no e-mail headers"),
        ("talk.vtt", b"# Talk\n\nSome words.\n", "the name says .vtt but the content does not start with WEBVTT"),
        ("table.parquet", b"Region,Sales\nNorth,120\n", "the name says .parquet but the content is plain text"),
        ("table.csv", parquet_bytes(), f"the name says .csv but the content is {PARQUET}"),
        ("mail.eml", SUBTITLES, "the name says .eml but the content has no e-mail headers"),
    ],
    ids=[
        "doc-is-zip",
        "xls-is-word",
        "docx-is-word-97",
        "odt-is-ods",
        "ppt-is-excel",
        "eml-is-text",
        "vtt-is-markdown",
        "parquet-is-csv",
        "csv-is-parquet",
        "eml-is-vtt",
    ],
)
def test_name_contradicting_content_is_rejected_naming_both(name: str, data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        detect(name, data)

    assert message in str(raised.value)
    assert accepted_list() in str(raised.value)


def test_truncated_parquet_is_rejected() -> None:
    with pytest.raises(UnsupportedMediaType, match="truncated Parquet"):
        detect("sales.parquet", parquet_bytes()[:-10])


def test_ole2_file_cut_after_its_header_is_rejected_as_corrupt() -> None:
    with pytest.raises(UnsupportedMediaType, match="corrupt OLE2"):
        detect("cut.doc", first("doc")[:512])


def test_zip_declaring_another_opendocument_type_is_rejected() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("mimetype", "application/epub+zip")
        zipped.writestr("content.opf", "<package/>")

    with pytest.raises(UnsupportedMediaType, match="declaring the type 'application/epub\\+zip'"):
        detect("book.odt", archive.getvalue())


# ---- LibreOffice must be installed for the types it converts -------------------------------------


@pytest.mark.parametrize("folder", ["doc", "xls", "odf"])
def test_types_read_through_libreoffice_are_refused_where_soffice_is_missing(folder: str, tmp_path: Path) -> None:
    path = corpus_files(folder)[0]

    with pytest.raises(UnsupportedMediaType) as raised:
        detect_media_type(path.name, io.BytesIO(path.read_bytes()), path=str(tmp_path))

    message = str(raised.value)
    assert "LibreOffice, which is not installed" in message
    assert "libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui" in message
    assert accepted_list() in message


def test_missing_soffice_does_not_affect_other_types(tmp_path: Path) -> None:
    assert detect_media_type("a.pdf", io.BytesIO(first("pdf")), path=str(tmp_path)) == PDF


def test_converter_check_follows_the_search_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require_converter("a.doc", DOC)  # soffice is installed here (make install puts it there)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(UnsupportedMediaType, match="not installed"):
        require_converter("a.doc", DOC)


def zip_bomb(expanded_mib: int, *, name: str = "word/document.xml") -> bytes:
    """A DOCX-shaped ZIP whose one entry inflates ``expanded_mib`` MiB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open(name, "w", force_zip64=True) as entry:
            block = b"\0" * (1024 * 1024)
            for _ in range(expanded_mib):
                entry.write(block)
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_before_anything_inflates_it() -> None:
    bomb = zip_bomb(100)

    with pytest.raises(UploadTooLarge) as raised:
        detect("report.docx", bomb)

    assert len(bomb) < 1024 * 1024
    assert "expands to 104857" in str(raised.value)
    assert "times its size" in str(raised.value)


def test_a_highly_compressible_but_small_document_is_accepted() -> None:
    assert detect("small.docx", zip_bomb(8)) == DOCX


def with_part(package: bytes, name: str, patch: Callable[[bytes], bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info.filename, patch(data) if info.filename == name else data)
    return out.getvalue()


XXE = b'<!DOCTYPE w:document [<!ENTITY file SYSTEM "file:///etc/passwd">]>'


def test_a_docx_declaring_external_entities_is_422_before_any_reader_parses_it() -> None:
    hostile = with_part(first("docx"), "word/document.xml", lambda xml: xml.replace(b"?>", b"?>" + XXE, 1))

    with pytest.raises(UnprocessableInput, match=r"part word/document\.xml declares a DTD"):
        detect("report.docx", hostile)


def test_a_dtd_hidden_behind_a_long_comment_is_found_too() -> None:
    padding = b"<!--" + b" " * 40_000 + b"-->"
    hostile = with_part(first("docx"), "word/document.xml", lambda xml: xml.replace(b"?>", b"?>" + padding + XXE, 1))

    with pytest.raises(UnprocessableInput, match="declares a DTD"):
        detect("report.docx", hostile)


def test_a_prolog_longer_than_the_limit_is_refused() -> None:
    padding = b"<!--" + b" " * (MAX_XML_PROLOG_BYTES + 10) + b"-->"
    hostile = with_part(first("docx"), "word/document.xml", lambda xml: xml.replace(b"?>", b"?>" + padding, 1))

    with pytest.raises(UnprocessableInput, match="has no root element in its first"):
        detect("report.docx", hostile)
