"""What the chat handlers need from the outside world."""

from __future__ import annotations

import builtins
from typing import Any, Protocol

from ragstream_chat.answers import Answerer
from ragstream_chat.collection_provider import CollectionProviders
from ragstream_chat.collection_settings import CollectionChat
from ragstream_chat.retrieval import Filters
from ragstream_chat.rewrite import Turn
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit

__all__ = ["ChatPorts", "Collections", "Conversations", "Search"]


class Search(Protocol):
    async def search(
        self, tenant_id: str, collection_id: str, query: str, *, top_k: int, filters: Filters | None = None
    ) -> list[SearchHit]: ...

    def invalidate(self, tenant_id: str, collection_id: str) -> int: ...


class Conversations(Protocol):
    async def create(self, tenant_id: str, collection_id: str, *, title: str = "") -> dict[str, Any]: ...

    async def require(self, tenant_id: str, collection_id: str, conversation_id: str) -> None: ...

    async def get(self, tenant_id: str, conversation_id: str) -> dict[str, Any]: ...

    async def list(
        self, tenant_id: str, *, collection_id: str | None = None, limit: int = 50
    ) -> builtins.list[dict[str, Any]]: ...

    async def delete(self, tenant_id: str, conversation_id: str) -> None: ...

    async def history(self, tenant_id: str, conversation_id: str, *, turns: int) -> builtins.list[Turn]: ...

    async def record(
        self,
        tenant_id: str,
        collection_id: str,
        conversation_id: str,
        *,
        question: str,
        query: str,
        answer: dict[str, Any],
    ) -> None: ...


class Collections(Protocol):
    async def settings(self, tenant_id: str, collection_id: str) -> CollectionChat: ...

    async def put_settings(self, tenant_id: str, collection_id: str, chat: CollectionChat) -> None: ...

    async def note_indexed(self, tenant_id: str, collection_id: str) -> None: ...

    async def known(self, tenant_id: str) -> list[dict[str, Any]]: ...


class ChatPorts(Protocol):
    """``provider``, ``min_score`` and ``top_k`` are the defaults of collections without their own;
    ``min_keyword_coverage`` keeps a passage scoring under ``min_score`` that has that share of the
    query's key terms (see ``relevance``); ``providers`` builds the answerers of collections that
    have an OpenAI-compatible endpoint of their own, and seals and opens their keys."""

    retriever: Search
    answerers: dict[str, Answerer]
    conversations: Conversations
    collections: Collections
    provider: str
    min_score: float
    top_k: int
    history_turns: int
    min_keyword_coverage: float
    providers: CollectionProviders
