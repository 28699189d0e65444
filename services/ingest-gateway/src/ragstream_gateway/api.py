"""REST adapter of the gateway: thin routes over ``handlers`` and the repository."""

from __future__ import annotations

from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, FastAPI, File, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from ragstream_core.errors import NotFound, UploadTooLarge
from ragstream_core.events import timestamp_of
from ragstream_core.grpc_server import tenant_from
from ragstream_core.proto.ragstream.v1 import ingest_pb2, ingest_pb2_grpc
from ragstream_core.runtime import error_handlers, error_response
from ragstream_gateway.handlers import Upload, accept_upload, check_identifier, clean_file_name
from ragstream_gateway.media import accepted_list
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.repository import VersionRow

router = APIRouter(prefix="/v1")


def get_ports(request: Request) -> GatewayPorts:
    ports: GatewayPorts = request.app.state.ports
    return ports


Ports = Annotated[GatewayPorts, Depends(get_ports)]


def tenant_of(request: Request, x_tenant_id: Annotated[str | None, Header()] = None) -> str:
    ports: GatewayPorts = request.app.state.ports
    return check_identifier("tenant", x_tenant_id or ports.settings.default_tenant)


Tenant = Annotated[str, Depends(tenant_of)]


def version_body(row: VersionRow, *, progress_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "document_id": row.document_id,
        "version": row.version,
        "job_id": row.job_id,
        "collection_id": row.collection_id,
        "file_name": row.file_name,
        "media_type": row.media_type,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "created_at": row.created_at.isoformat(),
    }
    if progress_url:
        body["job_url"] = f"{progress_url}/v1/jobs/{row.job_id}"
    return body


@router.post("/collections/{collection_id}/documents", status_code=202)
async def upload_document(
    request: Request,
    collection_id: str,
    ports: Ports,
    tenant: Tenant,
    file: Annotated[UploadFile, File(description=f"The document. Accepted: {accepted_list()}")],
    force: Annotated[bool, Query(description="Process again even if the same bytes were uploaded.")] = False,
) -> JSONResponse:
    """Upload a document: 202 with the new job, or 200 with ``unchanged: true`` for known bytes."""
    check_identifier("collection", collection_id)
    upload = Upload(
        tenant_id=tenant,
        collection_id=collection_id,
        file_name=clean_file_name(file.filename),
        source=file.file,
        force=force,
    )
    result = await accept_upload(upload, ports)
    body = version_body(result.version, progress_url=request.app.state.progress_url)
    body["unchanged"] = result.unchanged
    return JSONResponse(body, status_code=200 if result.unchanged else 202)


@router.get("/collections/{collection_id}/documents")
async def list_documents(collection_id: str, ports: Ports, tenant: Tenant, limit: int = 100) -> dict[str, Any]:
    """The newest version of each document of a collection."""
    rows = await ports.documents.list_versions(tenant, check_identifier("collection", collection_id), limit=limit)
    return {"documents": [version_body(r) for r in rows]}


@router.get("/documents/{document_id}")
async def get_document(document_id: str, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    """A document with all its versions."""
    rows = await ports.documents.document_versions(tenant, document_id)
    if not rows:
        raise NotFound(f"document {document_id!r} does not exist")
    return {
        "document_id": document_id,
        "collection_id": rows[-1].collection_id,
        "file_name": rows[-1].file_name,
        "versions": [version_body(r) for r in rows],
    }


def document_message(rows: list[VersionRow]) -> ingest_pb2.Document:
    """A document and the given versions of it, as the gRPC message."""
    return ingest_pb2.Document(
        document_id=rows[-1].document_id,
        collection_id=rows[-1].collection_id,
        file_name=rows[-1].file_name,
        versions=[
            ingest_pb2.DocumentVersion(
                version=r.version,
                job_id=r.job_id,
                sha256=r.sha256,
                media_type=r.media_type,
                size_bytes=r.size_bytes,
                created_at=timestamp_of(r.created_at),
            )
            for r in rows
        ],
    )


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """gRPC ``IngestService``; the tenant comes from the ``x-tenant-id`` metadata."""

    def __init__(self, ports: GatewayPorts) -> None:
        self.ports = ports

    def _tenant(self, context: grpc.aio.ServicerContext) -> str:  # type: ignore[type-arg]
        return check_identifier("tenant", tenant_from(context, self.ports.settings.default_tenant))

    async def GetDocument(
        self,
        request: ingest_pb2.GetDocumentRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> ingest_pb2.Document:
        rows = await self.ports.documents.document_versions(self._tenant(context), request.document_id)
        if not rows:
            raise NotFound(f"document {request.document_id!r} does not exist")
        return document_message(rows)

    async def ListDocuments(
        self,
        request: ingest_pb2.ListDocumentsRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> ingest_pb2.ListDocumentsResponse:
        collection = check_identifier("collection", request.collection_id)
        rows = await self.ports.documents.list_versions(self._tenant(context), collection, limit=request.limit or 100)
        return ingest_pb2.ListDocumentsResponse(documents=[document_message([r]) for r in rows])


class RejectOversized:
    """Refuse a POST whose announced size is over the limit before reading its body (pure ASGI)."""

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit + 64 * 1024:  # multipart framing
                error = UploadTooLarge(f"the upload exceeds the limit of {self.limit} bytes")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(ports: GatewayPorts, *, progress_url: str) -> FastAPI:
    app = FastAPI(title="ragstream ingest gateway", version="0.1.0")
    app.state.ports = ports
    app.state.progress_url = progress_url
    error_handlers(app)

    app.add_middleware(RejectOversized, limit=ports.settings.max_upload_bytes)
    app.include_router(router)
    return app
