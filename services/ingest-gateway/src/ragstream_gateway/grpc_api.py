"""gRPC adapter of the gateway: ``IngestService`` over ``handlers`` and the repository."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from ragstream_core.errors import InvalidInput, NotFound, RagstreamError
from ragstream_core.events import timestamp_of
from ragstream_core.grpc_server import tenant_from
from ragstream_core.proto.ragstream.v1 import ingest_pb2, ingest_pb2_grpc
from ragstream_core.tags import clean_tags
from ragstream_gateway.handlers import Upload, UploadResult, accept_upload, check_identifier, clean_file_name
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.repository import VersionRow
from ragstream_gateway.spool import spool_stream
from ragstream_gateway.tenant_limits import TenantLimitsRepository, byte_quota

__all__ = ["IngestServicer", "document_message", "upload_response"]


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
        tags=rows[-1].tags,
    )


def upload_response(result: UploadResult, *, progress_url: str) -> ingest_pb2.UploadResponse:
    """An accepted (or unchanged) upload, as the gRPC message; the same facts as the REST body."""
    row = result.version
    return ingest_pb2.UploadResponse(
        document_id=row.document_id,
        version=row.version,
        job_id=row.job_id,
        unchanged=result.unchanged,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        media_type=row.media_type,
        collection_id=row.collection_id,
        file_name=row.file_name,
        created_at=timestamp_of(row.created_at),
        job_url=f"{progress_url}/v1/jobs/{row.job_id}",
        tags=row.tags,
    )


async def _chunks(requests: AsyncIterator[ingest_pb2.UploadRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("part") != "chunk":
            raise InvalidInput("only the first message of an upload carries a header; the others carry chunks")
        yield request.chunk


#: how long, and how many bytes, a refused upload's remaining stream is read and dropped
DRAIN_S = 1.0
DRAIN_BYTES = 1024 * 1024


async def _drain(requests: AsyncIterator[ingest_pb2.UploadRequest]) -> None:
    """Read and drop what the client still sends of a refused upload, for a bounded time, before
    the refusal is answered (a lingering close, as HTTP servers do before a 413): a client still
    writing when the call ends sees a failed write (``INTERNAL``) instead of the refusal's status."""
    dropped = 0
    with contextlib.suppress(TimeoutError, grpc.RpcError):
        async with asyncio.timeout(DRAIN_S):
            async for request in requests:
                dropped += len(request.chunk)
                if dropped > DRAIN_BYTES:
                    return


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

    async def Upload(
        self,
        request_iterator: AsyncIterator[ingest_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> ingest_pb2.UploadResponse:
        """Client streaming upload: a header, then chunks, spooled (memory flat) under the size limit
        and the tenant's byte quota (cut off as soon as either is passed)."""
        tenant = self._tenant(context)
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidInput("the first message of an upload must be a header with collection_id and file_name")
        header = first.header
        collection = check_identifier("collection", header.collection_id)
        file_name = clean_file_name(header.file_name)
        # repeated fields cannot say "none given": tags given replace the document's, none keep them
        tags = clean_tags(header.tags) if header.tags else None
        quota = await byte_quota(TenantLimitsRepository(self.ports.documents.pool), self.ports.settings, tenant)
        try:
            spool, _ = await spool_stream(
                _chunks(requests), file_name=file_name, settings=self.ports.settings, quota=quota
            )
        except RagstreamError:
            await _drain(requests)
            raise
        with spool:
            upload = Upload(
                tenant_id=tenant,
                collection_id=collection,
                file_name=file_name,
                source=spool,
                force=header.force,
                tags=tags,
            )
            result = await accept_upload(upload, self.ports)
        return upload_response(result, progress_url=self.ports.settings.progress_url)
