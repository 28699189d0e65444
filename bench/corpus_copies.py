"""Distinct copies of the corpus files, so the gateway's SHA-256 deduplication never merges two.

Each copy differs from the original only where readers do not look: a PDF gets a comment
line after ``%%EOF``, an OOXML or ODF file (a ZIP) gets an archive comment, a legacy OLE2 file
trailing bytes after its last sector, an HTML file gets an HTML comment at its end, a Markdown,
CSV, e-mail or WebVTT file gets a number of trailing blank lines (which their readers skip).
The parsed text, and so the chunks, are the same as the original's.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

#: what ``make bench`` ingests: every format of the corpus
SUPPORTED = frozenset(
    {".pdf", ".docx", ".pptx", ".xlsx", ".xlsm", ".html", ".htm", ".md", ".csv", ".odt", ".ods", ".odp"}
    | {".eml", ".vtt", ".doc", ".xls", ".ppt"}
)
_ZIP = frozenset({".docx", ".pptx", ".xlsx", ".xlsm", ".odt", ".ods", ".odp"})
_HTML = frozenset({".html", ".htm"})
_PLAIN_TEXT = frozenset({".md", ".csv", ".eml", ".vtt"})
_OLE2 = frozenset({".doc", ".xls", ".ppt"})


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    format: str  # the folder of the corpus it comes from: pdf, docx, html, ...

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()


@dataclass(frozen=True)
class Copy:
    source: CorpusFile
    number: int
    file_name: str
    data: bytes


def supported_files(corpus: Path) -> list[CorpusFile]:
    """The supported documents of the corpus' format folders, sorted; files at its root (README) are not documents."""
    files = [
        CorpusFile(path, path.parent.name)
        for path in corpus.glob("*/*")
        if path.is_file() and path.suffix.lower() in SUPPORTED
    ]
    return sorted(files, key=lambda f: (f.format, f.path.name))


def skipped_files(corpus: Path) -> list[Path]:
    """The documents of the format folders that this version does not parse."""
    return sorted(p for p in corpus.glob("*/*") if p.is_file() and p.suffix.lower() not in SUPPORTED)


def distinct_copy(source: CorpusFile, number: int) -> Copy:
    """Copy ``number`` of ``source``: bytes unique to (file, number), content unchanged for a reader."""
    data = source.path.read_bytes()
    mark = f"ragstream-bench-copy-{number}"
    suffix = source.suffix
    if suffix == ".pdf":
        tail = b"" if data.endswith((b"\n", b"\r")) else b"\n"
        data = data + tail + f"%{mark}\n".encode()
    elif suffix in _ZIP:
        data = _with_zip_comment(data, mark.encode())
    elif suffix in _OLE2:
        # bytes after the last sector: readers address sectors by number and never reach them
        data = data + mark.encode()
    elif suffix in _HTML:
        data = data.rstrip(b"\r\n") + f"\n<!-- {mark} -->\n".encode()
    elif suffix in _PLAIN_TEXT:
        # trailing blank lines: an HTML comment would send Docling's Markdown reader down its
        # HTML path, which rewrites typographic quotes and dashes (different chunks)
        data = data.rstrip(b"\r\n") + b"\n" * (number + 1)
    else:
        raise ValueError(f"no way to copy {source.path.name!r}; supported: {', '.join(sorted(SUPPORTED))}")
    file_name = f"{source.path.stem}--copy{number:03d}{source.path.suffix}"
    return Copy(source=source, number=number, file_name=file_name, data=data)


def _with_zip_comment(data: bytes, comment: bytes) -> bytes:
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.comment = comment
    return buffer.getvalue()
