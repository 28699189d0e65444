"""How much work waits where: unfinished jobs by stage and lane, and each collection's share.

Stages as the gateway sees them: ``queued`` (in its queue, not released), ``parsing`` (released,
not parsed yet: waiting for or in the parser) and ``embedding`` (parsed, not indexed yet). A job
held by its own pause, or by its collection's or batch's, counts as ``paused`` in its stage.
"""

from __future__ import annotations

from typing import Any

from ragstream_gateway.ports import GatewayPorts

STAGES = ("queued", "parsing", "embedding")
LANES = ("high", "normal", "bulk")

_BY_STAGE = """
SELECT CASE WHEN v.released_at IS NULL THEN 'queued' WHEN v.parsed_at IS NULL THEN 'parsing' ELSE 'embedding' END,
       v.priority,
       count(*) FILTER (WHERE NOT (v.paused OR c.paused OR COALESCE(b.paused, false))),
       count(*) FILTER (WHERE v.paused OR c.paused OR COALESCE(b.paused, false))
FROM gateway.document_versions v
JOIN gateway.documents d USING (document_id)
JOIN gateway.collections c USING (tenant_id, collection_id)
LEFT JOIN gateway.batches b ON b.tenant_id = d.tenant_id AND b.batch_id = v.batch_id
WHERE v.status = 'processing' AND d.deleted_at IS NULL AND d.tenant_id = %(tenant)s
  AND (%(collection)s::text IS NULL OR d.collection_id = %(collection)s)
GROUP BY 1, 2
"""

_COLLECTIONS = """
SELECT c.collection_id, c.paused,
       count(v.job_id) FILTER (WHERE v.released_at IS NULL),
       count(v.job_id) FILTER (WHERE v.released_at IS NOT NULL)
FROM gateway.collections c
LEFT JOIN gateway.documents d
       ON d.tenant_id = c.tenant_id AND d.collection_id = c.collection_id AND d.deleted_at IS NULL
LEFT JOIN gateway.document_versions v ON v.document_id = d.document_id AND v.status = 'processing'
WHERE c.tenant_id = %(tenant)s AND c.deleted_at IS NULL
  AND (%(collection)s::text IS NULL OR c.collection_id = %(collection)s)
GROUP BY c.collection_id, c.paused
ORDER BY c.collection_id
LIMIT %(limit)s
"""


async def queue_depth(
    ports: GatewayPorts, tenant_id: str, *, collection_id: str | None = None, limit: int = 1000
) -> dict[str, Any]:
    """Unfinished jobs of a tenant (or one collection) by stage and lane, and per collection
    whether it is paused and how many of its jobs are queued and running. A consistent read."""
    params = {"tenant": tenant_id, "collection": collection_id, "limit": limit}
    depth = {stage: dict.fromkeys(LANES, 0) for stage in STAGES}
    paused = {stage: dict.fromkeys(LANES, 0) for stage in STAGES}
    async with ports.documents.pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for stage, lane, ready, held in await (await conn.execute(_BY_STAGE, params)).fetchall():
            depth[stage].setdefault(lane, 0)
            paused[stage].setdefault(lane, 0)
            depth[stage][lane] += ready
            paused[stage][lane] += held
        rows = await (await conn.execute(_COLLECTIONS, params)).fetchall()
    settings = ports.settings
    return {
        "stages": list(STAGES),
        "lanes": list(LANES),
        "depth": depth,
        "paused": paused,
        "released_limit": settings.max_released_jobs,
        "collection_concurrency": settings.collection_concurrency,
        "collections": [{"collection_id": c, "paused": p, "queued": q, "running": r} for c, p, q, r in rows],
    }
