"""Accepting uploads: validate, fingerprint, store, record the version, announce the job."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import BinaryIO

import nats.errors
import structlog

from ragstream_core.errors import EmptyUpload, InvalidInput, UploadTooLarge
from ragstream_core.events import new_job_id
from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded, EventMeta
from ragstream_gateway.media import detect_media_type
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.repository import VersionRow

log = structlog.get_logger(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_READ = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    tenant_id: str
    collection_id: str
    file_name: str
    source: BinaryIO
    force: bool = False
    #: why: "upload", "force", "reembed", "web" (recorded on the version and in the audit log)
    reason: str = "upload"
    #: who asked (key id or user); "anonymous" until authentication exists
    actor: str = "anonymous"
    #: upload as a new version of this document (lineage kept even under a new name)
    replaces: str | None = None
    #: where a web source was fetched from
    source_url: str | None = None


@dataclass(frozen=True)
class UploadResult:
    version: VersionRow
    unchanged: bool


def check_identifier(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid tenant or collection id, else raise ``InvalidInput``."""
    if not _ID.match(value):
        raise InvalidInput(
            f"{kind} {value!r} is not valid: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return value


def clean_file_name(raw: str | None) -> str:
    """The base name of an uploaded file, without directories or control characters."""
    name = PureWindowsPath(PurePosixPath(raw or "").name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if not name:
        raise InvalidInput("the upload has no usable file name; send it as multipart field 'file' with a filename")
    return name[:255]


def fingerprint(source: BinaryIO, *, max_bytes: int) -> tuple[str, int]:
    """SHA-256 and size of the whole stream, read in chunks; enforces the size limit."""
    digest = hashlib.sha256()
    size = 0
    source.seek(0)
    while chunk := source.read(_READ):
        size += len(chunk)
        if size > max_bytes:
            raise UploadTooLarge(f"the upload exceeds the limit of {max_bytes} bytes")
        digest.update(chunk)
    source.seek(0)
    if size == 0:
        raise EmptyUpload("the uploaded file is empty (0 bytes); send a document with content")
    return digest.hexdigest(), size


def document_uploaded(row: VersionRow) -> DocUploaded:
    return DocUploaded(
        meta=EventMeta(
            job_id=row.job_id,
            tenant_id=row.tenant_id,
            collection_id=row.collection_id,
            document_id=row.document_id,
            version=row.version,
            file_name=row.file_name,
        ),
        object_key=row.object_key,
        media_type=row.media_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
    )


async def accept_upload(upload: Upload, ports: GatewayPorts) -> UploadResult:
    """Store an upload and open its job, or return the existing version of identical bytes.

    Idempotent for content: the object key is the SHA-256 of the bytes, and the same bytes in
    the same collection return the version that holds them (unless ``force``). The event is
    published after the version is recorded; if NATS is unreachable, or the process dies in
    between, ``republish_unpublished`` sends it later (the version row is the outbox).
    """
    settings = ports.settings
    sha256, size = fingerprint(upload.source, max_bytes=settings.max_upload_bytes)
    media_type = detect_media_type(upload.file_name, upload.source)
    if not upload.force:
        existing = await ports.documents.find_by_content(upload.tenant_id, upload.collection_id, sha256)
        if existing is not None:
            log.info("upload.unchanged", document_id=existing.document_id, version=existing.version)
            return UploadResult(existing, unchanged=True)
    object_key = f"uploads/{upload.tenant_id}/{sha256}"
    if not await ports.objects.exists(object_key):
        await ports.objects.put_file(object_key, upload.source, size)
    row = await ports.documents.add_version(
        tenant_id=upload.tenant_id,
        collection_id=upload.collection_id,
        file_name=upload.file_name,
        job_id=new_job_id(),
        sha256=sha256,
        object_key=object_key,
        media_type=media_type,
        size_bytes=size,
        embedding_model=settings.embedding_model,
        dimensions=settings.embedding_dimensions,
    )
    structlog.contextvars.bind_contextvars(job_id=row.job_id)
    try:
        await ports.events.publish(document_uploaded(row))
    except (nats.errors.Error, TimeoutError) as exc:
        # the version is recorded (an outbox row): republish_unpublished sends it once NATS is back
        log.warning("upload.publish_deferred", error=str(exc) or type(exc).__name__)
        return UploadResult(row, unchanged=False)
    await ports.documents.mark_published(row.job_id)
    log.info(
        "upload.accepted", document_id=row.document_id, version=row.version, size_bytes=size, media_type=media_type
    )
    return UploadResult(row, unchanged=False)


async def republish_unpublished(ports: GatewayPorts) -> int:
    """Re-send the events of versions recorded but never announced (a crash in between).

    Safe to repeat: the event's message id derives from the job, so JetStream drops copies.
    """
    rows = await ports.documents.unpublished(ports.settings.republish_after_s)
    for row in rows:
        await ports.events.publish(document_uploaded(row))
        await ports.documents.mark_published(row.job_id)
        log.warning("upload.republished", job_id=row.job_id)
    return len(rows)
