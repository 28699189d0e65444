"""Recognising what an upload is from its bytes, and checking its name agrees.

Guarantee: ``detect_media_type`` accepts a file only when its content is one of the accepted
types and its extension (if any) names that same type; otherwise it raises
``UnsupportedMediaType`` saying what the content is and what is accepted. Content is told by
magic bytes and container structure: the parts of a ZIP (Office Open XML), the ``mimetype``
entry of an OpenDocument file, the root streams of an OLE2 file (legacy Office), Parquet's
``PAR1`` marks, and for text the ``WEBVTT`` line or RFC 822 header block.

Formats read through LibreOffice (legacy Office and OpenDocument) are accepted only where
``soffice`` is installed (``require_converter``), so that such an upload is refused at once
instead of failing later in the parser.
"""

from __future__ import annotations

import codecs
import re
import shutil
import struct
import zipfile
from pathlib import PurePosixPath
from typing import BinaryIO

from ragstream_core.errors import UnprocessableInput, UnsupportedMediaType, UploadTooLarge

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM = "application/vnd.ms-excel.sheet.macroEnabled.12"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PPT = "application/vnd.ms-powerpoint"
PARQUET = "application/vnd.apache.parquet"
HTML = "text/html"
MARKDOWN = "text/markdown"
CSV = "text/csv"
TEXT = "text/plain"
EML = "message/rfc822"
VTT = "text/vtt"

#: extension -> media type, for every type this version parses.
ACCEPTED: dict[str, str] = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".pptx": PPTX,
    ".xlsx": XLSX,
    ".xlsm": XLSM,
    ".odt": ODT,
    ".ods": ODS,
    ".odp": ODP,
    ".doc": DOC,
    ".xls": XLS,
    ".ppt": PPT,
    ".parquet": PARQUET,
    ".html": HTML,
    ".htm": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".csv": CSV,
    ".txt": TEXT,
    ".eml": EML,
    ".vtt": VTT,
}
#: types converted by LibreOffice before parsing: refused where ``soffice`` is missing
NEEDS_LIBREOFFICE = frozenset({DOC, XLS, PPT, ODT, ODS, ODP})
#: Debian packages that install ``soffice`` for documents, spreadsheets and presentations
LIBREOFFICE_PACKAGES = ("libreoffice-writer-nogui", "libreoffice-calc-nogui", "libreoffice-impress-nogui")
#: text content may be named as any of these (the name picks how it is read)
_TEXT_TYPES = {HTML, MARKDOWN, CSV, TEXT}
_OPENDOCUMENT = {ODT, ODS, ODP}
_SNIFF = 64 * 1024
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def accepted_list() -> str:
    return ", ".join(sorted(ACCEPTED))


def _unsupported(file_name: str, what: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(f"cannot accept {file_name!r}: {what}; accepted types: {accepted_list()}")


def require_converter(file_name: str, media_type: str, *, path: str | None = None) -> None:
    """Raise ``UnsupportedMediaType`` when ``media_type`` needs LibreOffice and ``soffice`` is not on ``path``.

    ``path`` is a search path like ``$PATH`` (the default). Types that do not need LibreOffice
    always pass.
    """
    if media_type in NEEDS_LIBREOFFICE and shutil.which("soffice", path=path) is None:
        raise _unsupported(
            file_name,
            f"its type {media_type} is read through LibreOffice, which is not installed on this server "
            f"(install the Debian packages {' '.join(LIBREOFFICE_PACKAGES)})",
        )


#: a ZIP container (DOCX, XLSX, ODF...) may expand to at most this much ...
MAX_EXPANDED_BYTES = 1024 * 1024 * 1024
#: ... and, beyond ``_BOMB_FLOOR`` bytes, at most this many times its compressed size
MAX_EXPANSION_RATIO = 200
_BOMB_FLOOR = 64 * 1024 * 1024
MAX_ZIP_ENTRIES = 50_000


def _check_expansion(archive: zipfile.ZipFile, compressed: int) -> None:
    """Refuse a ZIP bomb before any reader inflates it (declared sizes bind Python's readers)."""
    entries = archive.infolist()
    expanded = sum(i.file_size for i in entries)
    ratio = expanded / max(compressed, 1)
    if len(entries) > MAX_ZIP_ENTRIES:
        raise UploadTooLarge(f"the ZIP container holds {len(entries)} entries; at most {MAX_ZIP_ENTRIES} are accepted")
    if expanded > MAX_EXPANDED_BYTES or (expanded > _BOMB_FLOOR and ratio > MAX_EXPANSION_RATIO):
        raise UploadTooLarge(
            f"the ZIP container expands to {expanded} bytes ({ratio:.0f} times its size); accepted: at most"
            f" {MAX_EXPANDED_BYTES} bytes, and at most {MAX_EXPANSION_RATIO} times its size beyond {_BOMB_FLOOR}"
        )


#: how much of an XML part may come before its root element (declaration, comments)
MAX_XML_PROLOG_BYTES = 64 * 1024
_ROOT_START = re.compile(rb"<[A-Za-z_]")


def _check_no_dtd(archive: zipfile.ZipFile) -> None:
    """Refuse an Office or OpenDocument package whose XML parts declare a DTD.

    A DTD is how XML external entities (``<!ENTITY x SYSTEM "file:///etc/passwd">``) and entity
    expansion bombs come in; Office and LibreOffice never write one in these packages. Only each
    part's prolog is read (at most ``MAX_XML_PROLOG_BYTES``), never a whole part.
    """
    for info in archive.infolist():
        if not info.filename.endswith((".xml", ".rels")) or info.file_size == 0:
            continue
        with archive.open(info) as part:
            head = part.read(MAX_XML_PROLOG_BYTES)
        root = _ROOT_START.search(head)
        prolog = head[: root.start()] if root else head
        if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
            raise UnprocessableInput(
                f"the document's part {info.filename} declares a DTD (<!DOCTYPE>), which can make a reader fetch "
                "files or URLs (XML external entities); accepted: Office and OpenDocument files without DTDs, as "
                "Office and LibreOffice write them"
            )
        markup = head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")  # not XML at all: its reader refuses it
        if markup and root is None and len(head) == MAX_XML_PROLOG_BYTES:
            raise UnprocessableInput(
                f"the document's part {info.filename} has no root element in its first {MAX_XML_PROLOG_BYTES} "
                "bytes; accepted: XML parts whose declaration and comments come to less than that"
            )


def _zip_kind(source: BinaryIO) -> str | None:
    source.seek(0, 2)
    compressed = source.tell()
    source.seek(0)
    try:
        with zipfile.ZipFile(source) as archive:
            _check_expansion(archive, compressed)
            _check_no_dtd(archive)
            names = set(archive.namelist())
            opendocument = archive.read("mimetype")[:100] if "mimetype" in names else b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, EOFError, RuntimeError):
        return None
    finally:
        source.seek(0)
    if "word/document.xml" in names:
        return DOCX
    if "ppt/presentation.xml" in names:
        return PPTX
    if "xl/workbook.xml" in names:
        return XLSX
    if opendocument:
        kind = opendocument.decode("ascii", errors="replace").strip()
        return kind if kind in _OPENDOCUMENT else f"a ZIP container declaring the type {kind!r}"
    return "application/zip"


def _ole2_kind(source: BinaryIO) -> str:
    """What a legacy Office (OLE2 compound) file holds, told by its root streams."""
    try:
        names = ole2_root_names(source)
    except (ValueError, struct.error) as exc:
        return f"a corrupt OLE2 file ({exc})"
    finally:
        source.seek(0)
    if "WordDocument" in names:
        return DOC
    if "PowerPoint Document" in names:
        return PPT
    if "Workbook" in names or "Book" in names:
        return XLS
    return "an OLE2 file that is not a Word, Excel or PowerPoint document"


def ole2_root_names(source: BinaryIO) -> set[str]:
    """Names of the streams and storages at the root of an OLE2 compound file.

    Reads only the header, the FAT and the directory sectors. Raises ``ValueError`` for a
    structure that points outside the file or loops.
    """
    source.seek(0, 2)
    size = source.tell()
    source.seek(0)
    header = source.read(512)
    if len(header) < 512 or not header.startswith(_OLE2_MAGIC):
        raise ValueError("header too short")
    sector_size = 1 << struct.unpack_from("<H", header, 0x1E)[0]
    if sector_size not in (512, 4096):
        raise ValueError(f"sector size {sector_size}")
    sectors = -(-max(0, size - sector_size) // sector_size)  # a cut last sector still counts

    def sector(number: int) -> bytes:
        if number >= sectors:
            raise ValueError(f"sector {number} is beyond the end of the file")
        source.seek((number + 1) * sector_size)
        return source.read(sector_size).ljust(sector_size, b"\0")

    per_sector = sector_size // 4
    fat_sectors = [n for n in struct.unpack_from("<109I", header, 0x4C) if n < 0xFFFFFFFA]
    difat, difat_count = struct.unpack_from("<II", header, 0x44)
    for _ in range(min(difat_count, sectors)):
        if difat >= 0xFFFFFFFA:
            break
        pointers = struct.unpack(f"<{per_sector}I", sector(difat))
        fat_sectors += [n for n in pointers[:-1] if n < 0xFFFFFFFA]
        difat = pointers[-1]
    fat: list[int] = []
    for number in fat_sectors:
        fat.extend(struct.unpack(f"<{per_sector}I", sector(number)))
    directory = b""
    number = struct.unpack_from("<I", header, 0x30)[0]
    for _ in range(sectors + 1):
        if number >= 0xFFFFFFFA:
            break
        directory += sector(number)
        if number >= len(fat):
            raise ValueError("directory chain leaves the FAT")
        number = fat[number]
    else:
        raise ValueError("directory chain loops")
    entries = len(directory) // 128
    if entries == 0:
        raise ValueError("no directory")

    def entry(index: int) -> tuple[str, int, int, int]:
        raw = directory[index * 128 : (index + 1) * 128]
        length = min(struct.unpack_from("<H", raw, 0x40)[0], 64)
        name = raw[: max(0, length - 2)].decode("utf-16-le", errors="replace")
        left, right, child = struct.unpack_from("<III", raw, 0x44)
        return name, left, right, child

    names: set[str] = set()
    pending = [entry(0)[3]]  # the root's children form one red-black tree
    seen: set[int] = set()
    while pending:
        index = pending.pop()
        if index >= entries or index in seen:
            continue
        seen.add(index)
        name, left, right, _child = entry(index)
        names.add(name)
        pending += [left, right]
    return names


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        decoder.decode(head, final=False)  # a multi-byte character cut at the end is fine
    except UnicodeDecodeError:
        return False
    return True


_HEADER_FIELD = re.compile(r"^([!-9;-~]+):")
#: a header block naming at least two of these is an e-mail message
_MAIL_FIELDS = {"from", "to", "cc", "subject", "date", "message-id", "mime-version", "received", "return-path"}


def _looks_like_email(text: str) -> bool:
    """An RFC 822 header block (fields and folded lines) up to the first empty line, naming mail fields."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].startswith("From "):  # mbox separator
        lines = lines[1:]
    fields: set[str] = set()
    for line in lines:
        if not line.strip():
            break
        if line[0] in " \t" and fields:
            continue
        field = _HEADER_FIELD.match(line)
        if field is None:
            return False
        fields.add(field.group(1).lower())
    return len(fields & _MAIL_FIELDS) >= 2


def _text_kind(head: bytes) -> str:
    text = head.decode("utf-8-sig", errors="ignore")
    if re.match(r"WEBVTT(?:[ \t\r\n]|$)", text):
        return VTT
    if _looks_like_email(text):
        return EML
    return TEXT


def _content_type(source: BinaryIO) -> str:
    """The media type the bytes show, or a description of what they are."""
    source.seek(0)
    head = source.read(_SNIFF)
    source.seek(-min(4, len(head)), 2)
    tail = source.read(4)
    source.seek(0)
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(source) or "a corrupt ZIP container"
    if head.startswith(_OLE2_MAGIC):
        return _ole2_kind(source)
    if head.startswith(b"PAR1") and len(head) >= 8 and tail == b"PAR1":
        return PARQUET
    if _looks_like_text(head):
        return _text_kind(head)
    if head.startswith(b"PAR1"):
        return "a truncated Parquet file (no closing PAR1 mark)"
    return "binary data of an unknown type"


def _html_like(source: BinaryIO) -> bool:
    source.seek(0)
    head = source.read(_SNIFF).lower()
    source.seek(0)
    return b"<html" in head or b"<!doctype html" in head or b"<body" in head or b"<p" in head or b"<div" in head


def _text_media_type(file_name: str, extension: str, claimed: str | None, content: str, source: BinaryIO) -> str:
    """The type of text content: as the name says when the content can be that, else its own kind."""
    if claimed is None:
        return content
    if claimed == content:
        return claimed
    if claimed == VTT:
        raise _unsupported(file_name, f"the name says {extension} but the content does not start with WEBVTT")
    if claimed == EML:
        raise _unsupported(file_name, f"the name says {extension} but the content has no e-mail headers")
    if claimed not in _TEXT_TYPES:
        raise _unsupported(file_name, f"the name says {extension} but the content is plain text")
    if claimed == HTML and not _html_like(source):
        raise _unsupported(file_name, f"the name says {extension} but the content has no HTML markup")
    return claimed


def detect_media_type(file_name: str, source: BinaryIO, *, path: str | None = None) -> str:
    """The accepted media type of an upload; raises ``UnsupportedMediaType`` otherwise.

    ``path`` is where ``soffice`` is looked for (``require_converter``); default ``$PATH``.
    """
    extension = PurePosixPath(file_name).suffix.lower()
    claimed = ACCEPTED.get(extension)
    if extension and claimed is None:
        raise _unsupported(file_name, f"extension {extension!r} is not supported")
    content = _content_type(source)
    if content in (TEXT, EML, VTT):
        media_type = _text_media_type(file_name, extension, claimed, content, source)
    elif content == XLSX and claimed == XLSM:
        media_type = XLSM
    elif content not in ACCEPTED.values():
        raise _unsupported(file_name, f"the content is {content}")
    elif claimed is not None and claimed != content:
        raise _unsupported(file_name, f"the name says {extension} but the content is {content}")
    else:
        media_type = content
    require_converter(file_name, media_type, path=path)
    return media_type
