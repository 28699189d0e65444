"""The index inventory and point removal, answered over NATS for the gateway's consistency check."""

from __future__ import annotations

from typing import Protocol

import structlog

from ragstream_core.proto.ragstream.v1.inventory_pb2 import (
    DeletePointsRequest,
    DeletePointsResponse,
    InventoryRequest,
    InventoryResponse,
    VersionPoints,
)
from ragstream_embedder.index import VersionInventory

log = structlog.get_logger(__name__)

PAGE_DOCUMENTS = 1000


class InventoryIndex(Protocol):
    @property
    def engine(self) -> str: ...

    async def inventory(self, tenant_id: str, collection_id: str | None = None) -> list[VersionInventory]: ...

    async def delete_versions(self, tenant_id: str, document_id: str, versions: list[int]) -> int: ...

    async def delete_document(self, tenant_id: str, document_id: str, up_to_version: int) -> int: ...


async def inventory(request: InventoryRequest, index: InventoryIndex) -> InventoryResponse:
    """One page of the index's inventory: every version of up to ``limit`` documents after
    ``after_document_id``. Each page counts the index afresh (a scan of the tenant's payloads).
    """
    if not request.tenant_id:
        return InventoryResponse(error="tenant_id is required")
    try:
        entries = await index.inventory(request.tenant_id, request.collection_id or None)
    except Exception as exc:  # the requester must get a reason, not a timeout
        log.error("inventory.failed", error=str(exc), error_type=type(exc).__name__)
        return InventoryResponse(error=f"inventory failed: {exc}", engine=index.engine)
    limit = request.limit or PAGE_DOCUMENTS
    page: list[VersionInventory] = []
    documents: list[str] = []
    more = False
    for entry in entries:
        if entry.document_id <= request.after_document_id:
            continue
        if not documents or documents[-1] != entry.document_id:
            if len(documents) == limit:
                more = True
                break
            documents.append(entry.document_id)
        page.append(entry)
    return InventoryResponse(
        versions=[
            VersionPoints(
                collection_id=e.collection_id,
                document_id=e.document_id,
                version=e.version,
                points=e.points,
                active_points=e.active_points,
                missing_dense=e.missing_dense,
                missing_sparse=e.missing_sparse,
                active=e.active,
            )
            for e in page
        ],
        next_after_document_id=documents[-1] if more else "",
        engine=index.engine,
    )


async def delete_points(request: DeletePointsRequest, index: InventoryIndex) -> DeletePointsResponse:
    """Remove the named versions' points of a document, or, with no versions named, all of it for good."""
    if not request.tenant_id or not request.document_id:
        return DeletePointsResponse(error="tenant_id and document_id are required")
    try:
        if request.versions:
            removed = await index.delete_versions(request.tenant_id, request.document_id, list(request.versions))
        else:
            removed = await index.delete_document(request.tenant_id, request.document_id, request.up_to_version)
    except Exception as exc:
        log.error("delete_points.failed", error=str(exc), error_type=type(exc).__name__)
        return DeletePointsResponse(error=f"deleting points failed: {exc}")
    log.info("index.points_deleted", document_id=request.document_id, versions=list(request.versions), removed=removed)
    return DeletePointsResponse(removed=removed)
