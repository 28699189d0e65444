"""Bulk creation of collections: 1,000 in one request, timed on the running stack."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from ragstream_devstack.stack import Stack


async def measure_bulk_collections(stack: Stack, *, count: int = 1000) -> dict[str, Any]:
    """Create ``count`` collections in one call, then list them all; seconds of each."""
    gateway = stack.url("ingest-gateway")
    prefix = f"bulk-{uuid.uuid4().hex[:8]}"
    specs = [{"collection_id": f"{prefix}-{i:05d}", "chunking": "structure"} for i in range(count)]
    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        response = await client.post(f"{gateway}/v1/collections/bulk", json={"collections": specs})
        create_s = time.perf_counter() - started
        response.raise_for_status()
        created = len(response.json()["created"])
        started = time.perf_counter()
        listed, after = 0, ""
        while True:
            page = (await client.get(f"{gateway}/v1/collections", params={"after": after, "limit": 1000})).json()
            listed += sum(1 for c in page["collections"] if c["collection_id"].startswith(prefix))
            if not page["next_after"]:
                break
            after = page["next_after"]
        list_s = time.perf_counter() - started
    if created != count or listed != count:
        raise RuntimeError(f"bulk create made {created} and listed {listed} of {count} collections")
    return {
        "count": count,
        "create_seconds": round(create_s, 3),
        "collections_per_s": round(count / create_s),
        "list_seconds": round(list_s, 3),
    }
