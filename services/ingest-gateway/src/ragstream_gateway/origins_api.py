"""REST for a tenant's admins: the browser origins whose pages may use the tenant's keys.

``PUT /v1/tenant/origins`` replaces the list (audited); every service applies it through
``ragstream_core.auth.OriginPolicy`` within ``RAGSTREAM_AUTH_CACHE_S`` (this gateway at once).
The global list (``RAGSTREAM_CORS_ORIGINS``) applies to every tenant and is shown beside it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ragstream_core.auth import Caller, OriginPolicy
from ragstream_gateway.api import Tenant
from ragstream_gateway.auth_repository import AuthRepository
from ragstream_gateway.keys_api import check_origin

router = APIRouter(prefix="/v1")
MAX_TENANT_ORIGINS = 100
ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or one unknown, expired or revoked."},
    403: {"description": "The key's role is not admin."},
}


class OriginsRequest(BaseModel):
    origins: list[str] = Field(
        max_length=MAX_TENANT_ORIGINS,
        description="Every origin (scheme, host and port, e.g. https://app.example.com) whose pages may call the"
        " APIs with this tenant's keys; replaces the previous list ([] removes them all).",
    )


def _answer(request: Request, tenant: str, origins: list[str]) -> dict[str, Any]:
    policy: OriginPolicy | None = getattr(request.app.state, "origin_policy", None)
    return {
        "tenant_id": tenant,
        "origins": origins,
        "global_origins": sorted(policy.global_origins) if policy is not None else [],
    }


@router.get("/tenant/origins", responses=ADMIN_ONLY)
async def get_tenant_origins(request: Request, tenant: Tenant) -> dict[str, Any]:
    """The origins whose pages may use this tenant's keys, and the global ones every tenant has."""
    repository: AuthRepository = request.app.state.auth_repository
    return _answer(request, tenant, await repository.tenant_origins(tenant))


@router.put(
    "/tenant/origins",
    responses={**ADMIN_ONLY, 422: {"description": "An origin is not scheme://host[:port], or there are too many."}},
)
async def set_tenant_origins(request: Request, body: OriginsRequest, caller: Caller, tenant: Tenant) -> dict[str, Any]:
    """Replace the tenant's browser origins (idempotent; audited as ``tenant.origins``)."""
    origins = sorted({check_origin(o) for o in body.origins})
    repository: AuthRepository = request.app.state.auth_repository
    stored = await repository.set_tenant_origins(tenant, origins, actor=caller.actor)
    policy: OriginPolicy | None = getattr(request.app.state, "origin_policy", None)
    if policy is not None:
        policy.forget()
    return _answer(request, tenant, stored)
