"""The formats read before (or instead of) Docling's own conversion and chunking.

- legacy ``.doc/.xls/.ppt`` and OpenDocument ``.odt/.ods/.odp``: LibreOffice converts them to
  ``.docx/.xlsx/.pptx`` first, then they are read like those;
- tables (CSV, Parquet, XLSX/XLSM and what became XLSX): one line per row with its column names
  (``tabular``); Docling still finds the tables of a spreadsheet;
- WebVTT: cues grouped under their time range (``webvtt``);
- e-mail: an HTML page (subject, sender, recipients, date, attachments, body) that Docling reads.

Everything else goes to Docling unchanged.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from ragstream_core.errors import UnreadableDocument
from ragstream_parser import legacy
from ragstream_parser.docling_parser import ParsedDocument, ParseOptions
from ragstream_parser.email_message import email_as_html
from ragstream_parser.packing import TokenCounter
from ragstream_parser.progress import Progress
from ragstream_parser.tabular import Table, read_csv, read_parquet, table_chunks, workbook_tables
from ragstream_parser.webvtt import cue_chunks, read_cues

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM = "application/vnd.ms-excel.sheet.macroEnabled.12"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PPT = "application/vnd.ms-powerpoint"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
VTT = "text/vtt"
EML = "message/rfc822"
HTML = "text/html"

#: media type -> (its extension, the extension LibreOffice converts it to, the converted media type)
CONVERTED: dict[str, tuple[str, str, str]] = {
    DOC: ("doc", "docx", DOCX),
    XLS: ("xls", "xlsx", XLSX),
    PPT: ("ppt", "pptx", PPTX),
    ODT: ("odt", "docx", DOCX),
    ODS: ("ods", "xlsx", XLSX),
    ODP: ("odp", "pptx", PPTX),
}


@dataclass(frozen=True)
class DoclingSource:
    """Bytes for Docling's own conversion and chunking, in a type it reads."""

    data: bytes
    media_type: str


class FormatReader:
    """Reads the formats above; one per ``DoclingParser``, used from its one thread."""

    def __init__(
        self, *, count_tokens: TokenCounter, max_tokens: int, conversion_timeout_s: float = legacy.DEFAULT_TIMEOUT_S
    ) -> None:
        self._count_tokens = count_tokens
        self._max_tokens = max_tokens
        self._conversion_timeout_s = conversion_timeout_s
        self._spreadsheets: Any = None

    def read(
        self, data: bytes, *, file_name: str, media_type: str, options: ParseOptions, progress: Progress | None = None
    ) -> ParsedDocument | DoclingSource:
        """The parsed document, or what Docling should read instead; raises ``UnreadableDocument`` with the reason.

        ``progress`` is told how many rows of a table are chunked (``docling_parser.Progress``).
        """
        if media_type in CONVERTED:
            source, target, media_type = CONVERTED[media_type]
            data = legacy.convert(
                data,
                file_name=file_name,
                source_suffix=source,
                target_suffix=target,
                timeout_s=self._conversion_timeout_s,
            )
        if media_type in (XLSX, XLSM):
            document = self._spreadsheet(data, file_name=file_name)
            return self._tables(workbook_tables(document), [], file_name, options, document.num_pages(), progress)
        if media_type == CSV:
            table, warnings = read_csv(data, file_name=file_name)
            return self._tables([table], warnings, file_name, options, 1, progress)
        if media_type == PARQUET:
            return self._tables([read_parquet(data, file_name=file_name)], [], file_name, options, 1, progress)
        if media_type == VTT:
            cues = read_cues(data, file_name=file_name)
            chunks = cue_chunks(cues, count_tokens=self._count_tokens, max_tokens=self._max_tokens)
            return ParsedDocument(chunks=chunks, page_count=1)
        if media_type == EML:
            return DoclingSource(email_as_html(data, file_name=file_name), HTML)
        return DoclingSource(data, media_type)

    def _tables(
        self,
        tables: list[Table],
        warnings: list[str],
        file_name: str,
        options: ParseOptions,
        pages: int,
        progress: Progress | None,
    ) -> ParsedDocument:
        chunks, preference_warnings = table_chunks(
            tables,
            options=options,
            count_tokens=self._count_tokens,
            max_tokens=self._max_tokens,
            file_name=file_name,
            progress=progress,
        )
        if not chunks:
            raise UnreadableDocument(f"{file_name!r} contains no rows to index")
        return ParsedDocument(chunks=chunks, page_count=pages, warnings=[*warnings, *preference_warnings])

    def _spreadsheet(self, data: bytes, *, file_name: str) -> Any:
        """The Docling document of an XLSX/XLSM workbook (its sheets and the tables found in them)."""
        from docling.datamodel.base_models import ConversionStatus, DocumentStream, InputFormat
        from docling.document_converter import DocumentConverter

        if self._spreadsheets is None:
            self._spreadsheets = DocumentConverter(allowed_formats=[InputFormat.XLSX])
        stream = DocumentStream(name="document.xlsx", stream=io.BytesIO(data))
        try:
            result = self._spreadsheets.convert(stream, raises_on_error=False)
        except Exception as exc:  # Docling raises many types for unreadable input
            raise UnreadableDocument(f"Docling could not read {file_name!r}: {exc}") from exc
        if result.status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
            errors = "; ".join(e.error_message for e in result.errors) or str(result.status)
            raise UnreadableDocument(f"Docling could not read {file_name!r}: {errors}")
        return result.document
