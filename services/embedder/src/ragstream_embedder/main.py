"""Composition root of the embedder: ``python -m ragstream_embedder``."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI

from ragstream_core.bus import Bus
from ragstream_core.events import DELETE_POINTS_SUBJECT, INDEX_SNAPSHOT_SUBJECT, INVENTORY_SUBJECT, SEARCH_SUBJECT
from ragstream_core.proto.ragstream.v1.events_pb2 import DocDeleted, DocParsed, DocTagged
from ragstream_core.proto.ragstream.v1.inventory_pb2 import DeletePointsRequest, InventoryRequest
from ragstream_core.proto.ragstream.v1.ops_pb2 import IndexSnapshotRequest
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchRequest
from ragstream_core.runtime import ops_routes, run_service, serve_http
from ragstream_core.storage import ObjectStore, open_object_store
from ragstream_core.telemetry import configure_telemetry
from ragstream_embedder.engines import open_index
from ragstream_embedder.handlers import embed_document, remove_document, retag_document, search
from ragstream_embedder.inventory import delete_points, inventory
from ragstream_embedder.model import MiniLMEmbedder
from ragstream_embedder.pooling import PooledModel
from ragstream_embedder.qdrant_index import CollectionLayout
from ragstream_embedder.settings import EmbedderSettings
from ragstream_embedder.snapshot import snapshot_index
from ragstream_embedder.workers import AsyncIndex

log = structlog.get_logger(__name__)


@dataclass
class Ports:
    objects: ObjectStore
    model: PooledModel
    index: AsyncIndex
    events: Bus
    batch_size: int


async def serve(stop: asyncio.Event, settings: EmbedderSettings) -> None:
    core = settings.core
    configure_telemetry("embedder", core)
    model = PooledModel(
        await asyncio.to_thread(MiniLMEmbedder, threads=settings.threads),
        batch_size=settings.batch_size,
        round_size=settings.pool_round,
    )
    index = AsyncIndex(
        await asyncio.to_thread(
            open_index,
            data_dir=core.data_dir,
            engine=settings.engine,
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            collection=settings.qdrant_collection,
            dimensions=model.dimensions,
            idf_per_collection=settings.sparse_idf_per_collection,
            optimize_idle_s=settings.edge_optimize_idle_s,
            indexing_threads=settings.edge_indexing_threads,
            build_tail_points=settings.edge_build_tail_points or None,
            layout=CollectionLayout(
                shard_number=settings.qdrant_shard_number or None,
                replication_factor=settings.qdrant_replication_factor or None,
                write_consistency_factor=settings.qdrant_write_consistency_factor or None,
            ),
        )
    )
    bus = await Bus.from_settings(core, service="embedder")
    ports = Ports(open_object_store(core), model, index, bus, settings.batch_size)
    app = FastAPI(title="ragstream embedder")

    ops_routes(app, {"nats": bus.check, "objects": ports.objects.check, "index": index.check})

    @app.get("/v1/tenants/{tenant_id}/documents/{document_id}/points")
    async def document_points(tenant_id: str, document_id: str) -> dict[str, Any]:
        """Points in the index per version of one document (operators and consistency checks)."""
        counts = await index.count(tenant_id, document_id)
        return {"document_id": document_id, "versions": {str(v): n for v, n in sorted(counts.items())}}

    bus.consume(
        DocParsed,
        durable="embedder",
        stage="embedding",
        handler=functools.partial(embed_document, ports=ports),
        batch=settings.pull_batch,
        controlled=True,
    )
    bus.consume(
        DocDeleted,
        durable="embedder-deletes",
        stage="deleting",
        handler=functools.partial(remove_document, ports=ports),
    )
    bus.consume(
        DocTagged,
        durable="embedder-tags",
        stage="tagging",
        handler=functools.partial(retag_document, ports=ports),
        fail_jobs=False,  # a tag change is no job's
    )
    await bus.serve(SEARCH_SUBJECT, SearchRequest, functools.partial(search, ports=ports), queue="embedder")
    await bus.serve(INVENTORY_SUBJECT, InventoryRequest, functools.partial(inventory, index=index), queue="embedder")
    await bus.serve(
        DELETE_POINTS_SUBJECT, DeletePointsRequest, functools.partial(delete_points, index=index), queue="embedder"
    )
    await bus.serve(
        INDEX_SNAPSHOT_SUBJECT,
        IndexSnapshotRequest,
        functools.partial(snapshot_index, index=index, objects=ports.objects, data_dir=core.data_dir),
        queue="embedder",
    )
    log.info("embedder.started", metrics_port=settings.metrics_port, model=model.name)
    try:
        await serve_http(app, host=settings.metrics_host, port=settings.metrics_port, stop=stop)
    finally:
        await bus.stop()
        await model.close()
        await index.close()


def main() -> None:
    run_service(lambda stop: serve(stop, EmbedderSettings()))
