"""How a collection cuts its documents into chunks: ``structure``, ``tokens`` or ``markdown``.

- ``structure`` (the default): Docling's HybridChunker. Chunks follow the document's items under
  their heading path, items too long are split and small neighbours under the same headings
  merged; the heading path is embedded before the text.
- ``tokens``: a window of up to ``max_tokens`` of the model's tokens sliding over the document's
  text in reading order (headings included), overlapping the previous window by about
  ``overlap_tokens``. Windows start and end at word boundaries. The text embedded is the window
  alone; ``heading_path`` records the headings in force where the window starts.
- ``markdown``: one chunk per section of the document rendered as Markdown (the text between
  one heading and the next), the heading path embedded before it. A section too long for the
  model is split at paragraph boundaries, then lines, then into token windows.

Every strategy counts tokens with the embedding model's own tokenizer, including the embedded
heading prefix, so no chunk exceeds ``max_tokens``; every chunk keeps the pages it comes from.

Chunking reports how far it has read the document, in pages (the pages before the one it is on)
or, for documents without pages, in items (headings, paragraphs, tables, in reading order).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from docling.chunking import HybridChunker
from docling_core.types.doc import TableItem
from pydantic import PrivateAttr
from semchunk.semchunk import Chunker as SemanticSplitter

from ragstream_parser.docling_parser import Chunk
from ragstream_parser.progress import Progress

__all__ = ["DEFAULT_OVERLAP_TOKENS", "STRATEGIES", "DocumentChunker", "check_strategy"]

STRATEGIES = ("structure", "tokens", "markdown")
DEFAULT_OVERLAP_TOKENS = 32
#: chunks under one heading path are merged once at least this many are waiting and the path changes
_MIN_MERGE_RUN = 32


def check_strategy(name: str) -> None:
    """Raise ``ValueError`` naming the accepted strategies unless ``name`` is one of them."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown chunking strategy {name!r}; accepted: {', '.join(STRATEGIES)}")


@dataclass(frozen=True, slots=True)
class _Passage:
    """One serialized item (a paragraph, a list, a table, a heading) in reading order."""

    text: str
    pages: tuple[int, ...]
    #: the heading path in force; a heading's own path ends with itself
    headings: tuple[str, ...]
    heading: bool


class _HybridChunker(HybridChunker):  # type: ignore[misc]  # docling is not type-checked here
    """Docling's HybridChunker, whose splits of oversized text share one bounded token-count cache.

    Docling builds a new semchunk chunker for each oversized item: each build reads the
    tokenizer's whole vocabulary (10-20 ms, half the parse time of a PDF of long paragraphs) and
    registers a new unbounded memo in semchunk's module-level table, which a long-running parser
    never frees. The splits are the same: semchunk counts tokens with the same tokenizer, without
    special tokens (checked on every corpus document).

    Its chunks also come as the document is read (``stream``), rather than all at the end.
    """

    _count: Callable[[str], int] = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        self._count = functools.lru_cache(maxsize=8192)(self.tokenizer.count_tokens)

    def chunk(self, dl_doc: Any, **kwargs: Any) -> Iterator[Any]:
        return self.stream(dl_doc, **kwargs)

    def stream(self, dl_doc: Any, *, passed: Callable[[list[Any]], None] | None = None, **kwargs: Any) -> Iterator[Any]:
        """The chunks of ``HybridChunker.chunk``, the same and in the same order, made as the document is read.

        ``HybridChunker.chunk`` splits every item, then merges all chunks, before it returns the
        first. Merging never joins chunks under different heading paths, so merging each run of
        chunks under one path on its own gives the same chunks (checked against
        ``HybridChunker.chunk`` on every corpus document). ``passed`` is told the items of the
        document as they are split, in reading order.
        """
        serializer = self.serializer_provider.get_serializer(doc=dl_doc)
        run: list[Any] = []
        for item_chunk in self._inner_chunker.chunk(dl_doc=dl_doc, **kwargs):
            for piece in self._split_by_doc_items(item_chunk, doc_serializer=serializer):
                for split in self._split_using_plain_text(piece, doc_serializer=serializer):
                    if len(run) >= _MIN_MERGE_RUN and split.meta.headings != run[-1].meta.headings:
                        yield from self._merged(run)
                        run = []
                    run.append(split)
            if passed is not None:
                passed(item_chunk.meta.doc_items)
        yield from self._merged(run)

    def _merged(self, run: list[Any]) -> list[Any]:
        return cast(list[Any], self._merge_chunks_with_matching_metadata(run)) if self.merge_peers and run else run

    def segment(self, doc_chunk: Any, available_length: int, doc_serializer: Any) -> list[str]:
        items = doc_chunk.meta.doc_items
        if len(items) == 1 and isinstance(items[0], TableItem):
            return list(super().segment(doc_chunk, available_length, doc_serializer))  # rows, header repeated
        return cast(list[str], SemanticSplitter(chunk_size=available_length, token_counter=self._count)(doc_chunk.text))


class DocumentChunker:
    """Cuts a ``DoclingDocument`` into ``Chunk``s by a named strategy. Not thread-safe."""

    def __init__(self, *, tokenizer: Any, overlap_tokens: int = DEFAULT_OVERLAP_TOKENS) -> None:
        """``tokenizer`` is docling's ``HuggingFaceTokenizer`` of the embedding model, with its ``max_tokens``."""
        from docling_core.transforms.serializer.markdown import MarkdownParams
        from docling_core.types.doc.base import ImageRefMode

        self._tokenizer = tokenizer
        #: the ``structure`` strategy's chunker
        self.hybrid: Any = _HybridChunker(tokenizer=tokenizer, merge_peers=True)
        self._max_tokens: int = tokenizer.get_max_tokens()
        if not 0 <= overlap_tokens < self._max_tokens // 2:
            raise ValueError(f"overlap_tokens must be in [0, {self._max_tokens // 2}), not {overlap_tokens}")
        self._overlap = overlap_tokens
        self._markdown_params = MarkdownParams(
            image_mode=ImageRefMode.PLACEHOLDER, image_placeholder="", escape_underscores=False, escape_html=False
        )

    def chunk(self, document: Any, *, strategy: str = "structure", progress: Progress | None = None) -> list[Chunk]:
        """The document's chunks, indexed from 0, none over the token limit; deterministic.

        ``progress`` is told how far chunking has read the document (pages, else items), ending
        with all of them; it does not change the chunks. Raises ``ValueError`` for an unknown
        strategy. A document without text yields ``[]``.
        """
        check_strategy(strategy)
        reach = _Reach(document, progress) if progress is not None else None
        if strategy == "tokens":
            chunks = self._by_tokens(document, reach)
        elif strategy == "markdown":
            chunks = self._by_sections(document, reach)
        else:
            chunks = self._by_structure(document, reach)
        if reach is not None:
            reach.finish()
        return chunks

    def count_tokens(self, text: str) -> int:
        return int(self._tokenizer.count_tokens(text))

    def _by_structure(self, document: Any, reach: _Reach | None) -> list[Chunk]:
        chunks: list[Chunk] = []
        for raw in self.hybrid.stream(document, passed=reach.passed if reach is not None else None):
            embed_text = self.hybrid.contextualize(raw)
            if not embed_text.strip():
                continue
            pages = sorted({p.page_no for item in raw.meta.doc_items for p in item.prov})
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=raw.text,
                    embed_text=embed_text,
                    tokens=self.count_tokens(embed_text),
                    heading_path=list(raw.meta.headings or []),
                    pages=pages,
                )
            )
        return chunks

    def _by_tokens(self, document: Any, reach: _Reach | None) -> list[Chunk]:
        serializer = self.hybrid.serializer_provider.get_serializer(doc=document)
        passages = list(_passages(document, serializer))
        spans: list[tuple[int, int, _Passage]] = []
        offset = 0
        for passage in passages:
            spans.append((offset, offset + len(passage.text), passage))
            offset += len(passage.text) + 1
        text = "\n".join(p.text for p in passages)
        chunks: list[Chunk] = []
        first = 0  # the first passage that does not end before the window: windows only move on
        for start, end in self._windows(text, budget=self._max_tokens, overlap=self._overlap):
            piece = text[start:end]
            while first < len(spans) and spans[first][1] <= start:
                first += 1
            covered_passages: list[_Passage] = []
            index = first
            while index < len(spans) and spans[index][0] < end:
                covered_passages.append(spans[index][2])
                index += 1
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=piece,
                    embed_text=piece,
                    tokens=self.count_tokens(piece),
                    heading_path=list(covered_passages[0].headings) if covered_passages else [],
                    pages=sorted({page for passage in covered_passages for page in passage.pages}),
                )
            )
            if reach is not None:
                reach.reached_pages(chunks[-1].pages)
        return chunks

    def _by_sections(self, document: Any, reach: _Reach | None) -> list[Chunk]:
        from docling_core.transforms.serializer.markdown import MarkdownDocSerializer

        serializer = MarkdownDocSerializer(doc=document, params=self._markdown_params)
        sections: list[tuple[tuple[str, ...], list[_Passage]]] = []
        path: tuple[str, ...] = ()
        body: list[_Passage] = []
        for passage in _passages(document, serializer):
            if passage.heading:
                if body:
                    sections.append((path, body))
                path, body = passage.headings, []
            else:
                body.append(passage)
        if body:
            sections.append((path, body))
        chunks: list[Chunk] = []
        for headings, passages in sections:
            prefix = self._prefix(headings)
            budget = self._max_tokens - (self.count_tokens(prefix) if prefix else 0)
            for text, pages in self._pack(passages, budget=budget):
                embed_text = f"{prefix}\n{text}" if prefix else text
                chunks.append(
                    Chunk(
                        index=len(chunks),
                        text=text,
                        embed_text=embed_text,
                        tokens=self.count_tokens(embed_text),
                        heading_path=list(headings),
                        pages=list(pages),
                    )
                )
                if reach is not None:
                    reach.reached_pages(pages)
        return chunks

    def _prefix(self, headings: tuple[str, ...]) -> str:
        """The heading path as embedded; only its last heading, or nothing, if it would crowd out the text."""
        for prefix in ("\n".join(headings), headings[-1] if headings else ""):
            if self.count_tokens(prefix) <= self._max_tokens // 2:
                return prefix
        return ""

    def _pack(self, passages: list[_Passage], *, budget: int) -> Iterator[tuple[str, tuple[int, ...]]]:
        """A section's text in pieces of at most ``budget`` tokens, cut at paragraphs, then lines, then tokens."""
        pieces: list[tuple[str, int, tuple[int, ...]]] = []
        for passage in passages:
            tokens = self.count_tokens(passage.text)
            if tokens <= budget:
                pieces.append((passage.text, tokens, passage.pages))
                continue
            for line in passage.text.split("\n"):
                if not line.strip():
                    continue
                line_tokens = self.count_tokens(line)
                if line_tokens <= budget:
                    pieces.append((line, line_tokens, passage.pages))
                    continue
                for start, end in self._windows(line, budget=budget, overlap=0):
                    window = line[start:end]
                    pieces.append((window, self.count_tokens(window), passage.pages))
        texts: list[str] = []
        pages: set[int] = set()
        used = 0
        for text, tokens, piece_pages in pieces:
            if texts and used + tokens > budget:
                yield "\n\n".join(texts), tuple(sorted(pages))
                texts, pages, used = [], set(), 0
            texts.append(text)
            pages.update(piece_pages)
            used += tokens
        if texts:
            yield "\n\n".join(texts), tuple(sorted(pages))

    def _windows(self, text: str, *, budget: int, overlap: int) -> list[tuple[int, int]]:
        """Character spans of windows of at most ``budget`` tokens.

        Windows start and end between words (at whitespace, else where the tokenizer starts a
        word, else anywhere); each starts at most ``overlap`` tokens before the previous one ended.
        """
        encoding = self._tokenizer.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets: list[tuple[int, int]] = encoding["offset_mapping"]
        words = encoding.word_ids()
        count = len(offsets)
        # 2: after whitespace, 1: a new word of the tokenizer's, 0: inside a word
        boundary = [
            2 if i == 0 or text[offsets[i][0] - 1].isspace() else int(words[i] != words[i - 1]) for i in range(count)
        ]
        windows: list[tuple[int, int]] = []
        start = 0
        while start < count:
            end = min(start + budget, count)
            if end < count:
                end = _best_boundary(boundary, range(end, start + budget // 2, -1), default=end)
            while end - start > 1 and self.count_tokens(text[offsets[start][0] : offsets[end - 1][1]]) > budget:
                end -= 1  # never seen: the text re-tokenizes as it did in the whole
            windows.append((offsets[start][0], offsets[end - 1][1]))
            if end >= count:
                break
            start = _best_boundary(boundary, range(max(end - overlap, start + 1), end), default=end)
        return windows


class _Reach:
    """How far chunking has read a document, told to a ``Progress`` as it moves on.

    In pages when the document has pages (those before the page being read are done), else in
    items in reading order. Only increases are told.
    """

    def __init__(self, document: Any, progress: Progress) -> None:
        self._progress = progress
        self._pages: list[int] = sorted(document.pages)
        self._positions: dict[str, int] = {}
        if self._pages:
            self._unit, self._total = "pages", len(self._pages)
        else:
            items = document.iterate_items(with_groups=True)
            self._positions = {item.self_ref: position for position, (item, _) in enumerate(items, start=1)}
            self._unit, self._total = "items", len(self._positions)
        self._done = 0

    def passed(self, items: list[Any]) -> None:
        """Chunking has passed ``items`` (Docling's ``DocItem``s)."""
        if self._pages:
            self.reached_pages(prov.page_no for item in items for prov in item.prov)
        else:
            self._advance(max((self._positions.get(item.self_ref, 0) for item in items), default=0))

    def reached_pages(self, pages: Iterable[int]) -> None:
        """Chunking has reached the last of ``pages``: the pages before it are done."""
        self._advance(bisect.bisect_left(self._pages, max(pages, default=0)))

    def finish(self) -> None:
        self._advance(self._total)

    def _advance(self, done: int) -> None:
        if done > self._done:
            self._done = done
            self._progress(done, self._total, self._unit)


def _best_boundary(boundary: list[int], candidates: range, *, default: int) -> int:
    """The first candidate of the best boundary kind (whitespace, then word), else ``default``."""
    for kind in (2, 1):
        for index in candidates:
            if boundary[index] == kind:
                return index
    return default


def _passages(document: Any, serializer: Any) -> Iterator[_Passage]:
    """The document's body in reading order, one passage per heading, paragraph, list or table."""
    from docling_core.types.doc import DocItem, InlineGroup, ListGroup, SectionHeaderItem, TitleItem

    captions = {ref.cref for item in [*document.tables, *document.pictures] for ref in item.captions}
    visited: set[str] = set()
    by_level: dict[int, str] = {}
    for item, _ in document.iterate_items(with_groups=True, included_content_layers=serializer.params.layers):
        if item.self_ref in visited or item.self_ref in captions:
            continue  # a caption comes with its table or picture
        if isinstance(item, TitleItem | SectionHeaderItem):
            level = item.level if isinstance(item, SectionHeaderItem) else 0
            for shadowed in [k for k in by_level if k >= level]:
                del by_level[shadowed]
            by_level[level] = item.text
            headings = tuple(by_level[k] for k in sorted(by_level))
            yield _Passage(item.text, tuple(sorted({p.page_no for p in item.prov})), headings, heading=True)
            continue
        if not isinstance(item, ListGroup | InlineGroup | DocItem):
            continue
        result = serializer.serialize(item=item, visited=visited)
        text = result.text.strip()
        if not text:
            continue
        pages = tuple(sorted({p.page_no for span in result.spans for p in getattr(span.item, "prov", [])}))
        yield _Passage(text, pages, tuple(by_level[k] for k in sorted(by_level)), heading=False)
