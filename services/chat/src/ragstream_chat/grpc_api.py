"""gRPC adapter of the chat service: ``ChatService.Ask`` (whole answer) and ``AskStream`` (events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc

from ragstream_chat.handlers import (
    ChatEvent,
    CitationEvent,
    Delta,
    Question,
    SentenceEvent,
    Started,
    answer_question,
    prepare,
)
from ragstream_chat.ports import ChatPorts
from ragstream_chat.retrieval import Filters
from ragstream_core.auth import current_principal
from ragstream_core.grpc_server import tenant_from
from ragstream_core.proto.ragstream.v1 import chat_pb2, chat_pb2_grpc

__all__ = ["ChatServicer"]


def citation_message(c: dict[str, Any]) -> chat_pb2.Citation:
    return chat_pb2.Citation(
        number=c["number"],
        document_id=c["document_id"],
        version=c["version"],
        file_name=c["file_name"],
        heading_path=c["heading_path"],
        page=c["page"] or 0,
        text=c["text"],
        score=c["score"],
        chunk_index=c["chunk_index"],
    )


def response_message(result: dict[str, Any]) -> chat_pb2.AskResponse:
    return chat_pb2.AskResponse(
        answer=result["answer"],
        mode=result["mode"],
        citations=[citation_message(c) for c in result["citations"]],
        conversation_id=result["conversation_id"],
        message_id=result["message_id"],
        sentences=[chat_pb2.AnswerSentence(**s) for s in result["sentences"]],
        query=result["query"],
    )


def event_message(event: ChatEvent) -> chat_pb2.AskEvent:
    if isinstance(event, Started):
        return chat_pb2.AskEvent(started=chat_pb2.AskStarted(**event.data()))
    if isinstance(event, CitationEvent):
        return chat_pb2.AskEvent(citation=citation_message(event.citation))
    if isinstance(event, Delta):
        return chat_pb2.AskEvent(delta=chat_pb2.AnswerDelta(text=event.text))
    if isinstance(event, SentenceEvent):
        return chat_pb2.AskEvent(sentence=chat_pb2.AnswerSentence(**event.data()))
    return chat_pb2.AskEvent(done=response_message(event.result))


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    """gRPC ``ChatService``; the tenant comes from the caller's key (open mode: the request or the
    ``x-tenant-id`` metadata).
    Domain errors become gRPC statuses in the shared interceptor."""

    def __init__(self, ports: ChatPorts, *, default_tenant: str) -> None:
        self.ports = ports
        self.default_tenant = default_tenant

    def _question(self, request: chat_pb2.AskRequest, context: grpc.aio.ServicerContext[Any, Any]) -> Question:
        caller = current_principal()
        # a key decides the tenant; the request's tenant_id is heeded only without keys (open mode)
        keyed = caller is not None and caller.key_id is not None
        tenant = (not keyed and request.tenant_id) or tenant_from(context, self.default_tenant)
        filters = Filters.of(
            list(request.tags),
            request.date_from.ToDatetime(tzinfo=UTC) if request.HasField("date_from") else None,
            request.date_to.ToDatetime(tzinfo=UTC) if request.HasField("date_to") else None,
        )
        return Question(
            tenant,
            request.collection_id,
            request.question,
            request.top_k or None,
            request.conversation_id,
            filters=filters,
        )

    async def Ask(
        self, request: chat_pb2.AskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> chat_pb2.AskResponse:
        return response_message(await answer_question(self._question(request, context), self.ports))

    async def AskStream(
        self, request: chat_pb2.AskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[chat_pb2.AskEvent]:
        prepared = await prepare(self._question(request, context), self.ports)
        async for event in prepared.events():
            yield event_message(event)
