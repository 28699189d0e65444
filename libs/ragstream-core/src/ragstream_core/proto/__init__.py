"""Generated from proto/ragstream/v1 by `make proto`. Do not edit the *_pb2* files by hand."""

from ragstream_core.proto.ragstream.v1 import (
    chat_pb2,
    events_pb2,
    ingest_pb2,
    progress_pb2,
    search_pb2,
)

__all__ = ["chat_pb2", "events_pb2", "ingest_pb2", "progress_pb2", "search_pb2"]
