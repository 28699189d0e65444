"""What fetched markup points to: the links of an HTML page and the URLs of a sitemap.

Both readers are pure functions of bytes (run them in a thread for large inputs) and never
raise on malformed markup of a page; a sitemap that is not XML nor a list of URLs raises
``InvalidInput`` with the reason.
"""

from __future__ import annotations

import gzip
import io
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser

from ragstream_core.errors import InvalidInput
from ragstream_gateway.web_urls import resolve_link

#: HTML beyond this many bytes is not searched for links (the page itself is still taken in)
MAX_LINK_SCAN_BYTES = 5 * 1024 * 1024


@dataclass
class PageLinks:
    """The pages an HTML page links to, in document order without repeats, and its robots wishes."""

    links: list[str] = field(default_factory=list)
    #: ``<meta name="robots" content="noindex">``: the page asks not to be indexed
    noindex: bool = False
    #: ``<meta name="robots" content="nofollow">``: the page asks that its links are not followed
    nofollow: bool = False


class _LinkParser(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.result = PageLinks()
        self._seen: set[str] = set()
        self._hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "base" and values.get("href") and not self._hrefs:
            self.base_url = resolve_link(self.base_url, values["href"]) or self.base_url
        elif tag == "a" and "href" in values and "nofollow" not in values.get("rel", "").lower().split():
            self._hrefs.append(values["href"])
        elif tag == "meta" and values.get("name", "").lower() in ("robots", "ragstream-crawler"):
            wishes = robots_directives(values.get("content", ""))
            self.result.noindex |= "noindex" in wishes
            self.result.nofollow |= "nofollow" in wishes

    def links(self) -> PageLinks:
        for href in self._hrefs:
            url = resolve_link(self.base_url, href)
            if url is not None and url not in self._seen:
                self._seen.add(url)
                self.result.links.append(url)
        return self.result


def robots_directives(value: str) -> set[str]:
    """The directives of a robots meta tag or ``X-Robots-Tag`` value (``none`` = noindex + nofollow).

    Directives aimed at a named crawler (``googlebot: noindex``) are ignored unless they name ours.
    """
    found: set[str] = set()
    for part in value.lower().split(","):
        directive = part.strip()
        if ":" in directive:
            agent, _, directive = directive.partition(":")
            if agent.strip() != "ragstream-crawler":
                continue
            directive = directive.strip()
        found |= {"noindex", "nofollow"} if directive == "none" else {directive}
    return found


def read_page_links(html: bytes, *, base_url: str, encoding: str = "utf-8") -> PageLinks:
    """The followable links (``<a href>`` without ``rel=nofollow``, resolved against ``<base>``)."""
    try:
        text = html[:MAX_LINK_SCAN_BYTES].decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know: links are ASCII in practice
        text = html[:MAX_LINK_SCAN_BYTES].decode("utf-8", errors="replace")
    parser = _LinkParser(base_url)
    parser.feed(text)
    parser.close()
    return parser.links()


@dataclass(frozen=True)
class SitemapEntries:
    """The URLs a sitemap lists: pages (``<urlset>``) or further sitemaps (``<sitemapindex>``)."""

    pages: list[str]
    sitemaps: list[str]


def read_sitemap(data: bytes, *, base_url: str, max_bytes: int) -> SitemapEntries:
    """The entries of an XML sitemap, a sitemap index, their gzip form, or a plain list of URLs.

    Raises ``InvalidInput`` when the content is none of these, declares entities (refused so that
    no entity expansion can take place), or unpacks to more than ``max_bytes``.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as unpacked:
                data = unpacked.read(max_bytes + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidInput(f"the sitemap is not valid gzip: {exc}") from exc
        if len(data) > max_bytes:
            raise InvalidInput(f"the sitemap unpacks to more than {max_bytes} bytes")
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"<"):
        lines = text.decode("utf-8", errors="replace").splitlines()
        pages = _unique(url for line in lines if (url := resolve_link(base_url, line)) is not None)
        if not pages:
            raise InvalidInput("the sitemap is neither XML nor a list of http(s) URLs")
        return SitemapEntries(pages=pages, sitemaps=[])
    if b"<!ENTITY" in text or b"<!DOCTYPE" in text.upper():
        raise InvalidInput("the sitemap declares a DOCTYPE or entities, which are refused")
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError: an unknown declared encoding
        raise InvalidInput(f"the sitemap is not well-formed XML: {exc}") from exc
    kind = _local_name(root)
    if kind not in ("urlset", "sitemapindex"):
        raise InvalidInput(f"the sitemap's root element is <{kind}>; expected <urlset> or <sitemapindex>")
    entry = "url" if kind == "urlset" else "sitemap"
    locations = _unique(
        url
        for element in root
        if _local_name(element) == entry
        for loc in element
        if _local_name(loc) == "loc" and (url := resolve_link(base_url, (loc.text or "").strip())) is not None
    )
    if kind == "urlset":
        return SitemapEntries(pages=locations, sitemaps=[])
    return SitemapEntries(pages=[], sitemaps=locations)


def _local_name(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _unique(urls: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(urls))
