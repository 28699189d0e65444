"""REST of a tenant's limits: ``GET /v1/tenant/limits`` (any member: why am I refused?) and
``PUT /v1/tenant/limits`` (admins): rate limits, quotas and current usage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from ragstream_gateway.api import Actor, Ports, Tenant
from ragstream_gateway.tenant_limits import TenantLimitsRepository, limits_body

router = APIRouter(prefix="/v1")

_NULL = " null (or omitted): the configured default; 0: no limit."


class LimitsRequest(BaseModel):
    """The tenant's own limits; each replaces the default (PUT: every field, omitted ones reset)."""

    upload_per_key: int | None = Field(None, ge=0, le=1_000_000, description="Upload calls per key per window." + _NULL)
    upload_per_tenant: int | None = Field(
        None, ge=0, le=1_000_000, description="Upload calls of all keys per window." + _NULL
    )
    chat_per_key: int | None = Field(None, ge=0, le=1_000_000, description="Questions per key per window." + _NULL)
    chat_per_tenant: int | None = Field(
        None, ge=0, le=1_000_000, description="Questions of all keys per window." + _NULL
    )
    quota_bytes: int | None = Field(
        None, ge=0, le=2**62, description="Bytes of every version of the live documents." + _NULL
    )
    quota_documents: int | None = Field(None, ge=0, le=2**31 - 1, description="Live documents." + _NULL)


def _repository(ports: Ports) -> TenantLimitsRepository:
    return TenantLimitsRepository(ports.documents.pool)


Limits = Annotated[TenantLimitsRepository, Depends(_repository)]


@router.get("/tenant/limits")
async def get_tenant_limits(ports: Ports, limits: Limits, tenant: Tenant) -> dict[str, Any]:
    """The limits in force (``limits``), the tenant's own (``overrides``, null: default), the
    defaults, the window of the rates, and current ``usage`` (bytes, documents)."""
    return limits_body(tenant, await limits.overrides(tenant), await limits.usage(tenant), ports.settings)


@router.put("/tenant/limits")
async def put_tenant_limits(
    request: Request, body: LimitsRequest, ports: Ports, limits: Limits, tenant: Tenant, actor: Actor
) -> dict[str, Any]:
    """Replace the tenant's own limits (admins); audited as ``tenant.limits``. Rates apply to the
    next request of every service; quotas to the next upload (stored documents are never removed)."""
    await limits.replace(tenant, body.model_dump(), actor=actor)
    return limits_body(tenant, await limits.overrides(tenant), await limits.usage(tenant), ports.settings)
