import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("collection_id", "status", "limit", "stage", "batch_id", "document_id", "created_after", "created_before", "cursor")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    status: str
    limit: int
    stage: str
    batch_id: str
    document_id: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    cursor: str
    def __init__(self, collection_id: _Optional[str] = ..., status: _Optional[str] = ..., limit: _Optional[int] = ..., stage: _Optional[str] = ..., batch_id: _Optional[str] = ..., document_id: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_cursor")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_cursor: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class WatchJobsRequest(_message.Message):
    __slots__ = ("collection_id", "batch_id", "job_id", "after")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    batch_id: str
    job_id: str
    after: int
    def __init__(self, collection_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., job_id: _Optional[str] = ..., after: _Optional[int] = ...) -> None: ...

class JobChange(_message.Message):
    __slots__ = ("position", "job")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    position: int
    job: Job
    def __init__(self, position: _Optional[int] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("queued_seconds", "parse_seconds", "embed_seconds")
    QUEUED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EMBED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queued_seconds: float
    parse_seconds: float
    embed_seconds: float
    def __init__(self, queued_seconds: _Optional[float] = ..., parse_seconds: _Optional[float] = ..., embed_seconds: _Optional[float] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "tenant_id", "collection_id", "document_id", "version", "file_name", "status", "percent", "pages", "chunks", "chunks_embedded", "error_stage", "error_reason", "created_at", "updated_at", "trace_id", "batch_id", "priority", "paused", "eta_seconds", "retry", "hint", "timings", "stage", "pages_parsed", "attempts")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    ERROR_STAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PAGES_PARSED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    tenant_id: str
    collection_id: str
    document_id: str
    version: int
    file_name: str
    status: str
    percent: int
    pages: int
    chunks: int
    chunks_embedded: int
    error_stage: str
    error_reason: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    trace_id: str
    batch_id: str
    priority: str
    paused: bool
    eta_seconds: float
    retry: int
    hint: str
    timings: StageTimings
    stage: str
    pages_parsed: int
    attempts: int
    def __init__(self, job_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., collection_id: _Optional[str] = ..., document_id: _Optional[str] = ..., version: _Optional[int] = ..., file_name: _Optional[str] = ..., status: _Optional[str] = ..., percent: _Optional[int] = ..., pages: _Optional[int] = ..., chunks: _Optional[int] = ..., chunks_embedded: _Optional[int] = ..., error_stage: _Optional[str] = ..., error_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., priority: _Optional[str] = ..., paused: _Optional[bool] = ..., eta_seconds: _Optional[float] = ..., retry: _Optional[int] = ..., hint: _Optional[str] = ..., timings: _Optional[_Union[StageTimings, _Mapping]] = ..., stage: _Optional[str] = ..., pages_parsed: _Optional[int] = ..., attempts: _Optional[int] = ...) -> None: ...
