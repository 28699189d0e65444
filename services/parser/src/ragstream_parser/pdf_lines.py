"""The text lines of a PDF's pages as docling-parse reports them, with their style and font size.

docling-parse gives each line its text, its box and the name of its (first) font, but not the
font size. The size is estimated from the box's height, which depends on how the PDF producer's
fonts are measured: most boxes span the font's whole height, whatever the glyphs (Word, LaTeX:
every body line is equally tall); some only the glyphs drawn (LibreOffice: "Section 1.1" is
shorter than "Paragraph 1.1" at the same size, having no descender). The document tells which:
in the second case, body-font lines without descenders are about 0.77 of the height of those with
them. Only then is each line's height scaled by the glyph extent its characters imply.

The size is also capped by twice the line's mean character width, since a line cell that spans
two baselines is tall but narrow. Weight and monospace come from the font name.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from docling_core.types.doc import CoordOrigin

__all__ = ["Line", "read_lines"]

_ASCENDING = frozenset("bdfhkltij'\"!?/\\|()[]{}#$%&@^*")
_DESCENDING = frozenset("gjpqy()[]{}|@$")
_DIPPING = frozenset(",;_")
_FULL_EM = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")  # CJK, Hangul
_MONOSPACE = ("mono", "courier", "consolas", "menlo", "cmtt", "sftt", "lmmono", "code")
#: glyph extents in em: capital or ascender height, x-height, descender and comma depths
_TALL, _SHORT, _DEEP, _DIP = 0.72, 0.5, 0.21, 0.12
_FULL = _TALL + _DEEP


@dataclass(slots=True)
class Line:
    """One text line, or several side by side on one baseline; top-left origin, in points."""

    text: str
    left: float
    top: float
    right: float
    bottom: float
    #: estimated font size; comparable within one document only
    size: float
    #: 0 light, 1 regular, 2 medium, 3 semibold, 4 bold, 5 black
    weight: int
    monospace: bool
    symbol_font: bool
    font: str = ""
    #: the height its glyphs span, in em, if a box holds only the glyphs drawn
    extent: float = _FULL
    #: the widest gap between the lines joined into this one (table cells are far apart)
    gap: float = 0.0

    @property
    def height(self) -> float:
        return self.bottom - self.top


def read_lines(pages: list[Any]) -> list[tuple[int, float, list[Line]]]:
    """(page number, page height, lines in the parser's order) of each page with a size.

    ``pages`` are Docling's native-pipeline pages (``page_no``, ``size``, ``parsed_page``).
    Lines sharing a baseline are joined left to right. Deterministic.
    """
    styles: dict[str, tuple[int, bool, bool]] = {}
    fonts: Counter[str] = Counter()
    read: list[tuple[int, float, list[Line]]] = []
    for page in pages:
        if page.size is None:
            continue
        lines = _page_lines(page.parsed_page, page.size.height, styles, fonts) if page.parsed_page is not None else []
        read.append((page.page_no, page.size.height, lines))
    glyph_boxes = _glyph_boxes([line for _, _, lines in read for line in lines], fonts)
    for _, _, lines in read:
        for line in lines:
            size = line.size * _FULL / line.extent if glyph_boxes else line.size
            width_estimate = 2.0 * (line.right - line.left) / len(line.text) if len(line.text) >= 3 else size
            line.size = max(min(size, width_estimate), 0.1)
    return [(page_no, height, _join_baselines(lines)) for page_no, height, lines in read]


def _page_lines(
    parsed_page: Any, page_height: float, styles: dict[str, tuple[int, bool, bool]], fonts: Counter[str]
) -> list[Line]:
    lines: list[Line] = []
    for cell in parsed_page.textline_cells:
        text = cell.text.strip()
        if not text:
            continue
        rect = cell.rect
        ys = (rect.r_y0, rect.r_y1, rect.r_y2, rect.r_y3)
        top, bottom = min(ys), max(ys)
        if rect.coord_origin == CoordOrigin.BOTTOMLEFT:
            top, bottom = page_height - bottom, page_height - top
        xs = (rect.r_x0, rect.r_x1, rect.r_x2, rect.r_x3)
        font = getattr(cell, "font_name", "")
        if font not in styles:
            styles[font] = _font_style(font)
        fonts[font] += len(text)
        weight, monospace, symbol = styles[font]
        lines.append(
            Line(text, min(xs), top, max(xs), bottom, bottom - top, weight, monospace, symbol, font, _extent(text))
        )
    return lines


def _extent(text: str) -> float:
    if _FULL_EM.search(text):
        return _FULL
    tall = any(ch.isupper() or ch.isdigit() or ch in _ASCENDING or (ch.isalpha() and ord(ch) > 127) for ch in text)
    deep = _DEEP if any(ch in _DESCENDING for ch in text) else _DIP if any(ch in _DIPPING for ch in text) else 0.0
    return (_TALL if tall else _SHORT) + deep


def _glyph_boxes(lines: list[Line], fonts: Counter[str]) -> bool:
    """Whether line boxes span the glyphs drawn rather than the font's height.

    They do when most body-font lines with capitals or ascenders but no descenders are about
    0.77 as tall as the usual body line (which has both); with font-height boxes they are as tall.
    """
    if not fonts:
        return False
    body_font = fonts.most_common(1)[0][0]
    heights: Counter[float] = Counter()
    for line in lines:
        if line.font == body_font and line.extent == _FULL:
            heights[round(line.height, 1)] += len(line.text)
    if not heights:
        return False
    body_height = heights.most_common(1)[0][0]
    glyph_votes = font_votes = 0
    for line in lines:
        if line.font == body_font and line.extent == _TALL:
            ratio = line.height / body_height
            font_votes += abs(ratio - 1.0) <= 0.04
            glyph_votes += abs(ratio - _TALL / _FULL) <= 0.06
    return glyph_votes >= 2 and glyph_votes > 2 * font_votes


def _font_style(font_name: str) -> tuple[int, bool, bool]:
    """(weight, monospace, symbol font) from a PDF font name."""
    name = font_name.rsplit("+", 1)[-1].lower()
    if "black" in name or "heavy" in name:
        weight = 5
    elif "semibold" in name or "demi" in name:
        weight = 3
    elif "bold" in name or re.search(r"(?:cm|sf|lm|ec)bx|[-,_]bd\b|bd$", name):
        weight = 4
    elif "medium" in name:
        weight = 2
    elif "light" in name or "thin" in name:
        weight = 0
    else:
        weight = 1
    return weight, any(m in name for m in _MONOSPACE), "symbol" in name


def _join_baselines(lines: list[Line]) -> list[Line]:
    rows: list[Line] = []
    pending: list[Line] = []
    for line in lines:
        if pending and _same_baseline(pending[-1], line):
            pending.append(line)
            continue
        if pending:
            rows.append(_joined(pending))
        pending = [line]
    if pending:
        rows.append(_joined(pending))
    return rows


def _same_baseline(previous: Line, line: Line) -> bool:
    overlap = min(previous.bottom, line.bottom) - max(previous.top, line.top)
    apart = line.left >= previous.right - 1.0 or line.right <= previous.left + 1.0
    return apart and overlap >= 0.5 * min(previous.height, line.height)


def _joined(lines: list[Line]) -> Line:
    if len(lines) == 1:
        return lines[0]
    lines = sorted(lines, key=lambda line: line.left)
    main = max(lines, key=lambda line: len(line.text))
    return Line(
        " ".join(line.text for line in lines),
        lines[0].left,
        min(line.top for line in lines),
        max(line.right for line in lines),
        max(line.bottom for line in lines),
        main.size,
        main.weight,
        main.monospace,
        lines[0].symbol_font,
        main.font,
        main.extent,
        max(line.left - before.right for before, line in itertools.pairwise(lines)),
    )
