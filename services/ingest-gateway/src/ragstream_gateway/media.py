"""Recognising what an upload is from its bytes, and checking its name agrees.

Guarantee: ``detect_media_type`` accepts a file only when its content is one of the accepted
types and its extension (if any) names that same type; otherwise it raises
``UnsupportedMediaType`` saying what the content is and what is accepted.
"""

from __future__ import annotations

import codecs
import zipfile
from pathlib import PurePosixPath
from typing import BinaryIO

from ragstream_core.errors import UnsupportedMediaType

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM = "application/vnd.ms-excel.sheet.macroEnabled.12"
HTML = "text/html"
MARKDOWN = "text/markdown"
CSV = "text/csv"
TEXT = "text/plain"

#: extension -> media type, for every type this version parses.
ACCEPTED: dict[str, str] = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".pptx": PPTX,
    ".xlsx": XLSX,
    ".xlsm": XLSM,
    ".html": HTML,
    ".htm": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".csv": CSV,
    ".txt": TEXT,
}
_TEXT_TYPES = {HTML, MARKDOWN, CSV, TEXT}
_SNIFF = 64 * 1024


def accepted_list() -> str:
    return ", ".join(sorted(ACCEPTED))


def _unsupported(file_name: str, what: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(f"cannot accept {file_name!r}: {what}; accepted types: {accepted_list()}")


def _zip_kind(source: BinaryIO) -> str | None:
    source.seek(0)
    try:
        with zipfile.ZipFile(source) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        return None
    finally:
        source.seek(0)
    if "word/document.xml" in names:
        return DOCX
    if "ppt/presentation.xml" in names:
        return PPTX
    if "xl/workbook.xml" in names:
        return XLSX
    if "mimetype" in names:
        return "application/vnd.oasis.opendocument"
    return "application/zip"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        decoder.decode(head, final=False)  # a multi-byte character cut at the end is fine
    except UnicodeDecodeError:
        return False
    return True


def _content_type(source: BinaryIO) -> str:
    """The media type the bytes show, or a description of what they are."""
    source.seek(0)
    head = source.read(_SNIFF)
    source.seek(0)
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(source) or "a corrupt ZIP container"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "a legacy OLE2 file (.doc/.xls/.ppt)"
    if _looks_like_text(head):
        return TEXT
    return "binary data of an unknown type"


def _html_like(source: BinaryIO) -> bool:
    source.seek(0)
    head = source.read(_SNIFF).lower()
    source.seek(0)
    return b"<html" in head or b"<!doctype html" in head or b"<body" in head or b"<p" in head or b"<div" in head


def detect_media_type(file_name: str, source: BinaryIO) -> str:
    """The accepted media type of an upload; raises ``UnsupportedMediaType`` otherwise."""
    extension = PurePosixPath(file_name).suffix.lower()
    claimed = ACCEPTED.get(extension)
    if extension and claimed is None:
        raise _unsupported(file_name, f"extension {extension!r} is not supported")
    content = _content_type(source)
    if content == TEXT:
        if claimed is None:
            return TEXT
        if claimed not in _TEXT_TYPES:
            raise _unsupported(file_name, f"the name says {extension} but the content is plain text")
        if claimed == HTML and not _html_like(source):
            raise _unsupported(file_name, f"the name says {extension} but the content has no HTML markup")
        return claimed
    if content == XLSX and claimed == XLSM:
        return XLSM
    if content not in ACCEPTED.values():
        raise _unsupported(file_name, f"the content is {content}")
    if claimed is not None and claimed != content:
        raise _unsupported(file_name, f"the name says {extension} but the content is {content}")
    return content
