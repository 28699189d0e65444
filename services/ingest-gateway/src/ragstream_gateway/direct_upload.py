"""Direct uploads: the client sends the bytes to a staging object, then asks to finalize.

With S3 the client PUTs to a presigned URL and the gateway never carries the bytes in; with
the local store it PUTs to a one-time gateway URL (token random, stored hashed, spent by the
first complete PUT). ``finalize_upload`` then checks the staged object (size, declared size,
SHA-256, type by content) and only then opens the job through ``accept_upload``.

Guarantees: finalize is idempotent (a second call answers the first call's result, whether a
version or a rejection); a rejected upload opens no job; an unfinalized upload expires after
``upload_ttl_s``, and ``expire_uploads`` deletes its staging object.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable

import structlog

from ragstream_core import errors
from ragstream_core.errors import (
    Conflict,
    ContentMismatch,
    EmptyUpload,
    Expired,
    Forbidden,
    InvalidInput,
    NotFound,
    RagstreamError,
    UnsupportedMediaType,
    mapping_for,
)
from ragstream_core.hashing import HashingWriter
from ragstream_core.tags import clean_tags
from ragstream_gateway.handlers import Upload, UploadResult, accept_upload, check_identifier, clean_file_name
from ragstream_gateway.limits import checked_media_type, claimed_media_type, receiving_limit, too_large
from ragstream_gateway.media import accepted_list
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.spool import new_spool, spool_stream
from ragstream_gateway.tenant_limits import TenantLimitsRepository, byte_quota, check_quota
from ragstream_gateway.upload_repository import UploadRow

__all__ = [
    "DirectUpload",
    "Received",
    "Ticket",
    "expire_uploads",
    "finalize_upload",
    "open_direct_upload",
    "receive_upload",
    "sweep_uploads_until",
]

log = structlog.get_logger(__name__)

#: a finalize claimed longer ago than this is taken to have died with its process
FINALIZE_STALE_S = 600.0
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@runtime_checkable
class PresignsUploads(Protocol):
    """An object store that can let a client write one object directly (S3)."""

    async def presigned_put_url(self, key: str, *, expires_s: float) -> str: ...


@dataclass(frozen=True)
class DirectUpload:
    """A client's announcement of a file it will send directly."""

    tenant_id: str
    collection_id: str
    file_name: str
    size_bytes: int | None = None
    sha256: str | None = None
    force: bool = False
    #: the document's tags (replace its current ones at finalize); None keeps them
    tags: list[str] | None = None


@dataclass(frozen=True)
class Ticket:
    """Where and until when the client may PUT the bytes."""

    upload_id: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class Received:
    upload_id: str
    size_bytes: int


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_direct_upload(
    request: DirectUpload, ports: GatewayPorts, *, local_url: Callable[[str, str], str]
) -> Ticket:
    """Record a pending upload and say where to PUT its bytes.

    The URL is a presigned PUT to the staging key when the store can presign (S3), else
    ``local_url(upload_id, token)``, a one-time gateway URL. Declared facts are checked now
    when they already rule the file out (unsupported extension, size over its limit or over the
    tenant's quota); finalize checks the quota again with the bytes received.
    """
    collection_id = check_identifier("collection", request.collection_id)
    file_name = clean_file_name(request.file_name)
    extension = PurePosixPath(file_name).suffix.lower()
    if extension and claimed_media_type(file_name) is None:
        raise UnsupportedMediaType(
            f"cannot accept {file_name!r}: extension {extension!r} is not supported; accepted types: {accepted_list()}"
        )
    sha256 = request.sha256.lower() if request.sha256 is not None else None
    if sha256 is not None and not _SHA256.match(sha256):
        raise InvalidInput(f"sha256 {request.sha256!r} is not valid: give the 64 hexadecimal digits of the SHA-256")
    if request.size_bytes is not None:
        if request.size_bytes <= 0:
            raise EmptyUpload(f"size_bytes is {request.size_bytes}: a document has at least one byte")
        if request.size_bytes > (limit := receiving_limit(file_name, ports.settings)):
            raise too_large(claimed_media_type(file_name), limit)
        await check_quota(
            TenantLimitsRepository(ports.documents.pool),
            ports.settings,
            tenant_id=request.tenant_id,
            collection_id=collection_id,
            file_name=file_name,
            size=request.size_bytes,
            sha256=sha256,
            force=request.force,
        )
    tags = clean_tags(request.tags) if request.tags is not None else None
    upload_id = str(uuid.uuid4())
    staging_key = f"staging/{request.tenant_id}/{upload_id}"
    ttl_s = ports.settings.upload_ttl_s
    presigner = ports.objects if isinstance(ports.objects, PresignsUploads) else None
    token = None if presigner else secrets.token_urlsafe(32)
    row = await ports.uploads.create(
        upload_id=upload_id,
        tenant_id=request.tenant_id,
        collection_id=collection_id,
        file_name=file_name,
        declared_size=request.size_bytes,
        declared_sha256=sha256,
        force=request.force,
        staging_key=staging_key,
        token_sha256=_token_hash(token) if token else None,
        ttl_s=ttl_s,
        tags=tags,
    )
    if presigner is not None:
        url = await presigner.presigned_put_url(staging_key, expires_s=ttl_s)
    else:
        assert token is not None
        url = local_url(upload_id, token)
    log.info("direct_upload.opened", upload_id=upload_id, presigned=presigner is not None)
    return Ticket(upload_id=upload_id, url=url, expires_at=row.expires_at)


def _expired(row: UploadRow) -> Expired:
    return Expired(
        f"upload {row.upload_id!r} expired at {row.expires_at.isoformat()}; create a new upload",
        expired_at=row.expires_at.isoformat(),
    )


async def receive_upload(upload_id: str, token: str, chunks: AsyncIterable[bytes], ports: GatewayPorts) -> Received:
    """Store the bytes of a one-time URL's PUT as the staging object (memory stays flat).

    The token is spent only by a complete PUT within the size limit: a PUT that fails (too
    large, connection lost) may be sent again with the same URL until the upload expires.
    """
    row = await ports.uploads.get_any_tenant(upload_id)
    # one answer for an unknown id and a wrong token: a wrong token learns nothing, not even that it exists
    unknown = NotFound(f"upload {upload_id!r} does not exist, or the URL's token does not open it")
    if row is None:
        raise unknown
    if row.token_sha256 is not None and not hmac.compare_digest(row.token_sha256, _token_hash(token)):
        raise unknown
    if row.token_sha256 is None:
        if row.status == "expired":
            raise _expired(row)
        if row.status == "pending":
            raise Forbidden(f"upload {upload_id!r} takes its bytes at its presigned URL, not at the gateway")
        raise Forbidden(f"the URL of upload {upload_id!r} was already used; finalize it or create a new upload")
    claimed = await ports.uploads.claim_receive(upload_id, row.token_sha256)
    if claimed is None:
        current = await ports.uploads.get_any_tenant(upload_id)
        if current is not None and current.status == "receiving":
            raise Conflict(f"the bytes of upload {upload_id!r} are being received by another request")
        raise _expired(row)
    try:
        quota = await byte_quota(TenantLimitsRepository(ports.documents.pool), ports.settings, row.tenant_id)
        spool, size = await spool_stream(chunks, file_name=row.file_name, settings=ports.settings, quota=quota)
        with spool:
            await ports.objects.put_file(row.staging_key, spool, size)
    except BaseException:
        await ports.uploads.release(upload_id, claimed="receiving", back_to="pending")
        raise
    if not await ports.uploads.mark_received(upload_id):  # the sweeper expired it meanwhile
        await ports.objects.delete(row.staging_key)
        raise _expired(row)
    log.info("direct_upload.received", upload_id=upload_id, size_bytes=size)
    return Received(upload_id=upload_id, size_bytes=size)


def _error_record(error: RagstreamError) -> dict[str, Any]:
    return {"type": type(error).__name__, "message": str(error), "details": error.details}


def _replay(record: dict[str, Any]) -> RagstreamError:
    """The stored rejection, as the same error class with the same message and details."""
    cls = getattr(errors, str(record["type"]), None)
    if not (isinstance(cls, type) and issubclass(cls, RagstreamError)):
        cls = InvalidInput
    return cls(str(record["message"]), **dict(record.get("details") or {}))


async def _finished(row: UploadRow, ports: GatewayPorts) -> UploadResult:
    """The answer of an upload already finalized or rejected."""
    if row.status == "rejected":
        raise _replay(row.error or {"type": "InvalidInput", "message": "the upload was rejected"})
    assert row.document_id is not None
    assert row.version is not None
    version = await ports.documents.get_version(row.tenant_id, row.document_id, row.version)
    if version is None:
        raise NotFound(f"the version upload {row.upload_id!r} made no longer exists")
    return UploadResult(version, unchanged=bool(row.unchanged))


async def _check_staged(row: UploadRow, spool: BinaryIO, ports: GatewayPorts) -> None:
    """Download the staged object into ``spool`` and check it against the limit and the declared facts."""
    size = await ports.objects.size(row.staging_key)
    if size is None:
        raise Conflict(
            f"nothing was uploaded for upload {row.upload_id!r} yet; PUT the bytes to its url, then finalize"
        )
    if size > (limit := receiving_limit(row.file_name, ports.settings)):
        raise too_large(claimed_media_type(row.file_name), limit)
    if row.declared_size is not None and size != row.declared_size:
        raise ContentMismatch(
            f"upload {row.upload_id!r}: {size} bytes were stored but {row.declared_size} were declared",
            expected_size_bytes=row.declared_size,
            found_size_bytes=size,
        )
    writer = HashingWriter(spool)
    await ports.objects.read_into(row.staging_key, cast(BinaryIO, writer))  # it only writes to its target
    found = writer.digest.hexdigest()
    if row.declared_sha256 is not None and found != row.declared_sha256:
        raise ContentMismatch(
            f"upload {row.upload_id!r}: the stored bytes have SHA-256 {found} but {row.declared_sha256} was declared",
            expected_sha256=row.declared_sha256,
            found_sha256=found,
        )
    spool.seek(0)
    checked_media_type(row.file_name, spool, ports.settings)


async def finalize_upload(tenant_id: str, upload_id: str, ports: GatewayPorts) -> UploadResult:
    """Open the job of a staged upload once its bytes check out (or find the version holding them).

    Raises ``NotFound`` (unknown), ``Expired`` (410), ``Conflict`` (nothing stored yet, or
    another finalize in progress), and the rejection itself: ``ContentMismatch`` (422),
    ``UploadTooLarge``, ``UnsupportedMediaType``, ``EmptyUpload``. A rejection is final: the
    staging object is deleted and every later finalize answers the same.
    """
    row = await ports.uploads.get(tenant_id, upload_id)
    if row is None:
        raise NotFound(f"upload {upload_id!r} does not exist")
    if row.status in ("finalized", "rejected"):
        return await _finished(row, ports)
    claimed = await ports.uploads.claim_finalize(tenant_id, upload_id, stale_after_s=FINALIZE_STALE_S)
    if claimed is None:
        current = await ports.uploads.get(tenant_id, upload_id) or row
        if current.status in ("finalized", "rejected"):  # another request finished it just now
            return await _finished(current, ports)
        if current.status == "finalizing":
            raise Conflict(f"upload {upload_id!r} is being finalized by another request; ask again shortly")
        raise _expired(current)
    previous = row.status if row.status in ("pending", "received") else "received"
    spool = new_spool()
    try:
        with spool:
            await _check_staged(claimed, spool, ports)
            upload = Upload(
                tenant_id=claimed.tenant_id,
                collection_id=claimed.collection_id,
                file_name=claimed.file_name,
                source=spool,
                force=claimed.force,
                tags=claimed.tags,
            )
            result = await accept_upload(upload, ports)
    except InvalidInput as exc:  # the bytes are wrong: final, and no job
        await ports.uploads.mark_rejected(upload_id, _error_record(exc))
        await ports.objects.delete(claimed.staging_key)
        log.info(
            "direct_upload.rejected", upload_id=upload_id, error=type(exc).__name__, status=mapping_for(exc).http_status
        )
        raise
    except BaseException:  # nothing stored yet, or a dependency failed: the client may finalize again
        await ports.uploads.release(upload_id, claimed="finalizing", back_to=previous)
        raise
    await ports.uploads.mark_finalized(
        upload_id, document_id=result.version.document_id, version=result.version.version, unchanged=result.unchanged
    )
    await ports.objects.delete(claimed.staging_key)
    log.info("direct_upload.finalized", upload_id=upload_id, job_id=result.version.job_id)
    return result


async def expire_uploads(ports: GatewayPorts) -> int:
    """Delete the staging objects of uploads whose time is up and mark them expired; returns how many.

    Safe to repeat and to run beside requests: deleting is idempotent, and an upload that
    changed state since it was read (finalized just in time) is left alone.
    """
    expired = 0
    for row in await ports.uploads.due_for_expiry(stale_after_s=FINALIZE_STALE_S):
        await ports.objects.delete(row.staging_key)
        if await ports.uploads.mark_expired(row.upload_id, was=row.status):
            expired += 1
            log.info("direct_upload.expired", upload_id=row.upload_id)
    return expired


async def sweep_uploads_until(stop: asyncio.Event, ports: GatewayPorts) -> None:
    """Run ``expire_uploads`` every ``upload_sweep_s`` until ``stop`` is set."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=ports.settings.upload_sweep_s)
        try:
            await expire_uploads(ports)
        except Exception as exc:  # a dependency is down: the next round tries again
            log.warning("direct_upload.sweep_failed", error=str(exc))
