"""A crawled web site is answered from like an upload, citing the page's URL-derived file name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ragstream_devstack.e2e import Client
from ragstream_devstack.testing import eventually, new_id
from ragstream_devstack.web_site import WebSite


@pytest.fixture
def site() -> Iterator[WebSite]:
    with WebSite() as running:
        running.put("/robots.txt", "User-agent: *\nDisallow: /drafts/\n", content_type="text/plain")
        running.put(
            "/index.html",
            "<html><head><title>Harbour notes</title></head><body><h1>Harbour notes</h1>"
            "<p>Notes of the Zephyr harbour.</p>"
            '<a href="lighthouse.html">The lighthouse</a> <a href="drafts/plan.html">Draft</a></body></html>',
        )
        running.put(
            "/lighthouse.html",
            "<html><head><title>The lighthouse</title></head><body><h1>The Zephyr lighthouse</h1>"
            "<p>The keeper of the Zephyr lighthouse feeds the gulls with barley bread every morning at dawn.</p>"
            "<p>The lamp was first lit in 1887 and is visible for twenty nautical miles.</p></body></html>",
        )
        running.put("/drafts/plan.html", "<html><body><p>Unpublished plan.</p></body></html>")
        yield running


async def test_crawled_page_is_answered_with_its_url_derived_file_name_cited(client: Client, site: WebSite) -> None:
    collection = new_id("web")
    gateway = client.stack.url("ingest-gateway")

    submitted = await client.http.post(
        f"{gateway}/v1/collections/{collection}/sources/web", json={"url": site.url("/index.html"), "max_depth": 1}
    )
    assert submitted.status_code == 202, submitted.text

    async def crawl_status() -> dict[str, Any]:
        response = await client.http.get(submitted.json()["status_url"])
        response.raise_for_status()
        return dict(response.json())

    crawl = await eventually(crawl_status, until=lambda body: body["status"] in ("done", "failed"), within_s=60)
    jobs = await client.wait_done([p["job_id"] for p in crawl["pages"] if p["outcome"] == "accepted"])
    answer = await client.chat(collection, "What does the keeper of the Zephyr lighthouse feed the gulls?")

    assert crawl["status"] == "done"
    assert {p["url"]: p["outcome"] for p in crawl["pages"]} == {
        site.url("/index.html"): "accepted",
        site.url("/lighthouse.html"): "accepted",
        site.url("/drafts/plan.html"): "skipped",
    }
    assert [j["status"] for j in jobs] == ["indexed", "indexed"]
    assert site.requested("/drafts/plan.html") == 0
    top = answer["citations"][0]
    assert top["file_name"] == f"127.0.0.1+{site.port}_lighthouse.html"
    assert "barley bread" in top["text"]
