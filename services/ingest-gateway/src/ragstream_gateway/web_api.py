"""REST adapter of web sources: submit a crawl, read its status (thin routes over ``WebSources``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ragstream_core.errors import DependencyUnavailable, InvalidInput
from ragstream_gateway.api import Actor, Ports, Tenant
from ragstream_gateway.handlers import check_identifier
from ragstream_gateway.web_repository import OUTCOMES, READ, CrawlPageRow, CrawlRow, CrawlSpec
from ragstream_gateway.web_sources import WebSources
from ragstream_gateway.web_urls import check_url

MAX_DEPTH = 5
MAX_PAGES = 1000
MAX_PREFIXES = 50

web_router = APIRouter(prefix="/v1", tags=["web sources"])


def get_web_sources(request: Request) -> WebSources:
    web_sources: WebSources | None = getattr(request.app.state, "web_sources", None)
    if web_sources is None:
        raise DependencyUnavailable("web sources are not running in this gateway")
    return web_sources


Sources = Annotated[WebSources, Depends(get_web_sources)]


class WebSourceRequest(BaseModel):
    """A web source: one page to follow links from, or a sitemap listing the pages."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None,
        description="An http(s) page to start from; its links are followed breadth-first. No credentials in the URL.",
        examples=["https://docs.example.com/guide/"],
    )
    sitemap_url: str | None = Field(
        None,
        description="An http(s) sitemap (<urlset>, <sitemapindex>, gzip or a plain list of URLs); its pages are"
        " at depth 1.",
    )
    max_depth: int = Field(
        1, ge=0, le=MAX_DEPTH, description="Link hops from the start page (0: the start page alone)."
    )
    max_pages: int = Field(50, ge=1, le=MAX_PAGES, description="Pages the crawl takes on at most.")
    same_host: bool = Field(True, description="Follow links to the start URL's host[:port] only.")
    include_prefixes: list[str] = Field(
        default_factory=list,
        max_length=MAX_PREFIXES,
        description="If given, only pages whose path starts with one of these are taken in (the start page always is).",
        examples=[["/guide/"]],
    )
    exclude_prefixes: list[str] = Field(
        default_factory=list,
        max_length=MAX_PREFIXES,
        description="Pages whose path starts with one of these are left out.",
    )

    @field_validator("url", "sitemap_url")
    @classmethod
    def _check_url(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return None
        try:
            return check_url(value, field=info.field_name)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("include_prefixes", "exclude_prefixes")
    @classmethod
    def _check_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not prefix.startswith("/") or len(prefix) > 512:
                raise ValueError(f"path prefix {prefix!r} is not accepted: prefixes are URL paths starting with '/'")
        return value

    @model_validator(mode="after")
    def _one_seed(self) -> WebSourceRequest:
        if (self.url is None) == (self.sitemap_url is None):
            raise ValueError("send exactly one of 'url' (a page to crawl from) or 'sitemap_url'")
        if self.sitemap_url is not None and self.max_depth < 1:
            raise ValueError("a sitemap's pages are at depth 1: max_depth must be at least 1 with 'sitemap_url'")
        return self


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def page_body(row: CrawlPageRow, *, progress_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": row.url,
        "kind": row.kind,
        "depth": row.depth,
        "outcome": row.outcome,
        "http_status": row.http_status,
        "error": row.error,
        "fetched_at": _time(row.fetched_at),
    }
    if row.final_url and row.final_url != row.url:
        body["final_url"] = row.final_url
    if row.job_id:
        body |= {
            "job_id": row.job_id,
            "job_url": f"{progress_url}/v1/jobs/{row.job_id}",
            "document_id": row.document_id,
            "version": row.version,
            "media_type": row.media_type,
        }
    if row.file_name:
        body["file_name"] = row.file_name
    return body


def crawl_body(
    row: CrawlRow, pages: list[CrawlPageRow] | None, *, status_url: str, progress_url: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "crawl_id": row.crawl_id,
        "status_url": status_url,
        "collection_id": row.collection_id,
        "status": row.status,
        "error": row.error,
        "url" if row.seed_kind == "page" else "sitemap_url": row.seed_url,
        "max_depth": row.max_depth,
        "max_pages": row.max_pages,
        "same_host": row.same_host,
        "include_prefixes": row.include_prefixes,
        "exclude_prefixes": row.exclude_prefixes,
        "created_at": _time(row.created_at),
        "started_at": _time(row.started_at),
        "finished_at": _time(row.finished_at),
    }
    if pages is not None:
        page_rows = [p for p in pages if p.kind == "page"]
        counts = {outcome: 0 for outcome in OUTCOMES if outcome != READ}
        for page in page_rows:
            counts[page.outcome] += 1
        body["pages_found"] = len(page_rows)
        body["pages_fetched"] = sum(1 for p in page_rows if p.fetched_at is not None)
        body["counts"] = counts
        body["pages"] = [page_body(p, progress_url=progress_url) for p in pages]
    return body


@web_router.post("/collections/{collection_id}/sources/web", status_code=202)
async def submit_web_source(
    request: Request,
    collection_id: str,
    source: WebSourceRequest,
    sources: Sources,
    ports: Ports,
    tenant: Tenant,
    actor: Actor,
) -> JSONResponse:
    """Crawl a site (or a sitemap) into the collection; 202 with ``crawl_id`` and ``status_url``.

    The crawler fetches breadth-first with the user agent ``ragstream-crawler/0.1``, obeys each
    host's robots.txt (``Disallow``, ``Allow`` and ``Crawl-delay``; ``<meta name="robots">`` and
    ``X-Robots-Tag`` ``noindex``/``nofollow``; links with ``rel="nofollow"`` are not followed),
    fetches only public addresses unless the gateway allows private ones, and takes in pages of
    the accepted types (HTML, PDF, Markdown, text, CSV, Office) up to the upload size limit.
    Each page becomes a document named after its URL, exactly like an upload: an unchanged page
    answers ``unchanged`` and opens no job, a changed one becomes the next version.
    Invalid requests are ``422`` with the reason.
    """
    check_identifier("collection", collection_id)
    spec = CrawlSpec(
        tenant_id=tenant,
        collection_id=collection_id,
        seed_url=source.url or source.sitemap_url or "",
        seed_kind="page" if source.url else "sitemap",
        max_depth=source.max_depth,
        max_pages=source.max_pages,
        same_host=source.same_host,
        include_prefixes=source.include_prefixes,
        exclude_prefixes=source.exclude_prefixes,
    )
    row = await sources.submit(spec)
    await ports.documents.record(
        tenant_id=tenant,
        actor=actor,
        action="crawl.submit",
        outcome="accepted",
        collection_id=collection_id,
        crawl_id=row.crawl_id,
        seed_url=spec.seed_url,
    )
    status_url = str(request.url_for("get_crawl", crawl_id=row.crawl_id))
    body = crawl_body(row, None, status_url=status_url, progress_url=request.app.state.progress_url)
    return JSONResponse(body, status_code=202, headers={"Location": status_url})


@web_router.get("/crawls/{crawl_id}", name="get_crawl")
async def get_crawl(request: Request, crawl_id: str, sources: Sources, tenant: Tenant) -> dict[str, Any]:
    """A crawl's status (``queued``, ``running``, ``done`` or ``failed``), counts and the outcome of every URL.

    Outcomes: ``pending``, ``accepted`` (with its ``job_id``), ``unchanged`` (the collection
    already holds these bytes: no job), ``failed`` and ``skipped`` (with the reason in ``error``),
    and ``read`` for sitemaps.
    """
    row, pages = await sources.status(tenant, crawl_id)
    return crawl_body(row, pages, status_url=str(request.url), progress_url=request.app.state.progress_url)
