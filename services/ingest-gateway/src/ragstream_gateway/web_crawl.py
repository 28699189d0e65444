"""One crawl, from its pending URLs to its end: breadth-first, each page taken in like an upload.

Guarantees of ``Crawl.run``:

- breadth-first: every URL of depth d is finished before any of depth d + 1 is fetched, so
  ``max_pages`` keeps the pages nearest the seed; no page deeper than ``max_depth`` is fetched;
- a page is fetched once per crawl (URLs are normalized and recorded before fetching); at most
  ``max_pages`` pages are taken on; URLs robots.txt forbids are recorded as ``skipped`` and do
  not count;
- each page goes through ``accept_upload`` with a name derived from its URL (``reason="web"``),
  so an unchanged page answers ``unchanged`` and opens no job, and a changed one becomes the
  next version of the same document;
- resumable: a URL's outcome and the URLs it led to are stored in one transaction, and a run
  starts from the URLs still pending. A page taken in but not yet recorded when the process
  died is fetched again and answers ``unchanged``.

Errors of the database or object store propagate (the caller retries the crawl later);
everything that concerns one URL ends as that URL's outcome with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import structlog

from ragstream_core.errors import InvalidInput
from ragstream_gateway.handlers import Upload, accept_upload
from ragstream_gateway.media import ACCEPTED, HTML, MARKDOWN, TEXT, detect_media_type
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.web_fetcher import FetchedPage, FetchFailed, FetchSkipped, RobotsRules, WebFetcher
from ragstream_gateway.web_markup import MAX_LINK_SCAN_BYTES, read_page_links, read_sitemap
from ragstream_gateway.web_repository import (
    FAILED,
    READ,
    SKIPPED,
    TAKEN_IN,
    UNCHANGED,
    CrawlPageRow,
    CrawlRepository,
    CrawlRow,
    NewPage,
    PageOutcome,
)
from ragstream_gateway.web_urls import Scope, host_of, page_file_name

log = structlog.get_logger(__name__)

PAGE = "page"
SITEMAP = "sitemap"
DONE = "done"
#: sitemaps (an index and the sitemaps it names) one crawl reads at most
MAX_SITEMAPS = 100

#: Content-Type values -> the media type they announce; others are refused before the body is read
_ANNOUNCED: dict[str, str] = {
    **{media_type: media_type for media_type in ACCEPTED.values() if media_type != TEXT},
    "application/xhtml+xml": HTML,
    "text/x-markdown": MARKDOWN,
}
#: Content-Type values that say too little: the URL's extension or the bytes decide
_GENERIC = {"", "text/plain", "application/octet-stream", "binary/octet-stream"}


def refuse_content_type(media_type: str) -> str | None:
    """The reason a page announced as ``media_type`` is not fetched, or None if it may be."""
    if media_type in _ANNOUNCED or media_type in _GENERIC:
        return None
    accepted = ", ".join(sorted({*_ANNOUNCED, "text/plain"}))
    return f"content type {media_type!r} is not accepted; accepted: {accepted}"


def page_media_type(page: FetchedPage, url: str) -> str:
    """The media type a page is taken in as: its Content-Type, else its URL's extension, else its bytes."""
    if page.media_type in _ANNOUNCED:
        return _ANNOUNCED[page.media_type]
    by_extension = ACCEPTED.get(PurePosixPath(urlsplit(url).path).suffix.lower())
    if by_extension is not None:
        return by_extension
    if page.media_type == "text/plain":
        return TEXT
    return detect_media_type("page", page.body)  # raises UnsupportedMediaType


class Crawl:
    """The work of one leased crawl; ``run`` returns its final status and error."""

    def __init__(
        self,
        row: CrawlRow,
        *,
        ports: GatewayPorts,
        crawls: CrawlRepository,
        fetcher: WebFetcher,
        page_slots: asyncio.Semaphore,
    ) -> None:
        self.row = row
        self.ports = ports
        self.crawls = crawls
        self.fetcher = fetcher
        self.page_slots = page_slots
        self.robots = RobotsRules(fetcher)
        self.scope = self._scope(host_of(row.seed_url))
        self._seen: set[str] = set()
        self._pages_taken = 0
        self._pages_skipped = 0
        self._sitemaps = 0

    def _scope(self, seed_host: str) -> Scope:
        return Scope(
            host=seed_host if self.row.same_host else None,
            include_prefixes=tuple(self.row.include_prefixes),
            exclude_prefixes=tuple(self.row.exclude_prefixes),
        )

    async def run(self) -> tuple[str, str | None]:
        """Work through the pending URLs, level by level; the crawl's status and error at the end."""
        for row in await self.crawls.pages(self.row.crawl_id):
            self._count(row)
            if row.url == self.row.seed_url and row.final_url:
                self.scope = self._scope(host_of(row.final_url))
        while pending := await self.crawls.pages(self.row.crawl_id, pending_only=True):
            level = [row for row in pending if row.depth == pending[0].depth]
            try:
                async with asyncio.TaskGroup() as group:
                    for row in level:
                        group.create_task(self._take(row))
            except ExceptionGroup as failures:  # the first error stopped the level: it is the one to handle
                raise failures.exceptions[0] from None
        return await self._verdict()

    def _count(self, row: CrawlPageRow) -> None:
        self._seen |= {row.url, row.final_url or row.url}
        if row.kind == SITEMAP:
            self._sitemaps += 1
        elif row.outcome == SKIPPED and row.fetched_at is None:
            self._pages_skipped += 1
        else:
            self._pages_taken += 1

    async def _verdict(self) -> tuple[str, str | None]:
        rows = await self.crawls.pages(self.row.crawl_id)
        seed = next(row for row in rows if row.url == self.row.seed_url)
        if seed.outcome == FAILED or (seed.outcome == SKIPPED and seed.fetched_at is None):
            return FAILED, f"the {seed.kind} {seed.url} could not be taken in: {seed.error}"
        return DONE, None

    async def _take(self, row: CrawlPageRow) -> None:
        async with self.page_slots:
            if row.kind == SITEMAP:
                result = await self._read_sitemap(row)
            else:
                result = await self._take_page(row)
        if result.final_url:  # links to where a redirect led are known too
            self._seen.add(result.final_url)
        result = replace(result, found=await self._admit(result.found))
        await self.crawls.record_page(self.row.crawl_id, row.url, result)
        log.info("crawl.page", url=row.url, kind=row.kind, outcome=result.outcome, error=result.error)

    async def _fetch(
        self, row: CrawlPageRow, *, accepts_type: Callable[[str], str | None] = lambda _: None
    ) -> FetchedPage:
        is_seed = row.url == self.row.seed_url
        page = await self.fetcher.fetch_page(
            row.url,
            robots=self.robots,
            admits=(lambda _: True) if is_seed else self.scope.admits,
            accepts_type=accepts_type,
        )
        if is_seed and page.url != row.url:  # the seed moved (to https, to www.): its new host is the scope
            self.scope = self._scope(host_of(page.url))
        return page

    async def _take_page(self, row: CrawlPageRow) -> PageOutcome:
        try:
            page = await self._fetch(row, accepts_type=refuse_content_type)
        except FetchFailed as exc:
            return _not_fetched(exc)
        fetched = PageOutcome(FAILED, fetched=True, final_url=page.url, http_status=page.http_status)
        with page.body:
            try:
                media_type = page_media_type(page, row.url)
            except InvalidInput as exc:
                return replace(fetched, error=str(exc))
            found: list[NewPage] = []
            noindex = "noindex" in page.robots_directives
            if media_type == HTML:
                links = await asyncio.to_thread(
                    read_page_links,
                    page.body.read(MAX_LINK_SCAN_BYTES),
                    base_url=page.url,
                    encoding=page.charset or "utf-8",
                )
                page.body.seek(0)
                noindex |= links.noindex
                follow = not links.nofollow and "nofollow" not in page.robots_directives
                if follow and row.depth < self.row.max_depth:
                    found = [NewPage(url, PAGE, row.depth + 1) for url in links.links]
            fetched = replace(fetched, found=found)
            if noindex:
                return replace(fetched, outcome=SKIPPED, error="the page asks not to be indexed (robots noindex)")
            file_name = page_file_name(row.url, media_type)
            upload = Upload(
                tenant_id=self.row.tenant_id,
                collection_id=self.row.collection_id,
                file_name=file_name,
                source=page.body,
                reason="web",
                source_url=row.url,
            )
            try:
                result = await accept_upload(upload, self.ports)
            except InvalidInput as exc:  # empty, too large, or content contradicting its type
                return replace(fetched, error=str(exc), file_name=file_name)
        return replace(
            fetched,
            outcome=UNCHANGED if result.unchanged else TAKEN_IN,
            job_id=result.version.job_id,
            document_id=result.version.document_id,
            version=result.version.version,
            file_name=file_name,
            media_type=result.version.media_type,
        )

    async def _read_sitemap(self, row: CrawlPageRow) -> PageOutcome:
        try:
            page = await self._fetch(row)
        except FetchFailed as exc:
            return _not_fetched(exc)
        with page.body:
            data = page.body.read()
        fetched = PageOutcome(FAILED, fetched=True, final_url=page.url, http_status=page.http_status)
        try:
            entries = await asyncio.to_thread(
                read_sitemap, data, base_url=page.url, max_bytes=self.ports.settings.max_upload_bytes
            )
        except InvalidInput as exc:
            return replace(fetched, error=str(exc))
        found = [NewPage(url, SITEMAP, row.depth) for url in entries.sitemaps]
        if row.depth < self.row.max_depth:
            found += [NewPage(url, PAGE, row.depth + 1) for url in entries.pages]
        return replace(fetched, outcome=READ, found=found)

    async def _admit(self, found: list[NewPage]) -> list[NewPage]:
        """The found URLs to record: new, in scope, within the limits; robots-forbidden ones as skipped."""
        admitted: list[NewPage] = []
        for new in found:
            if new.url in self._seen or not (new.kind == SITEMAP or self.scope.admits(new.url)):
                continue
            if new.kind == SITEMAP:
                if self._sitemaps >= MAX_SITEMAPS:
                    continue
            elif self._pages_taken >= self.row.max_pages:
                break
            refusal = await self.robots.refusal(new.url)
            if new.url in self._seen:  # found meanwhile by a sibling page
                continue
            if refusal is not None:
                if new.kind == PAGE and self._pages_skipped < self.row.max_pages:
                    admitted.append(NewPage(new.url, new.kind, new.depth, SKIPPED, refusal))
                    self._pages_skipped += 1
                    self._seen.add(new.url)
                continue
            if new.kind == SITEMAP:
                self._sitemaps += 1
            else:
                if self._pages_taken >= self.row.max_pages:
                    break
                self._pages_taken += 1
            self._seen.add(new.url)
            admitted.append(new)
        return admitted


def _not_fetched(exc: FetchFailed) -> PageOutcome:
    outcome = SKIPPED if isinstance(exc, FetchSkipped) else FAILED
    return PageOutcome(outcome, fetched=exc.http_status is not None, error=str(exc), http_status=exc.http_status)
