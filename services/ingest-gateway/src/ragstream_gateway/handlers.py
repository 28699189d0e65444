"""The document lifecycle: accept uploads (validate, fingerprint, store, record, announce),
re-embed, delete, compare versions, and follow each version's status from the pipeline."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

import nats.errors
import structlog
from opentelemetry import propagate
from prometheus_client import Counter

from ragstream_core.errors import Conflict, EmptyUpload, InvalidInput, NotFound, UploadTooLarge
from ragstream_core.events import chunks_key, new_job_id, timestamp_of
from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocDeleted,
    DocTagged,
    DocUploaded,
    EventMeta,
    JobFailed,
)
from ragstream_gateway.limits import checked_media_type, upload_limit
from ragstream_gateway.ports import GatewayPorts, registry_caught_up
from ragstream_gateway.repository import CollectionRow, Deletion, NewVersion, TagChange, VersionRow
from ragstream_gateway.tenant_limits import TenantLimitsRepository, check_quota

log = structlog.get_logger(__name__)

UPLOADS = Counter("ragstream_gateway_uploads_total", "Uploads stored, by outcome (accepted, unchanged).", ["outcome"])
UPLOAD_BYTES = Counter("ragstream_gateway_upload_bytes_total", "Bytes of uploads stored.")
for _outcome in ("accepted", "unchanged"):
    UPLOADS.labels(_outcome)

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
    #: the new version's label (default "v<N>")
    label: str = ""
    #: lane: "high" (interactive), "normal" or "bulk"
    priority: str = "normal"
    #: the batch the upload belongs to (batch upload, crawl, X-Batch-Id)
    batch_id: str | None = None
    #: replace the document's tags (checked with ``ragstream_core.tags.clean_tags``); None keeps them
    tags: list[str] | None = None


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
    return _cut_keeping_extension(name, max_bytes=255)


def _cut_keeping_extension(name: str, *, max_bytes: int) -> str:
    """The name in at most ``max_bytes`` of UTF-8 (file systems' limit), its extension kept: the
    extension decides how the file is read, so cutting it off would change the document's type."""
    if len(name.encode()) <= max_bytes:
        return name
    suffix = PurePosixPath(name).suffix
    if len(suffix.encode()) > 16:  # not an extension we read: cut the whole name
        suffix = ""
    stem = name[: len(name) - len(suffix)].encode()[: max_bytes - len(suffix.encode())]
    return stem.decode(errors="ignore") + suffix


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


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, if any."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def job_meta(row: VersionRow, *, retry: int = 0) -> EventMeta:
    """The metadata of the events of a version's job (of its run ``retry``)."""
    return EventMeta(
        job_id=row.job_id,
        tenant_id=row.tenant_id,
        collection_id=row.collection_id,
        document_id=row.document_id,
        version=row.version,
        file_name=row.file_name,
        batch_id=row.batch_id or "",
        priority=row.priority,
        retry=retry,
        tags=row.tags,
        tags_revision=row.tags_revision,
        version_created_at=timestamp_of(row.created_at),
    )


def document_uploaded(row: VersionRow, collection: CollectionRow | None) -> DocUploaded:
    """The event announcing a version (its job is queued), with the collection's parsing preferences."""
    event = DocUploaded(
        meta=job_meta(row),
        object_key=row.object_key,
        media_type=row.media_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        reason=row.reason,
    )
    if collection is not None:
        event.chunking = collection.chunking
        event.columns.embed_columns.extend(collection.embed_columns)
        event.columns.context_columns.extend(collection.context_columns)
    return event


async def announce(row: VersionRow, collection: CollectionRow | None, ports: GatewayPorts) -> None:
    """Publish a recorded version's event; if NATS is down the outbox sends it later."""
    structlog.contextvars.bind_contextvars(job_id=row.job_id)
    try:
        await ports.events.publish(document_uploaded(row, collection))
    except (nats.errors.Error, TimeoutError) as exc:
        # the version is recorded (an outbox row): republish_unpublished sends it once NATS is back
        log.warning("upload.publish_deferred", error=str(exc) or type(exc).__name__)
        return
    await ports.documents.mark_published(row.job_id)


def document_tagged(change: TagChange, *, actor: str = "") -> DocTagged:
    """The announcement of a document's tags (no job's event: ``job_id`` stays empty)."""
    return DocTagged(
        meta=EventMeta(
            tenant_id=change.tenant_id,
            collection_id=change.collection_id,
            document_id=change.document_id,
            file_name=change.file_name,
            tags=change.tags,
            tags_revision=change.tags_revision,
        ),
        actor=actor,
    )


async def announce_tags(tenant_id: str, document_id: str, ports: GatewayPorts, *, actor: str = "") -> bool:
    """Announce a document's tag change not yet announced; whether the index will learn of it now.

    If NATS is unreachable the change stays recorded as unannounced and ``republish_unpublished``
    sends it later (the index keeps the newest revision, so order does not matter).
    """
    for change in await ports.documents.unpublished_tags(document_id=document_id):
        if change.tenant_id != tenant_id:
            continue
        try:
            await ports.events.publish(document_tagged(change, actor=actor))
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("tags.publish_deferred", document_id=document_id, error=str(exc) or type(exc).__name__)
            return False
        await ports.documents.mark_tags_published(document_id, change.tags_revision)
    return True


async def accept_upload(upload: Upload, ports: GatewayPorts) -> UploadResult:
    """Store an upload and open its job, or return the existing version of identical bytes.

    Idempotent for content: the object key is the SHA-256 of the bytes, and the same bytes in
    the same collection return the version that holds them (unless ``force``), atomically even
    for simultaneous uploads. An upload over the tenant's quota raises ``QuotaExceeded`` before
    any byte is stored; the check reserves the upload's share until the version is recorded, so
    simultaneous uploads cannot overshoot it. A new name makes a new document, a known name (or ``replaces``)
    a new version of that document. The event is published after the version is recorded; if
    NATS is unreachable, or the process dies in between, ``republish_unpublished`` sends it.
    """
    settings = ports.settings
    structlog.contextvars.bind_contextvars(tenant_id=upload.tenant_id, collection_id=upload.collection_id)
    media_type = checked_media_type(upload.file_name, upload.source, settings)
    sha256, size = fingerprint(upload.source, max_bytes=upload_limit(media_type, settings))
    quotas = TenantLimitsRepository(ports.documents.pool)
    reservation = await check_quota(
        quotas,
        settings,
        tenant_id=upload.tenant_id,
        collection_id=upload.collection_id,
        file_name=upload.file_name,
        size=size,
        sha256=sha256,
        replaces=upload.replaces,
        force=upload.force,
        reserve=True,
    )
    try:
        row, unchanged, collection = await _store_and_record(upload, ports, media_type, sha256, size, reservation)
    except BaseException:
        if reservation is not None:
            await _release(quotas, reservation)
        raise
    structlog.contextvars.bind_contextvars(job_id=row.job_id)
    if upload.tags is not None:
        await announce_tags(upload.tenant_id, row.document_id, ports, actor=upload.actor)
    if unchanged:
        UPLOADS.labels("unchanged").inc()
        log.info("upload.unchanged", document_id=row.document_id, version=row.version)
        return UploadResult(row, unchanged=True)
    UPLOADS.labels("accepted").inc()
    UPLOAD_BYTES.inc(size)
    await announce(row, collection, ports)
    ports.scheduler.wake()
    log.info(
        "upload.accepted", document_id=row.document_id, version=row.version, size_bytes=size, media_type=media_type
    )
    return UploadResult(row, unchanged=False)


async def _release(quotas: TenantLimitsRepository, reservation: str) -> None:
    """Give back a failed upload's reservation; if that fails too, it expires on its own."""
    try:
        await asyncio.shield(quotas.release(reservation))
    except Exception as exc:  # the upload's own error is the one to report
        log.warning("quota.release_failed", reservation=reservation, error=str(exc) or type(exc).__name__)


async def _store_and_record(
    upload: Upload, ports: GatewayPorts, media_type: str, sha256: str, size: int, reservation: str | None
) -> tuple[VersionRow, bool, CollectionRow]:
    """Store the bytes (content-addressed) and record the version, which takes the reservation's place."""
    settings = ports.settings
    object_key = f"uploads/{upload.tenant_id}/{sha256}"
    if not await ports.objects.exists(object_key):
        await ports.objects.put_file(object_key, upload.source, size)
    reason = upload.reason if upload.reason != "upload" or not upload.force else "force"
    return await ports.documents.add_version(
        NewVersion(
            tenant_id=upload.tenant_id,
            collection_id=upload.collection_id,
            file_name=upload.file_name,
            sha256=sha256,
            object_key=object_key,
            media_type=media_type,
            size_bytes=size,
            actor=upload.actor,
            reason=reason,
            force=upload.force,
            document_id=upload.replaces,
            source_url=upload.source_url,
            label=upload.label,
            priority=upload.priority,
            batch_id=upload.batch_id,
            traceparent=current_traceparent(),
            tags=upload.tags,
            quota_reservation=reservation,
        ),
        job_id=new_job_id(),
        model=settings.embedding_model,
        dimensions=settings.embedding_dimensions,
    )


async def reembed_document(tenant_id: str, document_id: str, ports: GatewayPorts, *, actor: str) -> VersionRow:
    """Parse and embed a document's newest bytes again, as a new version with the collection's
    current preferences. The previous version keeps answering until the new one is indexed.
    """
    versions = await ports.documents.document_versions(tenant_id, document_id)
    if not versions or versions[-1].deleted_at is not None:
        raise NotFound(f"document {document_id!r} does not exist (or was deleted)")
    good = [v for v in versions if v.status not in ("failed", "cancelled")] or versions
    latest = good[-1]
    if not await ports.objects.exists(latest.object_key):
        raise NotFound(f"the stored bytes of document {document_id!r} are gone; upload it again")
    row, _, collection = await ports.documents.add_version(
        NewVersion(
            tenant_id=tenant_id,
            collection_id=latest.collection_id,
            file_name=versions[-1].file_name,
            sha256=latest.sha256,
            object_key=latest.object_key,
            media_type=latest.media_type,
            size_bytes=latest.size_bytes,
            actor=actor,
            reason="reembed",
            force=True,
            document_id=document_id,
        ),
        job_id=new_job_id(),
        model=ports.settings.embedding_model,
        dimensions=ports.settings.embedding_dimensions,
    )
    await announce(row, collection, ports)
    ports.scheduler.wake()
    return row


def document_deleted(deletion: Deletion) -> DocDeleted:
    return DocDeleted(
        meta=EventMeta(
            job_id=deletion.job_id,
            tenant_id=deletion.tenant_id,
            collection_id=deletion.collection_id,
            document_id=deletion.document_id,
            version=deletion.version,
            file_name=deletion.file_name,
        ),
        actor=deletion.actor,
        cancelled_job_ids=deletion.cancelled_job_ids,
    )


async def delete_document(
    tenant_id: str, document_id: str, ports: GatewayPorts, *, actor: str, cancel: bool
) -> Deletion:
    """Delete a document: recorded at once (chat stops citing it when its delete job is done).

    The embedder removes every version's points on ``DocDeleted`` and refuses any later
    activation of them; the bytes no other live document shares are removed here.
    """
    delete = functools.partial(ports.documents.delete_document, tenant_id, document_id, actor=actor, cancel=cancel)
    try:
        try:
            deletion, unused = await delete(job_id=new_job_id())
        except Conflict:
            # the running job may be one the registry has not yet read the end of: refuse only once it has
            if not await registry_caught_up(ports.events):
                raise
            deletion, unused = await delete(job_id=new_job_id())
    except Conflict as exc:
        await ports.documents.record(
            tenant_id=tenant_id,
            actor=actor,
            action="document.delete",
            outcome="refused",
            document_id=document_id,
            reason=str(exc),
        )
        raise
    for key in unused:
        await ports.objects.delete(key)
    for version in range(1, deletion.version + 1):
        await ports.objects.delete(chunks_key(tenant_id, document_id, version))
    await announce_deletion(deletion, ports)
    log.info("document.deleted", document_id=document_id, cancelled=deletion.cancelled_job_ids)
    return deletion


async def announce_deletion(deletion: Deletion, ports: GatewayPorts) -> None:
    try:
        for job_id in deletion.cancelled_job_ids:
            await ports.events.publish(
                JobFailed(
                    meta=EventMeta(
                        job_id=job_id,
                        tenant_id=deletion.tenant_id,
                        collection_id=deletion.collection_id,
                        document_id=deletion.document_id,
                        file_name=deletion.file_name,
                    ),
                    stage="cancelled",
                    reason=f"cancelled: the document was deleted by {deletion.actor}",
                    attempts=1,
                    error_type="Cancelled",
                    retryable=False,
                )
            )
        await ports.events.publish(document_deleted(deletion))
    except (nats.errors.Error, TimeoutError) as exc:
        log.warning("delete.publish_deferred", error=str(exc) or type(exc).__name__)
        return
    await ports.documents.mark_deletion_published(deletion.job_id)


@dataclass(frozen=True)
class ChunkChange:
    key: str
    heading_path: list[str]
    before: str | None
    after: str | None


def _chunk_keys(chunks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Chunks by identity: heading path plus the ordinal under that heading."""
    seen: dict[tuple[str, ...], int] = {}
    keyed: dict[str, dict[str, Any]] = {}
    for chunk in chunks:
        path = tuple(chunk.get("heading_path") or [])
        ordinal = seen.get(path, 0)
        seen[path] = ordinal + 1
        keyed[" > ".join(path) + f" #{ordinal + 1}"] = chunk
    return keyed


async def compare_versions(tenant_id: str, document_id: str, a: int, b: int, ports: GatewayPorts) -> dict[str, Any]:
    """Which chunks version ``b`` added, removed and changed relative to version ``a``."""
    texts: list[dict[str, dict[str, Any]]] = []
    for version in (a, b):
        row = await ports.documents.get_version(tenant_id, document_id, version)
        if row is None:
            raise NotFound(f"document {document_id!r} has no version {version}")
        try:
            parsed = json.loads(await ports.objects.get_bytes(chunks_key(tenant_id, document_id, version)))
        except NotFound:
            raise Conflict(
                f"version {version} of document {document_id!r} has no chunks (status {row.status});"
                " compare versions that were parsed",
                status=row.status,
            ) from None
        texts.append(_chunk_keys(parsed["chunks"]))
    before, after = texts
    added = [k for k in after if k not in before]
    removed = [k for k in before if k not in after]
    changed = [k for k in after if k in before and after[k]["text"] != before[k]["text"]]
    unchanged = len(after) - len(added) - len(changed)

    def item(key: str, chunk: dict[str, Any]) -> dict[str, Any]:
        return {"key": key, "index": chunk["index"], "heading_path": chunk["heading_path"], "text": chunk["text"]}

    return {
        "document_id": document_id,
        "from_version": a,
        "to_version": b,
        "added": [item(k, after[k]) for k in added],
        "removed": [item(k, before[k]) for k in removed],
        "changed": [
            {**item(k, after[k]), "before": before[k]["text"], "before_index": before[k]["index"]} for k in changed
        ],
        "unchanged": unchanged,
    }


async def republish_unpublished(ports: GatewayPorts) -> int:
    """Re-send the events of versions recorded but never announced (a crash in between).

    Safe to repeat: the event's message id derives from the job, so JetStream drops copies.
    """
    rows = await ports.documents.unpublished(ports.settings.republish_after_s)
    for row in rows:
        collection = await ports.documents.get_collection(row.tenant_id, row.collection_id)
        await ports.events.publish(document_uploaded(row, collection))
        await ports.documents.mark_published(row.job_id)
        log.warning("upload.republished", job_id=row.job_id)
    deletions = await ports.documents.unpublished_deletions(ports.settings.republish_after_s)
    for deletion in deletions:
        await announce_deletion(deletion, ports)
        log.warning("delete.republished", job_id=deletion.job_id)
    changes = await ports.documents.unpublished_tags(older_than_s=ports.settings.republish_after_s)
    for change in changes:
        await ports.events.publish(document_tagged(change))
        await ports.documents.mark_tags_published(change.document_id, change.tags_revision)
        log.warning("tags.republished", document_id=change.document_id, revision=change.tags_revision)
    return len(rows) + len(deletions) + len(changes)
