"""A person watching progress: the WebSocket feed shows an upload move to indexed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import websockets

from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id


async def test_websocket_feed_shows_an_upload_moving_to_indexed(client: Client, stack: Stack, corpus: Path) -> None:
    collection = new_id("feed")
    url = f"ws://127.0.0.1:{stack.ports['progress']}/v1/jobs/stream?collection_id={collection}"
    seen: list[tuple[str, int]] = []
    async with websockets.connect(url) as ws:
        upload = await client.upload(collection, "multi_page.pdf", (corpus / "pdf" / "multi_page.pdf").read_bytes())
        while not seen or seen[-1][0] != "indexed":
            item = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
            if item["type"] == "job":
                assert item["job"]["job_id"] == upload.json()["job_id"]
                seen.append((item["job"]["status"], item["job"]["percent"]))

    percents = [percent for _, percent in seen]
    assert percents == sorted(percents)
    assert seen[-1] == ("indexed", 100)
    assert len(seen) >= 3, "the feed shows the stages, not just the end"
