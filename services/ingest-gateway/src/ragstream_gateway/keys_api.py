"""REST for a tenant's admins: API keys (create, list, revoke) and accounts (members and roles).

A key's secret is in the answer that creates it and nowhere else. ``GET /v1/me`` tells any
caller who it is (tenant, account, role, key). ``POST /v1/sessions`` trades a key for a
short-lived one (the web page's sign-in), ``DELETE /v1/sessions/current`` ends it (sign-out).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ragstream_core.auth import Authenticator, Caller, Role
from ragstream_core.errors import InvalidInput, UnprocessableInput
from ragstream_gateway.api import Tenant
from ragstream_gateway.auth_repository import AuthRepository
from ragstream_gateway.handlers import check_identifier

router = APIRouter(prefix="/v1")


class KeyRequest(BaseModel):
    role: Role = Field(description="viewer (chat, read), editor (+ upload, delete, re-embed, jobs) or admin (+ keys).")
    account_id: str | None = Field(None, max_length=128, description="Whose key (default: the caller's account).")
    name: str = Field("", max_length=200, description="What the key is for (shown in lists).")
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="Refused after this; null: never.")
    collection_ids: list[str] | None = Field(
        None,
        max_length=100,
        description="A public chat key (the chat widget's): it may only ask these collections (role viewer).",
    )
    origins: list[str] | None = Field(
        None,
        max_length=100,
        description="Only pages of these origins (https://shop.example.com) may use the key (with collection_ids).",
    )


class AccountRequest(BaseModel):
    account_id: str = Field(
        min_length=1, max_length=128, description="The member's id: 1-64 letters, digits, '_', '-' or '.'."
    )
    role: Role = Field(description="viewer, editor or admin.")
    display_name: str = Field("", max_length=200)


class AccountPatch(BaseModel):
    role: Role | None = Field(None, description="The new role; the member's keys are capped by it.")
    disabled: bool | None = Field(None, description="true: every key of the member is refused; false: allowed again.")


def _repository(request: Request) -> AuthRepository:
    repository: AuthRepository = request.app.state.auth_repository
    return repository


def _forget(request: Request) -> None:
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.keys is not None:
        authenticator.keys.forget()


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def key_body(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a key: everything but its secret (and ``key`` once, at creation)."""
    now = datetime.now(UTC)
    expired = row["expires_at"] is not None and row["expires_at"] <= now
    status = "revoked" if row["revoked_at"] else "expired" if expired else "active"
    body = {
        "key_id": row["key_id"],
        "account_id": row["account_id"],
        "role": row["role"],
        "name": row["name"],
        "status": status,
        "created_at": _when(row["created_at"]),
        "created_by": row["created_by"],
        "expires_at": _when(row["expires_at"]),
        "revoked_at": _when(row["revoked_at"]),
        "revoked_by": row["revoked_by"],
    }
    if row["collection_ids"] is not None:
        body["collection_ids"] = row["collection_ids"]
        body["origins"] = row["origins"]
    if "key" in row:
        body["key"] = row["key"]
    return body


def check_origin(value: str) -> str:
    """A page's origin as stored (``https://host[:port]``, lower case); 422 saying what is accepted."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise UnprocessableInput(
            f"origin {value!r} is not valid: give a page's origin, scheme and host (and port), e.g."
            " https://shop.example.com"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def _chat_scope(body: KeyRequest) -> tuple[list[str] | None, list[str] | None]:
    """The collections and origins of a public chat key (both None for any other key)."""
    if body.collection_ids is None and body.origins is None:
        return None, None
    if not body.collection_ids or not body.origins:
        raise UnprocessableInput(
            "a public chat key needs both collection_ids (what it may ask) and origins (the pages that may use it)"
        )
    if body.role != "viewer":
        raise UnprocessableInput(f"a public chat key has the role viewer, not {body.role!r}")
    collections = sorted({check_identifier("collection", c) for c in body.collection_ids})
    return collections, sorted({check_origin(o) for o in body.origins})


def account_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "account_id": row["account_id"],
        "role": row["role"],
        "display_name": row["display_name"],
        "created_at": _when(row["created_at"]),
        "created_by": row["created_by"],
        "disabled": row["disabled_at"] is not None,
    }


@router.get("/me")
async def who_am_i(caller: Caller) -> dict[str, Any]:
    """The caller as the API sees it: tenant, account, role and key id."""
    return {"tenant_id": caller.tenant_id, "account_id": caller.actor, "role": caller.role, "key_id": caller.key_id}


@router.post(
    "/keys",
    status_code=201,
    responses={
        404: {"description": "The account_id is not a member of the tenant (create it with POST /v1/accounts)."}
    },
)
async def create_key(request: Request, body: KeyRequest, caller: Caller, tenant: Tenant) -> dict[str, Any]:
    """A new API key; ``key`` in the answer is the only copy of its secret (store it now). With
    ``collection_ids`` and ``origins``: a public chat key for the chat widget, which may only ask
    those collections from pages of those origins."""
    account = check_identifier("account", body.account_id) if body.account_id else caller.actor
    expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    collections, origins = _chat_scope(body)
    row = await _repository(request).create_key(
        tenant,
        account,
        body.role,
        name=body.name,
        expires_at=expires_at,
        actor=caller.actor,
        # open mode (no key): the caller's own account is made on first use
        create_account=caller.key_id is None and body.account_id is None,
        collection_ids=collections,
        origins=origins,
    )
    return key_body(row)


@router.get("/keys")
async def list_keys(
    request: Request,
    tenant: Tenant,
    account_id: Annotated[str | None, Query(description="Only this account's keys.")] = None,
) -> dict[str, Any]:
    """The tenant's keys, newest first, without secrets."""
    return {"keys": [key_body(r) for r in await _repository(request).keys(tenant, account_id=account_id)]}


@router.get("/keys/{key_id}")
async def get_key(request: Request, key_id: str, tenant: Tenant) -> dict[str, Any]:
    return key_body(await _repository(request).key(tenant, key_id))


@router.delete("/keys/{key_id}")
async def revoke_key(request: Request, key_id: str, caller: Caller, tenant: Tenant) -> dict[str, Any]:
    """Revoke a key: refused at once here, and by every service within ``RAGSTREAM_AUTH_CACHE_S``."""
    row = await _repository(request).revoke_key(tenant, key_id, actor=caller.actor)
    _forget(request)
    return key_body(row)


@router.post("/sessions", status_code=201)
async def create_session(request: Request, caller: Caller) -> dict[str, Any]:
    """A session: a key of the caller's account and role that expires after
    ``RAGSTREAM_GATEWAY_SESSION_TTL_S`` (15 minutes), for a web page to hold instead of a
    long-lived key; ``key`` is its secret, sent as ``Authorization: Bearer`` like any key."""
    if caller.key_id is None:
        raise InvalidInput("sessions are made from an API key; this gateway checks no keys (RAGSTREAM_AUTH_MODE=open)")
    ttl_s: float = request.app.state.ports.settings.session_ttl_s
    row = await _repository(request).create_session(caller, ttl_s=ttl_s)
    return key_body(row)


@router.delete(
    "/sessions/current",
    responses={
        401: {"description": "No API key, or one unknown, expired or revoked (an ended session, say)."},
        422: {"description": "The caller's key is not a session key (or the gateway checks no keys)."},
    },
)
async def end_session(request: Request, caller: Caller) -> dict[str, Any]:
    """End the caller's session (sign-out): its key is revoked at once here, and by every service
    within ``RAGSTREAM_AUTH_CACHE_S``; 422 if the caller's key is not a session key."""
    row = await _repository(request).end_session(caller)
    _forget(request)
    return key_body(row)


@router.post("/accounts", status_code=201)
async def create_account(request: Request, body: AccountRequest, caller: Caller, tenant: Tenant) -> dict[str, Any]:
    """A new member of the tenant with a role; give it keys with POST /v1/keys (account_id)."""
    account = check_identifier("account", body.account_id)
    row = await _repository(request).create_account(
        tenant, account, body.role, display_name=body.display_name, actor=caller.actor
    )
    return account_body(row)


@router.get("/accounts")
async def list_accounts(request: Request, tenant: Tenant) -> dict[str, Any]:
    return {"accounts": [account_body(r) for r in await _repository(request).accounts(tenant)]}


@router.patch("/accounts/{account_id}")
async def change_account(
    request: Request, account_id: str, body: AccountPatch, caller: Caller, tenant: Tenant
) -> dict[str, Any]:
    """Change a member's role, or disable it (its keys are refused) or enable it again."""
    if body.role is None and body.disabled is None:
        raise InvalidInput("nothing to change: send role and/or disabled")
    row = await _repository(request).change_account(
        tenant, account_id, role=body.role, disabled=body.disabled, actor=caller.actor
    )
    _forget(request)
    return account_body(row)
