"""The web page as the gateway serves it (its behaviour in a browser: tests/e2e/test_web_page.py),
and the queue depth the Admin view reads."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from ragstream_core.bus import Delivery
from ragstream_core.proto.ragstream.v1.events_pb2 import DocParsed, EventMeta
from ragstream_devstack.testing import new_id
from ragstream_gateway.jobs import release_ready, track_version
from ragstream_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import Gateway, GatewayFactory


async def test_the_page_its_modules_and_the_widget_are_served_under_ui(gateway: Gateway) -> None:
    root = await gateway.client.get("/")
    page = await gateway.client.get("/ui/")
    module = await gateway.client.get("/ui/app.js")
    widget = await gateway.client.get("/ui/widget.js")

    assert root.status_code == 307
    assert root.headers["location"] == "/ui/"
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text
    assert module.status_code == 200
    assert "javascript" in module.headers["content-type"]
    assert widget.status_code == 200
    assert "attachShadow" in widget.text


async def test_every_module_the_page_imports_is_served(gateway: Gateway) -> None:
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        response = await gateway.client.get(f"/ui/{name}")
        assert response.status_code == 200, f"{name} is imported but not served"
        seen.add(name)
        todo += [m for m in re.findall(r'from "\./([\w.-]+\.js)"', response.text) if m not in seen]

    assert {"app.js", "api.js", "ingest.js", "sources.js", "chat.js", "admin.js"} <= seen


async def test_config_names_the_public_urls_of_progress_and_chat_and_the_auth_mode(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(GatewaySettings(chat_url="http://chat.example:8082/"))

    response = await gateway.client.get("/ui/config.json")

    assert response.status_code == 200
    assert response.json() == {
        "progress_url": "http://progress.test",
        "chat_url": "http://chat.example:8082",
        "auth_mode": "open",  # the page signs in only under keys
    }


async def test_an_unknown_ui_file_is_404(gateway: Gateway) -> None:
    response = await gateway.client.get("/ui/nothing-here.js")

    assert response.status_code == 404


@pytest.fixture
async def empty_queue(gateway_pool: Any) -> None:
    """The scheduler serves every collection of the database: end the versions other tests left
    unfinished, so that they take no room in the window of released jobs."""
    async with gateway_pool.connection() as conn:
        await conn.execute(
            "UPDATE gateway.document_versions SET status = 'superseded', finished_at = now()"
            " WHERE status = 'processing'"
        )


async def upload(gateway: Gateway, collection: str, name: str, **params: str) -> dict[str, Any]:
    response = await gateway.upload(collection, name, f"# {name}\n\n{new_id()}\n".encode(), **params)
    assert response.status_code == 202, response.text
    return dict(response.json())


@pytest.mark.usefixtures("empty_queue")
async def test_queue_depth_counts_unfinished_jobs_by_stage_and_lane(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(GatewaySettings(collection_concurrency=1, strict_caps=True))
    collection = new_id("queue")
    first = await upload(gateway, collection, "a.md", priority="high")
    await upload(gateway, collection, "b.md", priority="bulk")
    await upload(gateway, collection, "c.md", priority="bulk")
    await release_ready(gateway.ports)  # the cap of 1 releases the high-lane job only
    meta = EventMeta(job_id=first["job_id"], document_id=first["document_id"], version=first["version"])
    await track_version(DocParsed(meta=meta, chunk_count=2), Delivery(1, 1, "test"), gateway.ports)

    answer = (await gateway.client.get("/v1/queue", params={"collection_id": collection})).json()

    assert answer["stages"] == ["queued", "parsing", "embedding"]
    assert answer["depth"]["embedding"] == {"high": 1, "normal": 0, "bulk": 0}
    assert answer["depth"]["queued"] == {"high": 0, "normal": 0, "bulk": 2}
    assert answer["depth"]["parsing"] == {"high": 0, "normal": 0, "bulk": 0}
    assert answer["collections"] == [{"collection_id": collection, "paused": False, "queued": 2, "running": 1}]


async def test_queue_depth_shows_a_paused_collection_and_its_held_jobs(gateway: Gateway) -> None:
    collection = new_id("paused")
    await upload(gateway, collection, "a.md")
    paused = await gateway.client.post(f"/v1/collections/{collection}/jobs:pause")
    assert paused.status_code == 200, paused.text

    answer = (await gateway.client.get("/v1/queue", params={"collection_id": collection})).json()

    assert answer["depth"]["queued"]["normal"] == 0
    assert answer["paused"]["queued"]["normal"] == 1
    assert answer["collections"][0]["paused"] is True


async def test_queue_depth_refuses_a_malformed_collection_id(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/queue", params={"collection_id": "no spaces/allowed"})

    assert response.status_code in (400, 422)
    assert "collection" in response.json()["detail"]
