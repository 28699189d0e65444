"""Structure for PDFs read by Docling's model-free native pipeline: paragraphs, headings, levels.

The native pipeline yields one text item per line, without headings. This module rebuilds a
``DoclingDocument`` from the text lines docling-parse reports for each page (geometry and font
name per line), so the chunkers see paragraphs under a heading path, as for a DOCX:

- lines side by side on one baseline form a row (a section number and its title, say);
- rows form a paragraph when they follow on the same page with a line-sized gap at most, in the
  same style, without a list marker, and without the previous row ending a sentence short of
  the margin or before an indented first line;
- a short paragraph (three rows at most) that does not end like a sentence is a heading when it
  is set larger than the body text (the most common size) or in a heavier weight at body size;
- heading levels rank the heading styles: larger first, then heavier; a heading whose style
  occurs once, as the largest on page 1 or as the document's first paragraph, is its title;
- paragraphs keep the parser's order (the PDF's content order), except that those lying wholly
  above a page's first paragraph come first (a masthead written after the columns, say);
- page numbers (alone on the top or bottom line, or in the margins) and lines repeated in the page
  margins are furniture, which chunks leave out.

Lines, their style and estimated font size come from ``pdf_lines``.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from docling_core.types.doc import (
    BoundingBox,
    ContentLayer,
    CoordOrigin,
    DocItemLabel,
    DoclingDocument,
    ProvenanceItem,
)

from ragstream_parser.pdf_lines import Line, read_lines

__all__ = ["structure_pdf"]

#: a paragraph's rows are at most this far apart, in units of the smaller row height
_MAX_LINE_GAP = 0.8
#: rows whose sizes differ by more than this ratio are not one paragraph
_MAX_SIZE_RATIO = 1.2
#: a heading is set at least this much larger than the body, or heavier at (about) body size
_HEADING_SIZE_RATIO = 1.15
_HEAVIER_MIN_SIZE_RATIO = 0.97
#: heading sizes within this ratio of each other are one level
_LEVEL_SIZE_RATIO = 0.94
_HEADING_MAX_ROWS = 3
_HEADING_MAX_CHARS = 160
#: words of a heading are at most this far apart, in units of its size
_HEADING_MAX_GAP = 2.5
#: share of the page height at its top and bottom where running headers and page numbers sit
_MARGIN = 0.12
_NUMBER_MARGIN = 0.15

_LIST_MARKER = re.compile(
    r"^(?:[\u2022\u25e6\u25aa\u25ab\u2023\u2043\u25cf\u25cb\u25a0\u25a1\u2219\u00b7*\-\u2013\u2014\u203b]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)]|[\u2460-\u2473])\s"
)
_CAPTION = re.compile(r"^(?:table|tab\.|figure|fig\.|listing|algorithm|chart|\[?표|\[?그림)\s*\d", re.IGNORECASE)
_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?[-\u2013(]?\s*(?:\d{1,4}|[ivxlc]{1,6})\s*[-\u2013)]?(?:\s*(?:/|of)\s*\d{1,4})?$", re.I
)
_SENTENCE_END = (".", "!", "?", ":", ";", "\u3002", "\uff01", "\uff1f")
_HEADING_BAD_END = (".", ",", ";", ":", "\u3002", "\uff0c")
#: Symbol, Wingdings and OpenSymbol bullets, in the private use area
_PRIVATE_BULLET = re.compile(r"^[\uf020-\uf0ff]\s")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


@dataclass(slots=True)
class _Block:
    page_no: int
    rows: list[Line]
    kind: str = "text"  # text, code, heading, title, furniture
    level: int = 1
    text: str = ""

    @property
    def size(self) -> float:
        return statistics.median(row.size for row in self.rows)

    @property
    def weight(self) -> int:
        return max(self.rows, key=lambda row: len(row.text)).weight

    def bbox(self) -> tuple[float, float, float, float]:
        return (
            min(r.left for r in self.rows),
            min(r.top for r in self.rows),
            max(r.right for r in self.rows),
            max(r.bottom for r in self.rows),
        )


def structure_pdf(result: Any) -> Any:
    """A ``DoclingDocument`` of paragraphs and headings built from a native conversion's pages.

    ``result`` is Docling's ``ConversionResult`` of the native pipeline (its pages keep their
    ``parsed_page``). Deterministic: the same PDF yields the same document. Pages without
    parsed content are kept as pages without items; each item's provenance is its page and the
    union of its lines' boxes.
    """
    source = result.document
    document = DoclingDocument(name=source.name, origin=source.origin)
    for page in result.pages:
        if page.size is not None:
            document.add_page(page_no=page.page_no, size=page.size)
    pages = read_lines(result.pages)
    furniture = _furniture(pages)
    blocks: list[_Block] = []
    for page_no, _, rows in pages:
        blocks.extend(_paragraphs(page_no, [r for r in rows if id(r) not in furniture]))
        blocks.extend(_Block(page_no, [r], kind="furniture", text=r.text) for r in rows if id(r) in furniture)
    body = [b for b in blocks if b.kind == "text"]
    if body:
        _mark_headings(body)
    heights = {page_no: height for page_no, height, _ in pages}
    for block in blocks:
        _add(document, block, heights[block.page_no])
    return document


def _furniture(pages: list[tuple[int, float, list[Line]]]) -> set[int]:
    """Ids of rows that are page numbers or running headers/footers (same text on two pages)."""
    in_margin: list[tuple[Line, str]] = []
    numbers: set[int] = set()
    for _, height, rows in pages:
        for row in rows:
            if row.bottom <= _MARGIN * height or row.top >= (1 - _MARGIN) * height:
                in_margin.append((row, re.sub(r"\d+", "#", " ".join(row.text.lower().split()))))
        if not rows:
            continue
        last_top, first_bottom = max(row.top for row in rows), min(row.bottom for row in rows)
        for row in rows:
            if not _PAGE_NUMBER.match(row.text):
                continue
            outermost = row.top >= last_top or row.bottom <= first_bottom
            if outermost or row.bottom <= _NUMBER_MARGIN * height or row.top >= (1 - _NUMBER_MARGIN) * height:
                numbers.add(id(row))
    repeated = Counter(key for _, key in in_margin)
    return numbers | {id(row) for row, key in in_margin if repeated[key] >= 2}


def _paragraphs(page_no: int, rows: list[Line]) -> list[_Block]:
    blocks: list[_Block] = []
    current: list[Line] = []
    for row in rows:
        if current and _continues(current, row):
            current.append(row)
            continue
        if current:
            blocks.append(_paragraph(page_no, current))
        current = [row]
    if current:
        blocks.append(_paragraph(page_no, current))
    if len(blocks) < 2:
        return blocks
    # What lies wholly above the page's first paragraph (a masthead written last, say) comes first.
    first_top = blocks[0].bbox()[1]
    above = {id(b) for b in blocks[1:] if b.bbox()[3] <= first_top}
    return [b for b in blocks if id(b) in above] + [b for b in blocks if id(b) not in above]


def _continues(paragraph: list[Line], row: Line) -> bool:
    """Whether ``row`` goes on the paragraph whose rows are ``paragraph``."""
    previous = paragraph[-1]
    small = min(previous.height, row.height)
    if row.top - previous.bottom > _MAX_LINE_GAP * small or row.top < previous.top - 0.5 * small:
        return False  # a gap, or a jump up to another column
    if row.left >= max(r.right for r in paragraph) or row.right <= min(r.left for r in paragraph):
        return False  # another column
    if row.weight != previous.weight or row.monospace != previous.monospace:
        return False
    if max(row.size, previous.size) > _MAX_SIZE_RATIO * min(row.size, previous.size):
        return False
    if _starts_item(row):
        return False
    if row.monospace:
        return True
    if previous.text.endswith(_SENTENCE_END):
        measure = max(r.right for r in paragraph)
        short = previous.right < measure - 2 * previous.size
        indented = row.left > previous.left + 0.5 * previous.size
        if short or indented:
            return False
    return True


def _starts_item(row: Line) -> bool:
    """Whether the row starts with a list marker: a bullet, a number, or a symbol font's bullet."""
    text = row.text
    if _LIST_MARKER.match(text) or _PRIVATE_BULLET.match(text):
        return True
    return (row.symbol_font and text.startswith("\u221e")) or (row.monospace and text.startswith("o "))


def _paragraph(page_no: int, rows: list[Line]) -> _Block:
    if all(row.monospace for row in rows) and not _starts_item(rows[0]):
        left = min(row.left for row in rows)
        lines = []
        for row in rows:
            char_width = (row.right - row.left) / max(len(row.text), 1)
            indent = round((row.left - left) / char_width) if char_width > 0 else 0
            lines.append(" " * indent + row.text)
        return _Block(page_no, rows, kind="code", text="\n".join(lines))
    text = ""
    for row in rows:
        line = row.text
        if _PRIVATE_BULLET.match(line) or (row.symbol_font and line.startswith("\u221e")):
            line = "\u2022" + line[1:]  # a symbol font's bullet, decoded as a private-use glyph or ∞
        text = _join_lines(text, line)
    return _Block(page_no, rows, text=text)


def _join_lines(text: str, line: str) -> str:
    if not text:
        return line
    if text.endswith("-") and len(text) > 1 and text[-2].isalpha() and line[:1].islower():
        return text + line  # hyphenated, or a dash: keeping the hyphen loses nothing
    if _CJK.match(text[-1]) and _CJK.match(line[0]):
        return text + line
    return f"{text} {line}"


def _mark_headings(blocks: list[_Block]) -> None:
    """Mark heading paragraphs, their levels and the title, in place."""
    sizes: Counter[float] = Counter()
    weights: Counter[int] = Counter()
    for block in blocks:
        for row in block.rows:
            sizes[round(row.size * 4) / 4] += len(row.text)
            weights[row.weight] += len(row.text)
    body_size = sizes.most_common(1)[0][0]
    body_weight = weights.most_common(1)[0][0]
    headings = [
        block
        for index, block in enumerate(blocks)
        if _is_heading(block, blocks[index + 1] if index + 1 < len(blocks) else None, body_size, body_weight)
    ]
    if not headings:
        return
    buckets: list[float] = []  # the largest size of each level's size range, descending
    for size in sorted({round(h.size, 1) for h in headings}, reverse=True):
        if not buckets or size < _LEVEL_SIZE_RATIO * buckets[-1]:
            buckets.append(size)
    bucket_of = {id(h): max(i for i, top in enumerate(buckets) if round(h.size, 1) <= top) for h in headings}
    style_of = {id(h): (bucket_of[id(h)], -h.weight) for h in headings}
    styles = Counter(style_of.values())
    title = _title(blocks, headings, style_of, styles)
    ranks = sorted({style_of[id(h)] for h in headings if h is not title})
    for heading in headings:
        heading.kind = "heading"
        if heading is title:
            heading.kind = "title"
        else:
            heading.level = ranks.index(style_of[id(heading)]) + 1


def _is_heading(block: _Block, following: _Block | None, body_size: float, body_weight: int) -> bool:
    text = block.text
    if len(block.rows) > _HEADING_MAX_ROWS or len(text) > _HEADING_MAX_CHARS or text.endswith(_HEADING_BAD_END):
        return False
    letters = sum(ch.isalpha() for ch in text)
    if letters < 2 or letters < 0.5 * sum(not ch.isspace() for ch in text) or text[:1].islower():
        return False
    if _CAPTION.match(text) or (_starts_item(block.rows[0]) and not re.match(r"^\(?\d", text)):
        return False
    size = block.size
    if any(row.gap > _HEADING_MAX_GAP * size for row in block.rows):
        return False  # cells of a table row
    larger = size >= _HEADING_SIZE_RATIO * body_size
    heavier = block.weight > body_weight and size >= _HEAVIER_MIN_SIZE_RATIO * body_size
    if not (larger or heavier):
        return False
    if following is not None and following.page_no == block.page_no and following.kind == "text":
        gap = following.rows[0].top - block.rows[-1].bottom
        if 0 <= gap <= _MAX_LINE_GAP * following.rows[0].height and following.text[:1].islower():
            return False  # a run-in lead, the sentence goes on below
    return True


def _title(
    blocks: list[_Block], headings: list[_Block], style_of: dict[int, tuple[int, int]], styles: Counter[tuple[int, int]]
) -> _Block | None:
    """The heading that titles the document, if one stands out; ``None`` otherwise."""
    top_style = min(styles)
    largest = [h for h in headings if style_of[id(h)] == top_style]
    if len(largest) == 1 and largest[0].page_no == blocks[0].page_no and len(styles) > 1:
        return largest[0]
    first = blocks[0]
    if id(first) in style_of and styles[style_of[id(first)]] == 1:
        return first
    return None


def _add(document: Any, block: _Block, page_height: float) -> None:
    left, top, right, bottom = block.bbox()
    prov = ProvenanceItem(
        page_no=block.page_no,
        bbox=BoundingBox(
            l=left, t=page_height - top, r=right, b=page_height - bottom, coord_origin=CoordOrigin.BOTTOMLEFT
        ),
        charspan=(0, len(block.text)),
    )
    if block.kind == "title":
        document.add_title(text=block.text, prov=prov)
    elif block.kind == "heading":
        document.add_heading(text=block.text, level=block.level, prov=prov)
    elif block.kind == "code":
        document.add_code(text=block.text, prov=prov)
    elif block.kind == "furniture":
        label = DocItemLabel.PAGE_HEADER if top < page_height / 2 else DocItemLabel.PAGE_FOOTER
        document.add_text(label=label, text=block.text, prov=prov, content_layer=ContentLayer.FURNITURE)
    else:
        document.add_text(label=DocItemLabel.TEXT, text=block.text, prov=prov)
