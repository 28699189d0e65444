import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventMeta(_message.Message):
    __slots__ = ("event_id", "job_id", "tenant_id", "collection_id", "document_id", "version", "occurred_at", "file_name", "batch_id", "priority", "retry", "tags", "tags_revision", "version_created_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TAGS_REVISION_FIELD_NUMBER: _ClassVar[int]
    VERSION_CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    job_id: str
    tenant_id: str
    collection_id: str
    document_id: str
    version: int
    occurred_at: _timestamp_pb2.Timestamp
    file_name: str
    batch_id: str
    priority: str
    retry: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    tags_revision: int
    version_created_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., job_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., collection_id: _Optional[str] = ..., document_id: _Optional[str] = ..., version: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., file_name: _Optional[str] = ..., batch_id: _Optional[str] = ..., priority: _Optional[str] = ..., retry: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., tags_revision: _Optional[int] = ..., version_created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DocUploaded(_message.Message):
    __slots__ = ("meta", "object_key", "media_type", "size_bytes", "sha256", "chunking", "columns", "reason")
    META_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    object_key: str
    media_type: str
    size_bytes: int
    sha256: str
    chunking: str
    columns: ColumnPreferences
    reason: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., object_key: _Optional[str] = ..., media_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., chunking: _Optional[str] = ..., columns: _Optional[_Union[ColumnPreferences, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ColumnPreferences(_message.Message):
    __slots__ = ("embed_columns", "context_columns")
    EMBED_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    embed_columns: _containers.RepeatedScalarFieldContainer[str]
    context_columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, embed_columns: _Optional[_Iterable[str]] = ..., context_columns: _Optional[_Iterable[str]] = ...) -> None: ...

class DocReleased(_message.Message):
    __slots__ = ("meta", "upload")
    META_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    upload: DocUploaded
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., upload: _Optional[_Union[DocUploaded, _Mapping]] = ...) -> None: ...

class StageProgress(_message.Message):
    __slots__ = ("meta", "stage", "done", "total", "unit", "attempt")
    META_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    stage: str
    done: int
    total: int
    unit: str
    attempt: int
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., unit: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class DocParsed(_message.Message):
    __slots__ = ("meta", "chunks_key", "chunk_count", "page_count", "media_type", "token_count", "parse_seconds", "warnings")
    META_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_KEY_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    PARSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    chunks_key: str
    chunk_count: int
    page_count: int
    media_type: str
    token_count: int
    parse_seconds: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., chunks_key: _Optional[str] = ..., chunk_count: _Optional[int] = ..., page_count: _Optional[int] = ..., media_type: _Optional[str] = ..., token_count: _Optional[int] = ..., parse_seconds: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class IndexUpdated(_message.Message):
    __slots__ = ("meta", "chunk_count", "truncated_chunks", "embedding_model", "dimensions", "embed_seconds", "removed_points", "deleted")
    META_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    EMBED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_POINTS_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    chunk_count: int
    truncated_chunks: int
    embedding_model: str
    dimensions: int
    embed_seconds: float
    removed_points: int
    deleted: bool
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., chunk_count: _Optional[int] = ..., truncated_chunks: _Optional[int] = ..., embedding_model: _Optional[str] = ..., dimensions: _Optional[int] = ..., embed_seconds: _Optional[float] = ..., removed_points: _Optional[int] = ..., deleted: _Optional[bool] = ...) -> None: ...

class DocDeleted(_message.Message):
    __slots__ = ("meta", "actor", "cancelled_job_ids")
    META_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    actor: str
    cancelled_job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., actor: _Optional[str] = ..., cancelled_job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class JobFailed(_message.Message):
    __slots__ = ("meta", "stage", "reason", "attempts", "error_type", "retryable", "hint")
    META_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    stage: str
    reason: str
    attempts: int
    error_type: str
    retryable: bool
    hint: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., stage: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., error_type: _Optional[str] = ..., retryable: _Optional[bool] = ..., hint: _Optional[str] = ...) -> None: ...

class JobControlled(_message.Message):
    __slots__ = ("meta", "action", "actor", "reason", "control_id")
    META_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONTROL_ID_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    action: str
    actor: str
    reason: str
    control_id: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., action: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., control_id: _Optional[str] = ...) -> None: ...

class DocTagged(_message.Message):
    __slots__ = ("meta", "actor")
    META_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    actor: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., actor: _Optional[str] = ...) -> None: ...

class IndexTagged(_message.Message):
    __slots__ = ("meta", "updated_points")
    META_FIELD_NUMBER: _ClassVar[int]
    UPDATED_POINTS_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    updated_points: int
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., updated_points: _Optional[int] = ...) -> None: ...
