"""Answering one question over one collection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ragstream_chat.answers import Answerer
from ragstream_chat.retrieval import Retriever
from ragstream_core.errors import InvalidInput
from ragstream_core.proto.ragstream.v1.events_pb2 import IndexUpdated
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit

log = structlog.get_logger(__name__)


class ChatPorts(Protocol):
    retriever: Retriever
    answerer: Answerer
    min_score: float
    top_k: int


@dataclass(frozen=True)
class Question:
    tenant_id: str
    collection_id: str
    text: str
    top_k: int | None = None


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


async def answer_question(question: Question, ports: ChatPorts) -> dict[str, Any]:
    """An answer with its citations; "I don't know" when nothing relevant is indexed."""
    text = question.text.strip()
    if not text:
        raise InvalidInput("the question is empty; send {'question': '...'}")
    hits = await ports.retriever.search(
        question.tenant_id, question.collection_id, text, top_k=question.top_k or ports.top_k
    )
    relevant = [h for h in hits if h.score >= ports.min_score]
    if not relevant:
        return {
            "answer": f"I don't know: nothing in collection {question.collection_id!r} matches the question.",
            "mode": ports.answerer.mode,
            "citations": [],
        }
    answer = await ports.answerer.answer(text, relevant)
    log.info("chat.answered", passages=len(relevant), cited=answer.cited, mode=answer.mode)
    return {
        "answer": answer.text,
        "mode": answer.mode,
        "citations": [citation(n, hit) for n, hit in enumerate(relevant, start=1)],
    }


async def on_index_updated(event: IndexUpdated, ports: ChatPorts) -> None:
    """New content in a collection: forget what was retrieved from it before."""
    dropped = ports.retriever.invalidate(event.meta.tenant_id, event.meta.collection_id)
    log.info("chat.collection_changed", collection_id=event.meta.collection_id, dropped_cache_entries=dropped)
