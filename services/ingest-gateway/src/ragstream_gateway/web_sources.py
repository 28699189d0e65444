"""Web sources of one gateway: crawl requests are recorded, then run as background tasks.

Guarantees of ``WebSources``:

- a submitted crawl is stored before it is answered, so no crawl is lost by a restart;
- at most ``web_max_crawls`` crawls run in this gateway and at most ``web_max_fetches`` of
  their pages are fetched and taken in at once; further crawls wait ``queued``;
- a crawl is run by one gateway at a time (a lease in PostgreSQL, renewed while it runs).
  ``stop`` gives up the leases, so the next start resumes the crawls at once; after a crash
  they are resumed once the lease has expired (``web_lease_s``), by whichever gateway claims
  them first. Resuming is safe: unchanged pages are deduplicated by content;
- a crawl interrupted by an unreachable database or object store is resumed later; one that
  hits an unexpected error ends ``failed`` with that error instead of being retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

import httpx
import psycopg
import structlog

from ragstream_core.errors import DependencyUnavailable, NotFound
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.web_crawl import Crawl
from ragstream_gateway.web_fetcher import WebFetcher
from ragstream_gateway.web_repository import FAILED, CrawlPageRow, CrawlRepository, CrawlRow, CrawlSpec

log = structlog.get_logger(__name__)


class WebSources:
    """Accepts crawls and runs them in the background; ``start`` it, then ``stop`` it once."""

    def __init__(
        self,
        ports: GatewayPorts,
        crawls: CrawlRepository,
        *,
        owner: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        settings = ports.settings
        self.ports = ports
        self.crawls = crawls
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.fetcher = WebFetcher(
            max_bytes=settings.max_upload_bytes,
            timeout_s=settings.web_fetch_timeout_s,
            max_connections=settings.web_max_fetches,
            allow_private_addresses=settings.web_allow_private_addresses,
            transport=transport,
        )
        self._page_slots = asyncio.Semaphore(settings.web_max_fetches)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._stopped = False

    async def submit(self, spec: CrawlSpec) -> CrawlRow:
        """Record a queued crawl and wake the scheduler; the crawl starts when a slot is free."""
        row = await self.crawls.create(spec)
        log.info("crawl.queued", crawl_id=row.crawl_id, seed_url=row.seed_url, seed_kind=row.seed_kind)
        self._wake.set()
        return row

    async def status(self, tenant_id: str, crawl_id: str) -> tuple[CrawlRow, list[CrawlPageRow]]:
        """A crawl of the tenant with its URLs in the order found; raises ``NotFound``."""
        row = await self.crawls.get(tenant_id, crawl_id)
        if row is None:
            raise NotFound(f"crawl {crawl_id!r} does not exist")
        return row, await self.crawls.pages(crawl_id)

    async def start(self) -> None:
        self._scheduler = asyncio.create_task(self._schedule())

    async def stop(self) -> None:
        """Stop every crawl of this gateway and give up their leases, so that they resume at the next start.

        Calling it again does nothing.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        interrupted = list(self._running)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.crawls.release(self.owner, interrupted)
        except psycopg.Error as exc:  # the leases expire by themselves
            log.warning("crawl.release_failed", error=str(exc))
        await self.fetcher.aclose()
        log.info("crawl.stopped", interrupted=interrupted)

    async def _schedule(self) -> None:
        settings = self.ports.settings
        while True:
            self._wake.clear()
            try:
                await self._renew()
                free = settings.web_max_crawls - len(self._running)
                if free > 0:
                    for row in await self.crawls.claim(self.owner, limit=free, lease_s=settings.web_lease_s):
                        self._launch(row)
            except psycopg.Error as exc:  # the database is unreachable: the next round tries again
                log.warning("crawl.schedule_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=settings.web_lease_s / 3)

    async def _renew(self) -> None:
        held = await self.crawls.renew(self.owner, list(self._running), lease_s=self.ports.settings.web_lease_s)
        for crawl_id, task in list(self._running.items()):
            if crawl_id not in held:  # our lease lapsed and another gateway took the crawl over
                log.warning("crawl.lease_lost", crawl_id=crawl_id)
                task.cancel()

    def _launch(self, row: CrawlRow) -> None:
        task = asyncio.create_task(self._run(row))
        self._running[row.crawl_id] = task

        def finished(_: asyncio.Task[None]) -> None:
            if self._running.get(row.crawl_id) is task:
                del self._running[row.crawl_id]
            self._wake.set()

        task.add_done_callback(finished)

    async def _run(self, row: CrawlRow) -> None:
        structlog.contextvars.bind_contextvars(crawl_id=row.crawl_id, tenant_id=row.tenant_id)
        log.info("crawl.started", seed_url=row.seed_url)
        crawl = Crawl(row, ports=self.ports, crawls=self.crawls, fetcher=self.fetcher, page_slots=self._page_slots)
        try:
            status, error = await crawl.run()
        except (psycopg.OperationalError, OSError, DependencyUnavailable) as exc:
            log.warning("crawl.interrupted", error=str(exc) or type(exc).__name__)
            with contextlib.suppress(psycopg.Error):
                await self.crawls.release(self.owner, [row.crawl_id], retry_after_s=self.ports.settings.web_lease_s)
            return
        except Exception as exc:  # a bug or an unforeseen answer: end the crawl with the reason, do not loop
            log.exception("crawl.crashed")
            status, error = FAILED, f"the crawl stopped on an unexpected error: {type(exc).__name__}: {exc}"
        if await self.crawls.finish(self.owner, row.crawl_id, status=status, error=error):
            log.info("crawl.finished", status=status, error=error)
