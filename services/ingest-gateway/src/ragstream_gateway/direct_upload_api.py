"""REST routes of direct uploads: announce, PUT the bytes (local store), finalize.

Thin adapters over ``direct_upload``; see there for the guarantees.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ragstream_gateway.api import Actor, Ports, Tenant, version_body
from ragstream_gateway.direct_upload import DirectUpload, finalize_upload, open_direct_upload, receive_upload
from ragstream_gateway.tenant_limits import QUOTA_ANSWER

__all__ = ["router"]

router = APIRouter(prefix="/v1")


class DirectUploadBody(BaseModel):
    file_name: str = Field(description="The document's name; its extension must name an accepted type.")
    size_bytes: int | None = Field(None, description="If given, finalize checks the stored size equals it.")
    sha256: str | None = Field(None, description="If given, finalize checks the stored bytes' SHA-256 equals it.")
    force: bool = Field(False, description="Process again even if the same bytes were uploaded.")
    tags: list[str] | None = Field(
        None, description="The document's tags, replacing its current ones at finalize; omitted: kept."
    )


@router.post(
    "/collections/{collection_id}/uploads",
    status_code=201,
    responses={
        403: {"description": QUOTA_ANSWER},
        413: {"description": "The announced size_bytes is over the upload limit."},
        415: {"description": "The announced file name has a type that cannot be parsed."},
    },
)
async def open_upload(
    request: Request, collection_id: str, body: DirectUploadBody, ports: Ports, tenant: Tenant, actor: Actor
) -> dict[str, Any]:
    """Announce a file: 201 with the URL to PUT its bytes to, and until when.

    With S3 the URL is a presigned PUT; with the local store, a one-time URL of this gateway.
    Then ``POST /v1/uploads/{upload_id}/finalize`` starts the job.
    """

    def local_url(upload_id: str, token: str) -> str:
        return str(request.url_for("put_upload_bytes", upload_id=upload_id).include_query_params(token=token))

    announced = DirectUpload(
        tenant_id=tenant,
        collection_id=collection_id,
        file_name=body.file_name,
        size_bytes=body.size_bytes,
        sha256=body.sha256,
        force=body.force,
        tags=body.tags,
    )
    ticket = await open_direct_upload(announced, ports, local_url=local_url)
    await ports.documents.record(
        tenant_id=tenant,
        actor=actor,
        action="upload.open",
        outcome="ok",
        collection_id=collection_id,
        upload_id=ticket.upload_id,
        file_name=body.file_name,
    )
    return {
        "upload_id": ticket.upload_id,
        "method": "PUT",
        "url": ticket.url,
        "expires_at": ticket.expires_at.isoformat(),
        "finalize_url": str(request.url_for("finalize_upload_route", upload_id=ticket.upload_id)),
    }


@router.put(
    "/uploads/{upload_id}",
    name="put_upload_bytes",
    responses={
        403: {"description": "The URL was used already, or the bytes passed what is left of the tenant's quota."},
        413: {"description": "The bytes passed the size limit of the file's type."},
    },
)
async def put_upload_bytes(
    request: Request,
    upload_id: str,
    ports: Ports,
    token: Annotated[str, Query(description="The one-time token of the URL given at announcement.")],
) -> dict[str, Any]:
    """The bytes of a direct upload (local store): the token is spent by the first complete PUT."""
    received = await receive_upload(upload_id, token, request.stream(), ports)
    return {
        "upload_id": received.upload_id,
        "size_bytes": received.size_bytes,
        "status": "received",
        "finalize_url": str(request.url_for("finalize_upload_route", upload_id=upload_id)),
    }


@router.post(
    "/uploads/{upload_id}/finalize",
    name="finalize_upload_route",
    status_code=202,
    responses={
        200: {"description": "The same bytes are already in the collection (unchanged), or finalized before."},
        409: {"description": "Nothing was uploaded yet."},
        410: {"description": "The upload expired."},
        403: {"description": QUOTA_ANSWER},
        413: {"description": "The bytes are over the size limit, or would expand too far."},
        415: {"description": "A type that cannot be parsed, or content contradicting the file name."},
    },
)
async def finalize(request: Request, upload_id: str, ports: Ports, tenant: Tenant) -> JSONResponse:
    """Check the stored bytes and start the job: the single upload's body (202, or 200 if unchanged).

    Idempotent: finalizing again answers the same. 404 unknown, 410 expired, 409 nothing stored
    yet, 422 the bytes differ from the declared size or SHA-256, 413/415 as for any upload.
    """
    result = await finalize_upload(tenant, upload_id, ports)
    body = version_body(result.version, progress_url=request.app.state.progress_url)
    body["unchanged"] = result.unchanged
    body["upload_id"] = upload_id
    return JSONResponse(body, status_code=200 if result.unchanged else 202)
