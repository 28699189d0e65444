"""URLs, file names, links and sitemaps of web sources (pure functions)."""

from __future__ import annotations

import gzip

import pytest

from ragstream_core.errors import InvalidInput
from ragstream_gateway.media import HTML, MARKDOWN, PDF
from ragstream_gateway.web_markup import read_page_links, read_sitemap, robots_directives
from ragstream_gateway.web_urls import Scope, check_url, normalize_url, page_file_name


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("HTTP://Example.COM:80/a/./b/../c#part", "http://example.com/a/c"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com:8443/x?q=1#f", "https://example.com:8443/x?q=1"),
    ],
)
def test_urls_are_normalized_to_one_spelling(raw: str, normal: str) -> None:
    assert check_url(raw) == normal


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ftp://example.com/file", "only absolute http:// and https:// URLs"),
        ("/relative/path", "only absolute http:// and https:// URLs"),
        ("https://user:secret@example.com/", "must not carry credentials"),
        ("http:///no-host", "has no host"),
        ("http://example.com:port/", "is not a valid URL"),
    ],
)
def test_urls_that_cannot_be_crawled_are_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        check_url(raw)


def test_plain_page_urls_give_readable_file_names() -> None:
    assert page_file_name("https://docs.example.com/guide/intro.html", HTML) == "docs.example.com_guide_intro.html"
    assert page_file_name("http://127.0.0.1:8123/ducks.md", MARKDOWN) == "127.0.0.1+8123_ducks.md"
    assert page_file_name("https://example.com/", HTML) == "example.com.html"


def test_urls_that_a_name_cannot_spell_get_a_digest_that_keeps_names_distinct() -> None:
    names = {
        page_file_name(url, HTML)
        for url in (
            "https://example.com/docs",
            "https://example.com/docs.html",
            "https://example.com/docs/",
            "https://example.com/docs?page=2",
            "https://example.com/a_b.html",
            "https://example.com/a/b.html",
        )
    }

    assert len(names) == 6
    assert page_file_name("https://example.com/docs", HTML).startswith("example.com_docs-")


def test_a_page_keeps_its_name_across_crawls_and_schemes() -> None:
    assert page_file_name("https://example.com/report", PDF) == page_file_name("http://example.com/report", PDF)


def test_scope_restricts_host_and_path_prefixes() -> None:
    scope = Scope(host="example.com", include_prefixes=("/docs/",), exclude_prefixes=("/docs/old/",))

    assert scope.admits(normalize_url("https://example.com/docs/a"))
    assert not scope.admits(normalize_url("https://other.example.com/docs/a"))
    assert not scope.admits(normalize_url("https://example.com/blog/a"))
    assert not scope.admits(normalize_url("https://example.com/docs/old/a"))


def test_page_links_are_resolved_deduplicated_and_nofollow_is_respected() -> None:
    html = b"""<html><head><base href="/docs/"></head><body>
    <a href="a.html#top">A</a> <a href="a.html">A again</a> <a href="mailto:x@example.com">mail</a>
    <a href="https://other.example/">other</a> <a rel="nofollow" href="secret.html">secret</a>
    <a href="javascript:void(0)">js</a> <a href="#only-a-fragment">here</a></body></html>"""

    links = read_page_links(html, base_url="https://example.com/index.html")

    assert links.links == ["https://example.com/docs/a.html", "https://other.example/"]
    assert (links.noindex, links.nofollow) == (False, False)


def test_robots_meta_tags_are_read() -> None:
    links = read_page_links(b'<meta name="robots" content="noindex, nofollow">', base_url="https://example.com/")

    assert (links.noindex, links.nofollow) == (True, True)
    assert robots_directives("none") == {"noindex", "nofollow"}
    assert robots_directives("googlebot: noindex") == set()


def test_sitemaps_list_pages_or_further_sitemaps() -> None:
    urlset = b"""<?xml version="1.0" encoding="UTF-8"?>
    <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
            xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
      <url><loc>https://example.com/a.html</loc><image:image><image:loc>https://example.com/a.png</image:loc>
      </image:image></url>
      <url><loc> https://example.com/b.html </loc></url>
    </urlset>"""
    index = b"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
      <sitemap><loc>https://example.com/pages.xml.gz</loc></sitemap></sitemapindex>"""

    pages = read_sitemap(gzip.compress(urlset), base_url="https://example.com/s.xml", max_bytes=10_000)
    nested = read_sitemap(index, base_url="https://example.com/s.xml", max_bytes=10_000)

    assert pages.pages == ["https://example.com/a.html", "https://example.com/b.html"]
    assert nested.sitemaps == ["https://example.com/pages.xml.gz"]


def test_sitemaps_with_entities_are_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><urlset><url><loc>&a;</loc></url></urlset>'

    with pytest.raises(InvalidInput, match="DOCTYPE or entities"):
        read_sitemap(bomb, base_url="https://example.com/", max_bytes=10_000)
