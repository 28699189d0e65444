"""Answering one question over one collection, whole or as a stream of events.

``prepare`` does everything that can refuse a question (validation, the conversation, the
query rewrite, retrieval) before anything is streamed, so those errors keep their HTTP/gRPC
status; ``Prepared.events`` then writes the answer: ``Started``, one ``CitationEvent`` per
passage, ``Delta`` text, each ``SentenceEvent`` once complete, and ``Done`` with the whole
answer, stored in the conversation first (a question and its answer are stored together, only
once the answer is complete).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import psycopg
import structlog
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from prometheus_client import Histogram

from ragstream_chat.answers import Answerer
from ragstream_chat.collection_provider import EndpointUpdate
from ragstream_chat.collection_settings import CollectionChat
from ragstream_chat.conversations import new_conversation_id, new_message_id
from ragstream_chat.ports import ChatPorts
from ragstream_chat.relevance import relevant_passages
from ragstream_chat.retrieval import Filters
from ragstream_chat.rewrite import Turn
from ragstream_chat.sentences import Sentence, SentenceLinker
from ragstream_core.errors import InvalidInput
from ragstream_core.proto.ragstream.v1.events_pb2 import IndexTagged, IndexUpdated
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit
from ragstream_core.runtime import invalid_data

__all__ = [
    "ChatEvent",
    "CitationEvent",
    "Delta",
    "Done",
    "Prepared",
    "Question",
    "SentenceEvent",
    "Started",
    "answer_question",
    "chat_settings",
    "citation",
    "configure_collection",
    "on_index_updated",
    "prepare",
]

log = structlog.get_logger(__name__)
FIRST_DELTA = Histogram("ragstream_chat_first_delta_seconds", "From the question to the answer's first text.", ["mode"])
ANSWER = Histogram("ragstream_chat_answer_seconds", "From the question to the whole answer.", ["mode"])
tracer = trace.get_tracer("ragstream.chat")


@dataclass(frozen=True)
class Question:
    """One question. ``history`` given means a stateless caller (the OpenAI endpoint) owns the
    conversation: nothing is stored. Otherwise the answer joins ``conversation_id`` (a new one when empty)."""

    tenant_id: str
    collection_id: str
    text: str
    top_k: int | None = None
    conversation_id: str = ""
    history: Sequence[Turn] | None = None
    #: retrieval filters (tags, date range); none by default
    filters: Filters = field(default_factory=Filters)


@dataclass(frozen=True)
class Started:
    name: ClassVar[str] = "started"
    conversation_id: str
    message_id: str
    mode: str
    query: str

    def data(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "message_id": self.message_id, "mode": self.mode,
                "query": self.query}  # fmt: skip


@dataclass(frozen=True)
class CitationEvent:
    name: ClassVar[str] = "citation"
    citation: dict[str, Any]

    def data(self) -> dict[str, Any]:
        return self.citation


@dataclass(frozen=True)
class Delta:
    name: ClassVar[str] = "delta"
    text: str

    def data(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True)
class SentenceEvent:
    name: ClassVar[str] = "sentence"
    sentence: Sentence

    def data(self) -> dict[str, Any]:
        return self.sentence.data()


@dataclass(frozen=True)
class Done:
    name: ClassVar[str] = "done"
    result: dict[str, Any]

    def data(self) -> dict[str, Any]:
        return self.result


ChatEvent = Started | CitationEvent | Delta | SentenceEvent | Done


def citation(number: int, hit: SearchHit) -> dict[str, Any]:
    return {
        "number": number,
        "document_id": hit.document_id,
        "version": hit.version,
        "file_name": hit.file_name,
        "heading_path": list(hit.heading_path),
        "page": hit.page or None,
        "chunk_index": hit.chunk_index,
        "text": hit.text,
        "score": round(float(hit.score), 4),
    }


@dataclass
class Prepared:
    """A question ready to be answered: its retrieval done, its answerer chosen."""

    question: Question
    ports: ChatPorts
    answerer: Answerer
    query: str
    passages: list[SearchHit]
    history: Sequence[Turn]
    conversation_id: str
    started_at: float
    message_id: str = field(default_factory=new_message_id)

    async def events(self) -> AsyncIterator[ChatEvent]:
        """The answer as events; ``Done`` comes last, after the exchange is stored."""
        q = self.question
        yield Started(self.conversation_id, self.message_id, self.answerer.mode, self.query)
        citations = [citation(n, hit) for n, hit in enumerate(self.passages, start=1)]
        for item in citations:
            yield CitationEvent(item)
        linker = SentenceLinker(len(self.passages))
        sentences: list[Sentence] = []
        parts: list[str] = []
        if self.passages:
            deltas = self.answerer.stream(q.text.strip(), self.passages, history=self.history)
        else:
            deltas = _said(f"I don't know: nothing in collection {q.collection_id!r} matches the question.")
        # started, not entered: a span entered in an async generator would be left in another context
        generation = tracer.start_span(
            "chat generate",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": self.answerer.mode,
                "ragstream.passages": len(self.passages),
            },
        )
        try:
            async for delta in deltas:
                if not parts:
                    first = time.perf_counter() - self.started_at
                    FIRST_DELTA.labels(self.answerer.mode).observe(first)
                    generation.add_event("first text", {"ragstream.seconds_since_question": first})
                parts.append(delta)
                yield Delta(delta)
                for sentence in linker.feed(delta):
                    sentences.append(sentence)
                    yield SentenceEvent(sentence)
        except Exception as exc:  # recorded on the span, then the caller's to handle
            generation.record_exception(exc)
            generation.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            generation.end()
        for sentence in linker.finish():
            sentences.append(sentence)
            yield SentenceEvent(sentence)
        result = {
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "answer": "".join(parts).strip(),
            "mode": self.answerer.mode,
            "query": self.query,
            "citations": citations,
            "sentences": [s.data() for s in sentences],
        }
        if q.history is None:
            try:
                await self.ports.conversations.record(
                    q.tenant_id, q.collection_id, self.conversation_id, question=q.text.strip(), query=self.query,
                    answer=result,
                )  # fmt: skip
            except (
                psycopg.DataError
            ) as exc:  # mid-stream, past the app's handler: every stream gets it as a domain error
                raise invalid_data(exc) from exc
        ANSWER.labels(self.answerer.mode).observe(time.perf_counter() - self.started_at)
        log.info(
            "chat.answered",
            conversation_id=self.conversation_id,
            stored=q.history is None,
            passages=len(self.passages),
            sentences=len(sentences),
            mode=self.answerer.mode,
        )
        yield Done(result)


async def _said(text: str) -> AsyncIterator[str]:
    yield text


async def prepare(question: Question, ports: ChatPorts) -> Prepared:
    """Validate, load the history, rewrite the query and retrieve; raises before anything is answered:
    ``InvalidInput`` (blank question, another collection's conversation), ``NotFound`` (no such
    conversation), ``SecretUnavailable`` (no configured key opens the collection's API key),
    ``DependencyUnavailable`` (search or rewrite failed)."""
    started_at = time.perf_counter()
    text = question.text.strip()
    if not text:
        raise InvalidInput("the question is empty; send {'question': '...'}")
    own = await ports.collections.settings(question.tenant_id, question.collection_id)
    provider = own.provider or ports.provider
    answerer: Answerer | None
    if provider == "openai" and own.endpoint is not None:  # the collection's own endpoint and key
        answerer = ports.providers.answerer(question.tenant_id, question.collection_id, own.endpoint)
    else:
        answerer = ports.answerers.get(provider)
    if answerer is None:
        raise InvalidInput(
            f"collection {question.collection_id!r} answers with provider {provider!r}, which is not configured; "
            f"configured: {', '.join(sorted(ports.answerers))}"
        )
    conversation_id = question.conversation_id
    if question.history is not None:
        history: Sequence[Turn] = question.history
    elif conversation_id:
        await ports.conversations.require(question.tenant_id, question.collection_id, conversation_id)
        history = await ports.conversations.history(question.tenant_id, conversation_id, turns=ports.history_turns)
    else:
        conversation_id, history = new_conversation_id(), []
    query = text
    if history:
        with tracer.start_as_current_span("chat rewrite", attributes={"gen_ai.provider.name": answerer.mode}):
            query = (await answerer.rewrite(text, history)).strip() or text
    with tracer.start_as_current_span("chat retrieve", attributes={"ragstream.collection_id": question.collection_id}):
        hits = await ports.retriever.search(
            question.tenant_id,
            question.collection_id,
            query,
            top_k=question.top_k or own.top_k or ports.top_k,
            filters=question.filters,
        )
    min_score = ports.min_score if own.min_score is None else own.min_score
    relevant = relevant_passages(hits, query, min_score=min_score, min_keyword_coverage=ports.min_keyword_coverage)
    return Prepared(question, ports, answerer, query, relevant, history, conversation_id, started_at)


async def answer_question(question: Question, ports: ChatPorts) -> dict[str, Any]:
    """The whole answer with its citations and linked sentences; "I don't know" when nothing relevant
    is indexed. Raises as ``prepare`` does, and ``DependencyUnavailable`` when generation fails."""
    prepared = await prepare(question, ports)
    async for event in prepared.events():
        if isinstance(event, Done):
            return event.result
    raise AssertionError("the answer ended without Done")  # events() always ends with Done


def _providers(own: CollectionChat, ports: ChatPorts) -> list[str]:
    return sorted(set(ports.answerers) | ({"openai"} if own.endpoint else set()))


async def chat_settings(tenant_id: str, collection_id: str, ports: ChatPorts) -> dict[str, Any]:
    """How the collection is answered: each value, and whether it is the collection's or the default.
    Of an API key only whether one is set and at most its last 4 characters are shown."""
    own = await ports.collections.settings(tenant_id, collection_id)
    source: dict[str, Literal["collection", "default"]] = {
        name: "default" if getattr(own, name) is None else "collection"
        for name in ("provider", "min_score", "top_k", "endpoint")
    }
    endpoint = own.endpoint
    return {
        "collection_id": collection_id,
        "provider": own.provider or ports.provider,
        "min_score": ports.min_score if own.min_score is None else own.min_score,
        "top_k": own.top_k or ports.top_k,
        "openai_base_url": endpoint.base_url if endpoint else None,
        "openai_model": endpoint.model if endpoint else None,
        "api_key_set": bool(endpoint and endpoint.api_key_sealed),
        "api_key_last4": endpoint.api_key_hint if endpoint else None,
        "source": source,
        "providers": _providers(own, ports),
    }


async def configure_collection(
    tenant_id: str,
    collection_id: str,
    chat: CollectionChat,
    ports: ChatPorts,
    *,
    endpoint: EndpointUpdate | None = None,
) -> dict[str, Any]:
    """Replace the collection's settings (idempotent); ``endpoint`` (default: none) is its own
    OpenAI-compatible endpoint, its key sealed before it is stored. Raises ``InvalidInput`` for a
    provider not configured or a bad endpoint, ``SecretUnavailable`` for a key with no secret key
    configured."""
    stored = await ports.collections.settings(tenant_id, collection_id)
    own_endpoint = ports.providers.endpoint(tenant_id, collection_id, endpoint or EndpointUpdate(), stored.endpoint)
    configured = _providers(CollectionChat(endpoint=own_endpoint), ports)
    if chat.provider is not None and chat.provider not in configured:
        raise InvalidInput(
            f"provider {chat.provider!r} is not configured; configured: {', '.join(configured)}"
            + ("" if "openai" in configured else " (openai too, with openai_base_url and openai_model)")
        )
    await ports.collections.put_settings(tenant_id, collection_id, replace(chat, endpoint=own_endpoint))
    return await chat_settings(tenant_id, collection_id, ports)


async def on_index_updated(event: IndexUpdated | IndexTagged, ports: ChatPorts) -> None:
    """New content in a collection: forget what was retrieved from it before, and know the collection."""
    dropped = ports.retriever.invalidate(event.meta.tenant_id, event.meta.collection_id)
    await ports.collections.note_indexed(event.meta.tenant_id, event.meta.collection_id)
    log.info("chat.collection_changed", collection_id=event.meta.collection_id, dropped_cache_entries=dropped)
