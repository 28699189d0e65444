from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InventoryRequest(_message.Message):
    __slots__ = ("tenant_id", "collection_id", "after_document_id", "limit")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    collection_id: str
    after_document_id: str
    limit: int
    def __init__(self, tenant_id: _Optional[str] = ..., collection_id: _Optional[str] = ..., after_document_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class VersionPoints(_message.Message):
    __slots__ = ("collection_id", "document_id", "version", "points", "active_points", "missing_dense", "missing_sparse", "active")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_POINTS_FIELD_NUMBER: _ClassVar[int]
    MISSING_DENSE_FIELD_NUMBER: _ClassVar[int]
    MISSING_SPARSE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    document_id: str
    version: int
    points: int
    active_points: int
    missing_dense: int
    missing_sparse: int
    active: bool
    def __init__(self, collection_id: _Optional[str] = ..., document_id: _Optional[str] = ..., version: _Optional[int] = ..., points: _Optional[int] = ..., active_points: _Optional[int] = ..., missing_dense: _Optional[int] = ..., missing_sparse: _Optional[int] = ..., active: _Optional[bool] = ...) -> None: ...

class InventoryResponse(_message.Message):
    __slots__ = ("versions", "next_after_document_id", "engine", "error")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[VersionPoints]
    next_after_document_id: str
    engine: str
    error: str
    def __init__(self, versions: _Optional[_Iterable[_Union[VersionPoints, _Mapping]]] = ..., next_after_document_id: _Optional[str] = ..., engine: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class DeletePointsRequest(_message.Message):
    __slots__ = ("tenant_id", "document_id", "versions", "up_to_version")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    UP_TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    document_id: str
    versions: _containers.RepeatedScalarFieldContainer[int]
    up_to_version: int
    def __init__(self, tenant_id: _Optional[str] = ..., document_id: _Optional[str] = ..., versions: _Optional[_Iterable[int]] = ..., up_to_version: _Optional[int] = ...) -> None: ...

class DeletePointsResponse(_message.Message):
    __slots__ = ("removed", "error")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    removed: int
    error: str
    def __init__(self, removed: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...
