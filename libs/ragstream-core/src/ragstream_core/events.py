"""Subjects, streams and event metadata: where each event type travels and how ids derive.

Guarantee: every id made here is derived from its inputs, never from the clock or
randomness (except ``new_job_id``), so a redelivered message yields identical events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocDeleted,
    DocParsed,
    DocReleased,
    DocTagged,
    DocUploaded,
    EventMeta,
    IndexTagged,
    IndexUpdated,
    JobControlled,
    JobFailed,
    StageProgress,
)

EVENTS_STREAM = "RAGSTREAM_EVENTS"
EVENTS_SUBJECTS = "ragstream.events.>"
DEAD_LETTER_STREAM = "RAGSTREAM_DLQ"
DEAD_LETTER_SUBJECTS = "ragstream.dlq.>"
SEARCH_SUBJECT = "ragstream.rpc.search"
# what the index holds, and removing points from it (InventoryRequest, DeletePointsRequest)
INVENTORY_SUBJECT = "ragstream.rpc.index.inventory"
DELETE_POINTS_SUBJECT = "ragstream.rpc.index.delete_points"
INDEX_SNAPSHOT_SUBJECT = "ragstream.rpc.index.snapshot"  # ops.proto: a backup of the embedded index

SUBJECT_OF: dict[type[Message], str] = {
    DocUploaded: "ragstream.events.doc.uploaded",
    DocReleased: "ragstream.events.doc.released",
    StageProgress: "ragstream.events.job.progress",
    DocParsed: "ragstream.events.doc.parsed",
    IndexUpdated: "ragstream.events.index.updated",
    JobFailed: "ragstream.events.job.failed",
    DocDeleted: "ragstream.events.doc.deleted",
    JobControlled: "ragstream.events.job.control",
    DocTagged: "ragstream.events.doc.tagged",
    IndexTagged: "ragstream.events.index.tagged",
}
TYPE_OF_SUBJECT: dict[str, type[Message]] = {subject: t for t, subject in SUBJECT_OF.items()}
TYPE_HEADER = "Ragstream-Type"
#: the tenant of an event, beside its body: a dead letter whose body cannot be read still names its owner
TENANT_HEADER = "Ragstream-Tenant"

_POINT_NAMESPACE = uuid.UUID("6f1c2a9e-3b1d-4c55-9a0e-5d2f1b7c8e40")


def new_job_id() -> str:
    """A fresh job id (the only random id: one per accepted upload)."""
    return str(uuid.uuid4())


def message_id(event: Message) -> str:
    """The ``Nats-Msg-Id`` (and ``event_id``) of an event: job, stage and position.

    A retried publish of the same logical event gets the same id, so JetStream's duplicate
    window drops it and the progress projection applies it once. A retried job (``retry`` > 0)
    is a new run: its events get ids of their own.
    """
    meta: EventMeta = event.meta  # type: ignore[attr-defined]
    run = f"{meta.job_id}:r{meta.retry}" if meta.retry else meta.job_id
    match event:
        case DocTagged():  # not a job's: one per tag change of a document
            return f"{meta.tenant_id}:{meta.document_id}:tags:{meta.tags_revision}"
        case IndexTagged():
            return f"{meta.tenant_id}:{meta.document_id}:tags:{meta.tags_revision}:indexed"
        case DocUploaded():
            return f"{run}:uploaded"
        case DocReleased():
            return f"{run}:released"
        case DocParsed():
            return f"{run}:parsed"
        case IndexUpdated():
            return f"{run}:indexed"
        case DocDeleted():
            return f"{run}:deleted"
        case StageProgress(stage=stage, done=done, attempt=attempt):
            return f"{run}:{stage}:{done}:a{attempt}"
        case JobFailed(stage=stage):
            return f"{run}:failed:{stage}"
        case JobControlled(action=action, control_id=control_id):
            return f"{run}:{action}:{control_id}"
    raise TypeError(f"no subject for {type(event).__name__}; known: {sorted(t.__name__ for t in SUBJECT_OF)}")


def stamp(event: Message) -> Message:
    """Fill ``meta.event_id`` (from ``message_id``) and ``meta.occurred_at`` (if unset)."""
    meta: EventMeta = event.meta  # type: ignore[attr-defined]
    meta.event_id = message_id(event)
    if not meta.HasField("occurred_at"):
        meta.occurred_at.CopyFrom(now_timestamp())
    return event


def next_meta(meta: EventMeta) -> EventMeta:
    """The metadata of an event caused by one carrying ``meta``: same job, fresh id and time."""
    out = EventMeta()
    out.CopyFrom(meta)
    out.event_id = ""
    out.ClearField("occurred_at")
    return out


def timestamp_of(value: datetime) -> Timestamp:
    """``value`` as a protobuf ``Timestamp``."""
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def now_timestamp() -> Timestamp:
    return timestamp_of(datetime.now(UTC))


def point_id(document_id: str, version: int, chunk_index: int) -> str:
    """The Qdrant point id of one chunk: the same chunk always lands on the same point."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{document_id}:{version}:{chunk_index}"))


def chunks_key(tenant_id: str, document_id: str, version: int) -> str:
    """The object key of a document version's parsed chunks."""
    return f"chunks/{tenant_id}/{document_id}/v{version}.json"
