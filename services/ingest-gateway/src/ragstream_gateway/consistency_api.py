"""REST routes of the consistency check: ``GET /v1/admin/consistency`` and ``POST .../repair``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ragstream_core.errors import DependencyUnavailable
from ragstream_gateway.api import Actor, Ports, Tenant
from ragstream_gateway.consistency import ConsistencyCheck
from ragstream_gateway.handlers import check_identifier, reembed_document

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class RepairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection_id: str | None = Field(None, description="Repair this collection only (default: the whole tenant).")


def _check(request: Request) -> ConsistencyCheck:
    check: ConsistencyCheck | None = getattr(request.app.state, "consistency", None)
    if check is None:
        raise DependencyUnavailable("the consistency check is not available: this gateway has no index connection")
    return check


@router.get("/consistency", responses={404: {"description": "The collection_id given is not known."}})
async def check_consistency(
    request: Request,
    tenant: Tenant,
    collection_id: Annotated[
        str | None, Query(description="Check this collection only (default: every collection of the tenant).")
    ] = None,
) -> dict[str, Any]:
    """Compare the document registry, the object store and the index (dense and sparse); change nothing."""
    if collection_id is not None:
        check_identifier("collection id", collection_id)
    report = await _check(request).check(tenant, collection_id)
    return report.body()


@router.post("/consistency/repair", responses={404: {"description": "The collection_id given is not known."}})
async def repair_consistency(
    request: Request,
    ports: Ports,
    tenant: Tenant,
    actor: Actor,
    body: Annotated[RepairRequest | None, Body()] = None,
) -> dict[str, Any]:
    """Delete orphan objects and points, re-embed versions whose points are missing or incomplete;
    ``repaired`` lists what was fixed, ``problems`` what remains (a re-embed runs as a job)."""
    collection_id = body.collection_id if body is not None else None
    if collection_id is not None:
        check_identifier("collection id", collection_id)

    async def reembed(tenant_id: str, document_id: str) -> None:
        await reembed_document(tenant_id, document_id, ports, actor=actor)

    report = await _check(request).repair(tenant, collection_id, reembed)
    await ports.documents.record(
        tenant_id=tenant,
        actor=actor,
        action="consistency.repair",
        outcome="repaired",
        collection_id=collection_id,
        repaired=[{"kind": p.kind, "document_id": p.document_id, "key": p.key} for p in report.repaired],
        remaining=len(report.problems),
    )
    return report.body()
