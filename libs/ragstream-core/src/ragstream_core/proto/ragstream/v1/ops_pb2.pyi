from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class IndexSnapshotRequest(_message.Message):
    __slots__ = ("object_key",)
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    object_key: str
    def __init__(self, object_key: _Optional[str] = ...) -> None: ...

class IndexSnapshotReply(_message.Message):
    __slots__ = ("object_key", "size_bytes", "sha256", "engine", "path", "points", "error")
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    object_key: str
    size_bytes: int
    sha256: str
    engine: str
    path: str
    points: int
    error: str
    def __init__(self, object_key: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., engine: _Optional[str] = ..., path: _Optional[str] = ..., points: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...
