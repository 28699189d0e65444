import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AskRequest(_message.Message):
    __slots__ = ("tenant_id", "collection_id", "question", "top_k", "conversation_id", "tags", "date_from", "date_to")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    collection_id: str
    question: str
    top_k: int
    conversation_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    date_from: _timestamp_pb2.Timestamp
    date_to: _timestamp_pb2.Timestamp
    def __init__(self, tenant_id: _Optional[str] = ..., collection_id: _Optional[str] = ..., question: _Optional[str] = ..., top_k: _Optional[int] = ..., conversation_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., date_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., date_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("number", "document_id", "version", "file_name", "heading_path", "page", "text", "score", "chunk_index")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    HEADING_PATH_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    number: int
    document_id: str
    version: int
    file_name: str
    heading_path: _containers.RepeatedScalarFieldContainer[str]
    page: int
    text: str
    score: float
    chunk_index: int
    def __init__(self, number: _Optional[int] = ..., document_id: _Optional[str] = ..., version: _Optional[int] = ..., file_name: _Optional[str] = ..., heading_path: _Optional[_Iterable[str]] = ..., page: _Optional[int] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., chunk_index: _Optional[int] = ...) -> None: ...

class AnswerSentence(_message.Message):
    __slots__ = ("index", "text", "citations")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    citations: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., citations: _Optional[_Iterable[int]] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("answer", "citations", "mode", "conversation_id", "message_id", "sentences", "query")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    answer: str
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    mode: str
    conversation_id: str
    message_id: str
    sentences: _containers.RepeatedCompositeFieldContainer[AnswerSentence]
    query: str
    def __init__(self, answer: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., mode: _Optional[str] = ..., conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., sentences: _Optional[_Iterable[_Union[AnswerSentence, _Mapping]]] = ..., query: _Optional[str] = ...) -> None: ...

class AskStarted(_message.Message):
    __slots__ = ("conversation_id", "message_id", "mode", "query")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    message_id: str
    mode: str
    query: str
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., mode: _Optional[str] = ..., query: _Optional[str] = ...) -> None: ...

class AnswerDelta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class AskEvent(_message.Message):
    __slots__ = ("started", "citation", "delta", "sentence", "done")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    started: AskStarted
    citation: Citation
    delta: AnswerDelta
    sentence: AnswerSentence
    done: AskResponse
    def __init__(self, started: _Optional[_Union[AskStarted, _Mapping]] = ..., citation: _Optional[_Union[Citation, _Mapping]] = ..., delta: _Optional[_Union[AnswerDelta, _Mapping]] = ..., sentence: _Optional[_Union[AnswerSentence, _Mapping]] = ..., done: _Optional[_Union[AskResponse, _Mapping]] = ...) -> None: ...
