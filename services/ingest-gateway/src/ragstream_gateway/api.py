"""REST adapter of the gateway: thin routes over ``handlers`` and the repository."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ragstream_core.auth import Caller
from ragstream_core.errors import InvalidInput, NotFound, RagstreamError
from ragstream_core.tags import ACCEPTED as ACCEPTED_TAGS
from ragstream_core.tags import clean_tags
from ragstream_gateway.handlers import (
    Upload,
    accept_upload,
    announce_tags,
    check_identifier,
    clean_file_name,
    compare_versions,
    delete_document,
    reembed_document,
)
from ragstream_gateway.media import accepted_list
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.repository import VersionRow
from ragstream_gateway.tenant_limits import QUOTA_ANSWER

router = APIRouter(prefix="/v1")


def get_ports(request: Request) -> GatewayPorts:
    ports: GatewayPorts = request.app.state.ports
    return ports


Ports = Annotated[GatewayPorts, Depends(get_ports)]


def tenant_of(caller: Caller) -> str:
    """The caller's tenant: its API key's (``keys`` mode) or ``X-Tenant-Id`` (``open`` mode)."""
    return check_identifier("tenant", caller.tenant_id)


Tenant = Annotated[str, Depends(tenant_of)]


def actor_of(caller: Caller) -> str:
    """The caller's identity for the audit log: its key's account (``open`` mode: ``X-Actor``)."""
    return caller.actor


Actor = Annotated[str, Depends(actor_of)]


def _batch(batch_id: str | None) -> str | None:
    return check_identifier("batch", batch_id) if batch_id else None


def version_body(row: VersionRow, *, progress_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "document_id": row.document_id,
        "version": row.version,
        "label": row.label,
        "job_id": row.job_id,
        "collection_id": row.collection_id,
        "file_name": row.file_name,
        "uploaded_as": row.uploaded_as or row.file_name,
        "media_type": row.media_type,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "reason": row.reason,
        "uploaded_by": row.uploaded_by,
        "status": row.status,
        "chunk_count": row.chunk_count,
        "page_count": row.page_count,
        "warnings": row.warnings,
        "error": row.error,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }
    if row.source_url:
        body["source_url"] = row.source_url
    body["batch_id"] = row.batch_id
    body["priority"] = row.priority
    body["tags"] = row.tags
    if progress_url:
        body["job_url"] = f"{progress_url}/v1/jobs/{row.job_id}"
    return body


TAGS_FIELD = (
    "The document's tags, replacing its current ones: repeat the field or separate tags by commas;"
    f" {ACCEPTED_TAGS}. Omitted: a new version keeps the document's tags."
)


def form_tags(values: list[str] | None) -> list[str] | None:
    """Tags from multipart form fields (repeated, or comma-separated); None when none were sent."""
    return None if values is None else clean_tags(values, split_commas=True)


@router.post(
    "/collections/{collection_id}/documents",
    status_code=202,
    responses={
        200: {"description": "The same bytes are already in the collection: the existing version, unchanged: true."},
        403: {"description": QUOTA_ANSWER},
        413: {"description": "The file is over the size limit, or its ZIP container would expand too far."},
        415: {"description": "A type that cannot be parsed, or content contradicting the file name."},
    },
)
async def upload_document(
    request: Request,
    collection_id: str,
    ports: Ports,
    tenant: Tenant,
    actor: Actor,
    file: Annotated[UploadFile, File(description=f"The document. Accepted: {accepted_list()}")],
    force: Annotated[bool, Query(description="Process again even if the same bytes were uploaded.")] = False,
    replaces: Annotated[
        str | None, Query(description="Upload as the next version of this document id (its name follows the file).")
    ] = None,
    label: Annotated[str, Query(max_length=64, description="A label for the new version (default v<N>).")] = "",
    priority: Annotated[
        Literal["high", "normal", "bulk"], Query(description="Lane: high (interactive), normal, bulk.")
    ] = "normal",
    batch_id: Annotated[str | None, Query(description="Group uploads to watch and steer them together.")] = None,
    x_batch_id: Annotated[str | None, Header()] = None,
    tags: Annotated[list[str] | None, Form(description=TAGS_FIELD)] = None,
) -> JSONResponse:
    """Upload a document: 202 with the new job, or 200 with ``unchanged: true`` for known bytes.

    A new name makes a new document; a known name, or ``replaces``, the next version of it.
    ``tags`` (form fields) replace the document's tags; without them a new version keeps them.
    """
    check_identifier("collection", collection_id)
    upload = Upload(
        tenant_id=tenant,
        collection_id=collection_id,
        file_name=clean_file_name(file.filename),
        source=file.file,
        force=force,
        actor=actor,
        replaces=replaces,
        label=label,
        priority=priority,
        batch_id=_batch(batch_id or x_batch_id),
        tags=form_tags(tags),
    )
    result = await accept_upload(upload, ports)
    body = version_body(result.version, progress_url=request.app.state.progress_url)
    body["unchanged"] = result.unchanged
    return JSONResponse(body, status_code=200 if result.unchanged else 202)


@router.get("/collections/{collection_id}/documents")
async def list_documents(
    collection_id: str, ports: Ports, tenant: Tenant, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """The newest version of each live document of a collection."""
    rows = await ports.documents.list_versions(tenant, check_identifier("collection", collection_id), limit=limit)
    return {"documents": [version_body(r) for r in rows]}


async def _versions(ports: GatewayPorts, tenant: str, document_id: str) -> list[VersionRow]:
    rows = await ports.documents.document_versions(tenant, document_id)
    if not rows:
        raise NotFound(f"document {document_id!r} does not exist")
    return rows


@router.get("/documents/{document_id}")
async def get_document(document_id: str, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    """A document with all its versions (a deleted one too, with ``deleted_at``)."""
    rows = await _versions(ports, tenant, document_id)
    latest = rows[-1]
    return {
        "document_id": document_id,
        "collection_id": latest.collection_id,
        "file_name": latest.file_name,
        "source_url": latest.source_url,
        "tags": latest.tags,
        "deleted_at": latest.deleted_at.isoformat() if latest.deleted_at else None,
        "versions": [version_body(r) for r in rows],
    }


@router.get("/documents/{document_id}/versions")
async def list_document_versions(document_id: str, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    """Every version: fingerprint, size, uploader, times, chunk counts and status, oldest first."""
    rows = await _versions(ports, tenant, document_id)
    return {"document_id": document_id, "versions": [version_body(r) for r in rows]}


@router.get("/documents/{document_id}/versions/{a}/compare/{b}")
async def compare_document_versions(document_id: str, a: int, b: int, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    """The chunks version ``b`` added, removed and changed relative to version ``a``."""
    return await compare_versions(tenant, document_id, a, b, ports)


class DocumentPatch(BaseModel):
    file_name: str | None = Field(None, description="The new name; the document keeps its id and versions.")
    tags: list[str] | None = Field(
        None,
        description=f"The document's tags, replacing the current ones ([] removes all); {ACCEPTED_TAGS}. Search"
        " sees them at once, without embedding again.",
    )


@router.patch("/documents/{document_id}")
async def patch_document(
    document_id: str, patch: DocumentPatch, ports: Ports, tenant: Tenant, actor: Actor
) -> dict[str, Any]:
    """Rename a document (lineage kept) and/or replace its tags.

    409 with ``existing_document_id`` if the name is taken; 422 for tags outside what is accepted.
    A tag change reaches the index as a payload update of the document's points (no re-embedding).
    """
    if patch.file_name is None and patch.tags is None:
        raise InvalidInput("nothing to change: send file_name and/or tags")
    tags = clean_tags(patch.tags) if patch.tags is not None else None
    if patch.file_name is not None:
        await ports.documents.rename(tenant, document_id, clean_file_name(patch.file_name), actor=actor)
    if tags is not None and await ports.documents.set_tags(tenant, document_id, tags, actor=actor):
        await announce_tags(tenant, document_id, ports, actor=actor)
    return await get_document(document_id, ports, tenant)


@router.delete("/documents/{document_id}", status_code=202)
async def delete_document_route(
    request: Request,
    document_id: str,
    ports: Ports,
    tenant: Tenant,
    actor: Actor,
    cancel: Annotated[bool, Query(description="Cancel a running job of the document instead of refusing.")] = False,
) -> dict[str, Any]:
    """Delete a document: its versions leave the index, its bytes the store; the audit trail stays.

    409 while a job of it runs, unless ``cancel=true``. Answers with the delete's own job.
    """
    deletion = await delete_document(tenant, document_id, ports, actor=actor, cancel=cancel)
    return {
        "document_id": document_id,
        "deleted": True,
        "job_id": deletion.job_id,
        "job_url": f"{request.app.state.progress_url}/v1/jobs/{deletion.job_id}",
        "cancelled_job_ids": deletion.cancelled_job_ids,
    }


@router.post("/documents/{document_id}/reembed", status_code=202)
async def reembed_one(request: Request, document_id: str, ports: Ports, tenant: Tenant, actor: Actor) -> dict[str, Any]:
    """Parse and embed a document again (new version, same bytes); the old one answers meanwhile."""
    row = await reembed_document(tenant, document_id, ports, actor=actor)
    return version_body(row, progress_url=request.app.state.progress_url)


class ReembedRequest(BaseModel):
    document_ids: list[str] = Field(min_length=1, max_length=10_000)


async def reembed_many(
    request: Request, tenant: str, document_ids: list[str], ports: GatewayPorts, actor: str
) -> dict[str, Any]:
    """Re-embed each document; one that cannot be re-embedded is reported, not fatal."""
    jobs: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for document_id in document_ids:
        try:
            row = await reembed_document(tenant, document_id, ports, actor=actor)
        except RagstreamError as exc:
            errors.append({"document_id": document_id, "error": type(exc).__name__, "detail": str(exc)})
            continue
        jobs.append(version_body(row, progress_url=request.app.state.progress_url))
    return {"jobs": jobs, "errors": errors}


@router.post("/documents/reembed", status_code=202)
async def reembed_list(
    request: Request, body: ReembedRequest, ports: Ports, tenant: Tenant, actor: Actor
) -> dict[str, Any]:
    """Re-embed a list of documents: one job per document, errors per document."""
    return await reembed_many(request, tenant, body.document_ids, ports, actor)


@router.get("/audit")
async def audit_log(
    ports: Ports,
    tenant: Tenant,
    document_id: str | None = None,
    collection_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: Annotated[int | None, Query(description="Cursor: the next_before of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Who did what, when, and the outcome; newest first, filtered by document, collection,
    actor, action and time, paged by ``before``."""
    rows = await ports.documents.audit_entries(
        tenant,
        document_id=document_id,
        collection_id=collection_id,
        actor=actor,
        action=action,
        since=since,
        until=until,
        before=before,
        limit=limit,
    )
    entries = [{**r, "at": r["at"].isoformat()} for r in rows]
    return {"entries": entries, "next_before": rows[-1]["audit_id"] if len(rows) == limit else None}
