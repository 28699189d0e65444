"""How deeply an HTML document nests its elements, checked before Docling reads it.

Docling walks the element tree recursively; a page of 100,000 nested ``<div>`` (1 MB) kept the
parser busy for minutes without an answer. Browsers stop nesting at 512 levels (Blink's HTML
parser flattens deeper trees), so no page a person reads needs more: deeper documents fail
with a reason instead. The scan is one linear pass of the standard library's tokenizer.
"""

from __future__ import annotations

from html.parser import HTMLParser

from ragstream_core.errors import UnreadableDocument

__all__ = ["MAX_HTML_DEPTH", "check_html_depth", "html_depth"]

#: the deepest element nesting accepted (what browsers build at most)
MAX_HTML_DEPTH = 512

#: elements that never contain others (no end tag)
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "keygen",
        "command",
        "basefont",
        "frame",
    ]
)
#: elements whose end tag is optional and usually left out: they never count as nesting
_IMPLIED_END = frozenset(
    [
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "optgroup",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "rb",
        "rt",
        "rp",
        "rtc",
    ]
)


class _DepthScanner(HTMLParser):
    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=False)
        self.limit = limit
        self.open: list[str] = []
        self.deepest = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID or tag in _IMPLIED_END:
            return
        self.open.append(tag)
        self.deepest = max(self.deepest, len(self.open))
        if self.deepest > self.limit:
            raise _TooDeep

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:  # an end tag closes everything opened since its start tag, as browsers do
            while self.open.pop() != tag:
                pass


class _TooDeep(Exception):
    pass


def html_depth(data: bytes, *, limit: int = MAX_HTML_DEPTH) -> int:
    """The deepest element nesting of the document, counting up to ``limit + 1`` (then it stops)."""
    scanner = _DepthScanner(limit)
    try:
        scanner.feed(data.decode("utf-8", errors="replace"))
        scanner.close()
    except _TooDeep:
        pass
    return scanner.deepest


def check_html_depth(data: bytes, *, file_name: str, limit: int = MAX_HTML_DEPTH) -> None:
    """Raise ``UnreadableDocument`` (never retried) if the HTML nests deeper than ``limit``."""
    if html_depth(data, limit=limit) > limit:
        raise UnreadableDocument(
            f"{file_name!r} nests HTML elements more than {limit} levels deep; accepted: at most {limit} "
            "levels, as browsers build (flatten the markup)"
        )
