"""REST batch upload: many files in one multipart request, one result per file.

Each file goes through ``accept_upload`` on its own, in the order sent: one bad file is
answered with its own error and does not stop the others. The request as a whole is refused
only when it is too big to read (more than ``max_batch_files`` files, or an announced body
over ``max_batch_bytes``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ragstream_core.errors import InvalidInput, RagstreamError, UploadTooLarge, mapping_for
from ragstream_core.telemetry import current_trace_id
from ragstream_gateway.api import TAGS_FIELD, Actor, Ports, Tenant, form_tags, version_body
from ragstream_gateway.handlers import Upload, accept_upload, check_identifier, clean_file_name
from ragstream_gateway.media import ACCEPTED
from ragstream_gateway.ports import GatewayPorts

__all__ = ["BATCH_SUFFIX", "router"]

router = APIRouter(prefix="/v1")

#: the path ending of the batch route (``RejectOversized`` leaves its larger bodies to it)
BATCH_SUFFIX = "/documents:batch"

_FORM = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "The documents, in the order their results are wanted.",
                    },
                    "tags": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": TAGS_FIELD + " Applies to every file of the batch.",
                    },
                },
            }
        }
    },
    "required": True,
}


def _error_result(file_name: str | None, error: RagstreamError) -> dict[str, Any]:
    """A file's error: the body a single upload would have answered, with its status code."""
    return {
        "file_name": file_name,
        "status_code": mapping_for(error).http_status,
        "error": type(error).__name__,
        "detail": str(error),
        **error.details,
        "accepted_types": sorted(ACCEPTED),
        "trace_id": current_trace_id(),
    }


async def _upload_one(
    file: UploadFile,
    *,
    collection_id: str,
    tenant: str,
    actor: str,
    force: bool,
    ports: GatewayPorts,
    progress_url: str,
    batch_id: str,
    priority: str,
    tags: list[str] | None,
) -> dict[str, Any]:
    try:
        upload = Upload(
            tenant_id=tenant,
            collection_id=collection_id,
            file_name=clean_file_name(file.filename),
            source=file.file,
            force=force,
            actor=actor,
            batch_id=batch_id,
            priority=priority,
            tags=tags,
        )
        result = await accept_upload(upload, ports)
    except RagstreamError as exc:
        return _error_result(file.filename, exc)
    body = version_body(result.version, progress_url=progress_url)
    return {**body, "unchanged": result.unchanged, "status_code": 200 if result.unchanged else 202}


@router.post(
    "/collections/{collection_id}" + BATCH_SUFFIX,
    status_code=207,
    openapi_extra={"requestBody": _FORM},
    responses={207: {"description": "One result per file, in order: its upload body or its error."}},
)
async def upload_batch(
    request: Request,
    collection_id: str,
    ports: Ports,
    tenant: Tenant,
    actor: Actor,
    force: Annotated[bool, Query(description="Process again even if the same bytes were uploaded.")] = False,
    batch_id: Annotated[str | None, Query(description="The batch's id (default: a new one).")] = None,
    priority: Annotated[
        Literal["high", "normal", "bulk"], Query(description="Lane of the batch's jobs (default normal).")
    ] = "normal",
) -> JSONResponse:
    """Upload many documents (multipart fields ``files``): 207 with one result per file, in order.

    A result is the single upload's body with ``status_code`` 202 (new job) or 200
    (``unchanged``), or that file's error with its ``status_code`` and the accepted types.
    The jobs share a ``batch_id`` (answered), to watch and steer them together.
    """
    check_identifier("collection", collection_id)
    batch = check_identifier("batch", batch_id) if batch_id else f"batch-{uuid.uuid4().hex[:16]}"
    settings = ports.settings
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > settings.max_batch_bytes:
        raise UploadTooLarge(
            f"the batch exceeds the limit of {settings.max_batch_bytes} bytes per request; send it in parts",
            limit_bytes=settings.max_batch_bytes,
        )
    try:
        form = await request.form(max_files=settings.max_batch_files)
    except HTTPException as exc:
        if "Too many files" in str(exc.detail):
            raise UploadTooLarge(
                f"a batch holds at most {settings.max_batch_files} files; send the others in another request",
                max_files=settings.max_batch_files,
            ) from None
        raise InvalidInput(f"the batch is not a readable multipart form: {exc.detail}") from None
    try:
        files = [value for value in form.getlist("files") if isinstance(value, UploadFile)]
        if not files:
            raise InvalidInput("the batch has no files: send each document as a multipart field named 'files'")
        tag_fields = [value for value in form.getlist("tags") if isinstance(value, str)]
        tags = form_tags(tag_fields) if tag_fields else None
        results = [
            await _upload_one(
                file,
                collection_id=collection_id,
                tenant=tenant,
                actor=actor,
                force=force,
                ports=ports,
                progress_url=request.app.state.progress_url,
                batch_id=batch,
                priority=priority,
                tags=tags,
            )
            for file in files
        ]
    finally:
        await form.close()
    failed = sum(1 for r in results if r["status_code"] >= 400)
    unchanged = sum(1 for r in results if r["status_code"] == 200)
    summary = {"accepted": len(results) - failed - unchanged, "unchanged": unchanged, "failed": failed}
    return JSONResponse({"batch_id": batch, "results": results, **summary}, status_code=207)
