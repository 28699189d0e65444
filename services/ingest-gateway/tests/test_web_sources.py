"""Web sources over real ports (PostgreSQL, JetStream, a local object store) and a local web site."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded
from ragstream_devstack.testing import eventually, new_id
from ragstream_devstack.web_site import WebSite
from ragstream_gateway.app import create_app
from ragstream_gateway.media import HTML, PDF
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.settings import GatewaySettings
from ragstream_gateway.web_repository import CrawlRepository, CrawlSpec
from ragstream_gateway.web_sources import WebSources

PROGRESS_URL = "http://progress.test"
ROBOTS = "User-agent: *\nDisallow: /private/\n"


def page(title: str, *links: str, text: str = "") -> str:
    anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    head = f"<head><title>{title}</title></head>"
    return f"<html>{head}<body><h1>{title}</h1><p>{text or title}</p><ul>{anchors}</ul></body></html>"


@dataclass
class Crawler:
    """One gateway with web sources: its REST client, its background crawls, what it announced."""

    client: httpx.AsyncClient
    sources: WebSources
    ports: GatewayPorts
    uploaded_events: Callable[..., Awaitable[list[DocUploaded]]]

    async def submit(self, collection_id: str, *, tenant: str | None = None, **body: Any) -> httpx.Response:
        return await self.client.post(
            f"/v1/collections/{collection_id}/sources/web",
            json=body,
            headers={"X-Tenant-Id": tenant} if tenant else {},
        )

    async def status(self, crawl_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/crawls/{crawl_id}")
        response.raise_for_status()
        return dict(response.json())

    async def finished(self, crawl_id: str) -> dict[str, Any]:
        return await eventually(
            lambda: self.status(crawl_id), until=lambda body: body["status"] in ("done", "failed"), within_s=30
        )

    async def crawl(self, collection_id: str, **body: Any) -> dict[str, Any]:
        response = await self.submit(collection_id, **body)
        assert response.status_code == 202, response.text
        return await self.finished(response.json()["crawl_id"])


CrawlerFactory = Callable[..., Awaitable[Crawler]]


@pytest.fixture
async def crawler_factory(
    make_ports: Callable[..., GatewayPorts],
    gateway_pool: AsyncConnectionPool,
    uploaded_events: Callable[..., Awaitable[list[DocUploaded]]],
) -> AsyncIterator[CrawlerFactory]:
    """Gateways with web sources running; by default they may fetch the local test site."""
    made: list[Crawler] = []

    async def make(settings: GatewaySettings | None = None) -> Crawler:
        ports = make_ports(settings or GatewaySettings(web_allow_private_addresses=True))
        sources = WebSources(ports, CrawlRepository(gateway_pool))
        await sources.start()
        app = create_app(ports, progress_url=PROGRESS_URL)
        app.state.web_sources = sources
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")
        made.append(Crawler(client, sources, ports, uploaded_events))
        return made[-1]

    yield make
    for crawler in made:
        await crawler.client.aclose()
        await crawler.sources.stop()


@pytest.fixture
async def crawler(crawler_factory: CrawlerFactory) -> Crawler:
    return await crawler_factory()


@pytest.fixture
def site() -> Iterator[WebSite]:
    """A site of linked pages: index -> a, b; a -> deep; robots.txt forbids /private/."""
    with WebSite() as running:
        running.put("/robots.txt", ROBOTS, content_type="text/plain")
        running.put("/index.html", page("Index", "a.html", "b.html"))
        running.put("/a.html", page("Page A", "/deep.html", "index.html"))
        running.put("/b.html", page("Page B"))
        running.put("/deep.html", page("Deep page"))
        yield running


def outcomes(status: dict[str, Any]) -> dict[str, str]:
    """Outcome of each page by path."""
    return {p["url"].split(":", 2)[2].partition("/")[2]: p["outcome"] for p in status["pages"] if p["kind"] == "page"}


@pytest.mark.parametrize(
    ("max_depth", "expected"),
    [
        (0, {"index.html": "accepted"}),
        (1, {"index.html": "accepted", "a.html": "accepted", "b.html": "accepted"}),
        (2, {"index.html": "accepted", "a.html": "accepted", "b.html": "accepted", "deep.html": "accepted"}),
    ],
)
async def test_crawl_takes_in_pages_up_to_the_depth_asked(
    crawler: Crawler, site: WebSite, max_depth: int, expected: dict[str, str]
) -> None:
    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"), max_depth=max_depth)

    assert status["status"] == "done"
    assert outcomes(status) == expected
    assert site.requested("/deep.html") == (1 if max_depth >= 2 else 0)
    assert status["counts"]["accepted"] == status["pages_found"] == status["pages_fetched"] == len(expected)


async def test_each_accepted_page_is_an_announced_document_named_after_its_url(crawler: Crawler, site: WebSite) -> None:
    collection = new_id("col")

    status = await crawler.crawl(collection, url=site.url("/index.html"))

    events = await crawler.uploaded_events()
    by_name = {e.meta.file_name: e for e in events}
    assert set(by_name) == {f"127.0.0.1+{site.port}_{name}.html" for name in ("index", "a", "b")}
    for entry in status["pages"]:
        event = by_name[entry["file_name"]]
        assert (event.meta.job_id, event.meta.document_id, event.meta.version) == (
            entry["job_id"],
            entry["document_id"],
            1,
        )
        assert event.meta.collection_id == collection
        assert event.media_type == HTML
        assert entry["job_url"] == f"{PROGRESS_URL}/v1/jobs/{entry['job_id']}"


async def test_submitting_answers_202_with_the_status_url(crawler: Crawler, site: WebSite) -> None:
    response = await crawler.submit(new_id("col"), url=site.url("/index.html"))

    assert response.status_code == 202
    body = response.json()
    assert body["status"] in ("queued", "running")
    assert body["status_url"] == f"http://gateway.test/v1/crawls/{body['crawl_id']}"
    assert response.headers["location"] == body["status_url"]
    assert (await crawler.finished(body["crawl_id"]))["status"] == "done"


async def test_max_pages_bounds_the_pages_taken_on_nearest_first(crawler: Crawler, site: WebSite) -> None:
    site.put("/index.html", page("Index", *(f"p{n}.html" for n in range(6))))
    for n in range(6):
        site.put(f"/p{n}.html", page(f"Page {n}"))

    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"), max_pages=3)

    assert outcomes(status) == {"index.html": "accepted", "p0.html": "accepted", "p1.html": "accepted"}
    assert [site.requested(f"/p{n}.html") for n in range(6)] == [1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(("same_host", "followed"), [(True, False), (False, True)])
async def test_links_to_another_host_are_followed_only_when_asked(
    crawler: Crawler, site: WebSite, same_host: bool, followed: bool
) -> None:
    other = site.url("/other.html", host="localhost")
    site.put("/index.html", page("Index", other))
    site.put("/other.html", page("Other host"))

    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"), same_host=same_host)

    taken = [p["url"] for p in status["pages"] if p["outcome"] == "accepted"]
    assert (other in taken) is followed
    assert site.requested("/other.html") == int(followed)


async def test_pages_robots_txt_disallows_are_skipped_and_never_requested(crawler: Crawler, site: WebSite) -> None:
    site.put("/index.html", page("Index", "a.html", "private/secret.html"))
    site.put("/private/secret.html", page("Secret"))

    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"))

    [secret] = [p for p in status["pages"] if p["url"].endswith("/private/secret.html")]
    assert secret["outcome"] == "skipped"
    assert "disallowed by robots.txt" in secret["error"]
    assert site.requested("/private/secret.html") == 0
    assert status["counts"] | {"accepted": 2, "skipped": 1} == status["counts"]


async def test_start_page_disallowed_by_robots_txt_fails_the_crawl(crawler: Crawler, site: WebSite) -> None:
    site.put("/private/start.html", page("Start"))

    status = await crawler.crawl(new_id("col"), url=site.url("/private/start.html"))

    assert status["status"] == "failed"
    assert "disallowed by robots.txt" in status["error"]
    assert site.requested("/private/start.html") == 0


async def test_pages_asking_not_to_be_indexed_are_skipped(crawler: Crawler, site: WebSite) -> None:
    site.put("/b.html", '<html><head><meta name="robots" content="noindex"></head><body><p>B</p></body></html>')

    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"))

    assert outcomes(status)["b.html"] == "skipped"
    assert "noindex" in next(p["error"] for p in status["pages"] if p["url"].endswith("/b.html"))


async def test_sitemap_index_leads_to_its_pages_including_a_pdf(crawler: Crawler, site: WebSite, corpus: Path) -> None:
    site.put(
        "/sitemap.xml",
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{site.url('/pages.xml')}</loc></sitemap></sitemapindex>",
        content_type="application/xml",
    )
    site.put(
        "/pages.xml",
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url('/a.html')}</loc></url><url><loc>{site.url('/report.pdf')}</loc></url></urlset>",
        content_type="application/xml",
    )
    site.put("/report.pdf", (corpus / "pdf" / "multi_page.pdf").read_bytes(), content_type="application/pdf")

    status = await crawler.crawl(new_id("col"), sitemap_url=site.url("/sitemap.xml"))

    assert status["status"] == "done"
    assert status["sitemap_url"] == site.url("/sitemap.xml")
    assert [(p["kind"], p["outcome"]) for p in status["pages"] if p["kind"] == "sitemap"] == [("sitemap", "read")] * 2
    assert outcomes(status) == {"a.html": "accepted", "report.pdf": "accepted"}
    [pdf] = [p for p in status["pages"] if p["url"].endswith(".pdf")]
    assert (pdf["media_type"], pdf["file_name"]) == (PDF, f"127.0.0.1+{site.port}_report.pdf")
    assert site.requested("/deep.html") == 0  # a sitemap's pages are at depth 1: their links are not followed


async def test_crawling_again_answers_unchanged_and_opens_no_job(crawler: Crawler, site: WebSite) -> None:
    collection = new_id("col")
    first = await crawler.crawl(collection, url=site.url("/index.html"))

    again = await crawler.crawl(collection, url=site.url("/index.html"))

    assert set(outcomes(again).values()) == {"unchanged"}
    assert {p["url"]: p["job_id"] for p in again["pages"]} == {p["url"]: p["job_id"] for p in first["pages"]}
    assert len(await crawler.uploaded_events()) == 3


async def test_a_changed_page_becomes_version_two_of_the_same_document(crawler: Crawler, site: WebSite) -> None:
    collection = new_id("col")
    first = await crawler.crawl(collection, url=site.url("/index.html"))
    site.put("/b.html", page("Page B", text="Page B has changed."))

    again = await crawler.crawl(collection, url=site.url("/index.html"))

    before = {p["url"]: p for p in first["pages"]}
    [changed] = [p for p in again["pages"] if p["outcome"] == "accepted"]
    assert changed["url"] == site.url("/b.html")
    assert (changed["document_id"], changed["version"]) == (before[changed["url"]]["document_id"], 2)
    assert changed["file_name"] == before[changed["url"]]["file_name"]
    assert [e.meta.version for e in await crawler.uploaded_events()] == [1, 1, 1, 2]


async def test_redirects_are_followed_within_the_crawls_scope_only(crawler: Crawler, site: WebSite) -> None:
    site.put("/index.html", page("Index", "old.html", "moved.html"))
    site.put("/old.html", b"", status=301, headers={"Location": "/b.html"})
    site.put("/moved.html", b"", status=302, headers={"Location": site.url("/b.html", host="localhost")})

    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"))

    pages = {p["url"].rpartition("/")[2]: p for p in status["pages"]}
    assert (pages["old.html"]["outcome"], pages["old.html"]["final_url"]) == ("accepted", site.url("/b.html"))
    assert pages["moved.html"]["outcome"] == "skipped"
    assert "outside the crawl's scope" in pages["moved.html"]["error"]
    assert site.requests.count("/b.html") == 1  # fetched through the redirect, on 127.0.0.1 only


async def test_a_missing_page_is_recorded_as_failed_with_the_reason(crawler: Crawler, site: WebSite) -> None:
    site.put("/index.html", page("Index", "a.html", "missing.html"))

    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"))

    assert status["status"] == "done"
    [missing] = [p for p in status["pages"] if p["url"].endswith("/missing.html")]
    assert (missing["outcome"], missing["http_status"], missing["error"]) == ("failed", 404, "HTTP 404 Not Found")
    assert "job_id" not in missing
    assert status["counts"]["failed"] == 1


async def test_a_start_page_that_cannot_be_fetched_fails_the_crawl(crawler: Crawler, site: WebSite) -> None:
    status = await crawler.crawl(new_id("col"), url=site.url("/nowhere.html"))

    assert status["status"] == "failed"
    assert "HTTP 404 Not Found" in status["error"]


async def test_content_the_gateway_does_not_accept_is_failed_with_the_reason(
    crawler_factory: CrawlerFactory, site: WebSite
) -> None:
    crawler = await crawler_factory(GatewaySettings(web_allow_private_addresses=True, max_upload_bytes=2000))
    site.put("/index.html", page("Index", "logo.png", "big.html"))
    site.put("/logo.png", b"\x89PNG\r\n\x1a\n", content_type="image/png")
    site.put("/big.html", page("Big", text="word " * 1000))

    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"))

    errors = {p["url"].rpartition("/")[2]: p["error"] for p in status["pages"] if p["outcome"] == "failed"}
    assert "content type 'image/png' is not accepted" in errors["logo.png"]
    assert "larger than the limit of 2000 bytes" in errors["big.html"]


async def test_include_and_exclude_prefixes_choose_the_pages(crawler: Crawler, site: WebSite) -> None:
    site.put("/index.html", page("Index", "docs/one.html", "docs/old/two.html", "blog/three.html"))
    for path in ("/docs/one.html", "/docs/old/two.html", "/blog/three.html"):
        site.put(path, page(path))

    status = await crawler.crawl(
        new_id("col"), url=site.url("/index.html"), include_prefixes=["/docs/"], exclude_prefixes=["/docs/old/"]
    )

    assert outcomes(status) == {"index.html": "accepted", "docs/one.html": "accepted"}


async def test_private_addresses_are_refused_unless_the_gateway_allows_them(
    crawler_factory: CrawlerFactory, site: WebSite
) -> None:
    crawler = await crawler_factory(GatewaySettings())

    status = await crawler.crawl(new_id("col"), url=site.url("/index.html"))

    assert status["status"] == "failed"
    assert "non-public address 127.0.0.1" in status["error"]
    assert site.requests == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"url": "ftp://example.com/"}, "only absolute http:// and https:// URLs"),
        ({"url": "https://user:pw@example.com/"}, "must not carry credentials"),
        ({"url": "example.com/docs"}, "only absolute http:// and https:// URLs"),
        ({}, "exactly one of 'url'"),
        ({"url": "https://example.com/", "sitemap_url": "https://example.com/s.xml"}, "exactly one of 'url'"),
        ({"url": "https://example.com/", "max_depth": 6}, "less than or equal to 5"),
        ({"url": "https://example.com/", "max_pages": 1001}, "less than or equal to 1000"),
        ({"sitemap_url": "https://example.com/s.xml", "max_depth": 0}, "max_depth must be at least 1"),
        ({"url": "https://example.com/", "include_prefixes": ["docs"]}, "prefixes are URL paths starting with '/'"),
    ],
)
async def test_invalid_sources_are_refused_with_422_and_the_reason(
    crawler: Crawler, body: dict[str, Any], reason: str
) -> None:
    response = await crawler.submit(new_id("col"), **body)

    assert response.status_code == 422
    assert reason in response.text


async def test_crawl_of_another_tenant_is_not_found(crawler: Crawler, site: WebSite) -> None:
    response = await crawler.submit(new_id("col"), tenant=new_id("tenant"), url=site.url("/index.html"))
    crawl_id = response.json()["crawl_id"]

    answer = await crawler.client.get(f"/v1/crawls/{crawl_id}")

    assert answer.status_code == 404
    assert answer.json()["detail"] == f"crawl {crawl_id!r} does not exist"


async def test_a_crawl_stopped_with_its_gateway_is_resumed_by_the_next_one(
    crawler_factory: CrawlerFactory, site: WebSite
) -> None:
    first = await crawler_factory()
    release = site.hold("/b.html")
    crawl_id = (await first.submit(new_id("col"), url=site.url("/index.html"))).json()["crawl_id"]
    # stopped while b.html hangs, once a.html is recorded (a page taken in but not yet recorded
    # when its gateway stops is fetched again and answers "unchanged": documented, not tested here)
    await eventually(
        lambda: first.status(crawl_id),
        until=lambda status: site.requested("/b.html") == 1 and outcomes(status).get("a.html") == "accepted",
        within_s=30,
    )
    await first.sources.stop()
    interrupted = await first.status(crawl_id)
    release.set()

    second = await crawler_factory()
    resumed = await second.finished(crawl_id)

    assert interrupted["status"] == "running"
    assert outcomes(interrupted)["b.html"] == "pending"
    assert resumed["status"] == "done"
    assert outcomes(resumed) == {"index.html": "accepted", "a.html": "accepted", "b.html": "accepted"}
    assert site.requested("/index.html") == 1  # finished pages are not fetched again


async def test_a_crawl_leased_by_a_live_gateway_is_not_taken_over(gateway_pool: AsyncConnectionPool) -> None:
    crawls = CrawlRepository(gateway_pool)
    spec = CrawlSpec("default", new_id("col"), "https://example.com/", "page", 1, 10, True)
    row = await crawls.create(spec)
    assert row.crawl_id in {c.crawl_id for c in await crawls.claim("live", limit=1000, lease_s=60)}

    taken = await crawls.claim("other", limit=1000, lease_s=0.01)
    await crawls.release("live", [row.crawl_id], retry_after_s=0)
    after_release = await crawls.claim("other", limit=1000, lease_s=0.01)

    assert row.crawl_id not in {c.crawl_id for c in taken}
    assert row.crawl_id in {c.crawl_id for c in after_release}
    assert await crawls.finish("other", row.crawl_id, status="done")
