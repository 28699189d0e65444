"""Writing an answer from retrieved passages: extractive (default) or an OpenAI-compatible model.

Every provider streams its answer as text deltas (``stream``) and rewrites a follow-up question
into a standalone retrieval query (``rewrite``); ``answer`` is the whole answer at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from ragstream_chat.rewrite import Turn, rewrite_follow_up, terms
from ragstream_core.errors import DependencyUnavailable
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit
from ragstream_core.redaction import redact, url_password

__all__ = ["Answer", "Answerer", "ExtractiveAnswerer", "OpenAICompatibleAnswerer", "Turn"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MARKER = re.compile(r"\[(\d+)\]")
_SYSTEM = (
    "Answer only from the numbered passages. Cite them as [n] after each claim. "
    "If they do not contain the answer, say you don't know."
)
_REWRITE = (
    "Rewrite the user's last question as one standalone search query, resolving pronouns and "
    "references from the conversation. Reply with the query only."
)


@dataclass(frozen=True)
class Answer:
    text: str
    mode: str
    cited: list[int] = field(default_factory=list)  # citation numbers used in the text


class Answerer(Protocol):
    """A generation provider. ``stream`` yields the answer's text in order; it raises
    ``DependencyUnavailable`` when the provider fails, possibly after some text."""

    mode: str

    def stream(self, question: str, passages: list[SearchHit], *, history: Sequence[Turn] = ()) -> AsyncIterator[str]:
        """The answer's text, delta by delta, citing passages as ``[n]`` (1-based)."""
        ...

    async def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        """The retrieval query of ``question`` asked after ``history`` (the question itself when alone)."""
        ...

    async def answer(self, question: str, passages: list[SearchHit]) -> Answer:
        """The whole answer of ``stream`` and the citation numbers it uses."""
        ...


def cited_numbers(text: str, passages: int) -> list[int]:
    """The distinct citation numbers ``[n]`` in ``text`` that name one of ``passages``, ascending."""
    return sorted({int(n) for n in _MARKER.findall(text) if 0 < int(n) <= passages})


class ExtractiveAnswerer:
    """Quotes, from each of the best passages, the sentence sharing the most terms with the question."""

    mode = "extractive"

    def __init__(self, *, max_sentences: int = 3) -> None:
        self.max_sentences = max_sentences

    def _quotes(self, question: str, passages: list[SearchHit]) -> list[str]:
        wanted = terms(question)
        quotes: list[str] = []
        quoted: set[str] = set()
        for number, passage in enumerate(passages[: self.max_sentences], start=1):
            sentences = [s.strip() for s in _SENTENCE.split(passage.text) if s.strip()]
            if not sentences:
                continue
            best = max(sentences, key=lambda s: (len(wanted & terms(s)), -abs(len(s) - 160)))
            if best not in quoted:  # the same sentence from two passages is quoted once
                quoted.add(best)
                quotes.append(f"{best} [{number}]")
        return quotes

    async def stream(
        self, question: str, passages: list[SearchHit], *, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str]:
        for index, quote in enumerate(self._quotes(question, passages)):
            yield quote if index == 0 else f" {quote}"

    async def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        previous = next((t.query or t.content for t in reversed(history) if t.role == "user"), "")
        return rewrite_follow_up(question, previous)

    async def answer(self, question: str, passages: list[SearchHit]) -> Answer:
        text = " ".join(self._quotes(question, passages))
        return Answer(text=text, mode=self.mode, cited=cited_numbers(text, len(passages)))


class OpenAICompatibleAnswerer:
    """Any ``/chat/completions`` endpoint (vLLM, Ollama, llama.cpp server, OpenAI)."""

    mode = "openai"

    def __init__(
        self, *, base_url: str, api_key: str, model: str, timeout_s: float, client: httpx.AsyncClient | None = None
    ) -> None:
        """``client``: shared with other answerers (a collection's own endpoint); its owner closes it.
        Without one, the answerer makes its own (``client``)."""
        self.model = model
        #: quoted provider answers and exceptions may carry these; errors never show them
        self._secrets = (api_key, url_password(base_url))
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    @staticmethod
    def messages(question: str, passages: list[SearchHit], history: Sequence[Turn] = ()) -> list[dict[str, str]]:
        """The prompt: instructions, the conversation so far, then the numbered passages and the question."""
        context = "\n\n".join(f"[{n}] {p.text}" for n, p in enumerate(passages, start=1))
        earlier = [{"role": t.role, "content": t.content} for t in history]
        return [
            {"role": "system", "content": _SYSTEM},
            *earlier,
            {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {question}"},
        ]

    def _failure(self, message: str) -> DependencyUnavailable:
        """The provider failed: the error says how, without any configured secret."""
        return DependencyUnavailable(redact(message, self._secrets))

    async def _complete(self, messages: list[dict[str, str]]) -> str:
        try:
            response = await self.client.post(
                self.url, json={"model": self.model, "messages": messages}, headers=self.headers
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise self._failure(f"the generation endpoint failed: {exc}") from exc
        try:
            return str(response.json()["choices"][0]["message"]["content"] or "")
        except (ValueError, LookupError, TypeError) as exc:  # an HTML page, an error object, no choices
            raise self._failure(
                f"the generation endpoint {response.request.url} answered without a chat completion: {exc!r}"
            ) from exc

    async def answer(self, question: str, passages: list[SearchHit]) -> Answer:
        text = (await self._complete(self.messages(question, passages))).strip()
        return Answer(text=text, mode=self.mode, cited=cited_numbers(text, len(passages)))

    async def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        if not history:
            return question
        transcript = "\n".join(f"{t.role}: {t.content}" for t in history)
        messages = [
            {"role": "system", "content": _REWRITE},
            {"role": "user", "content": f"Conversation:\n{transcript}\n\nLast question: {question}"},
        ]
        rewritten = (await self._complete(messages)).strip().strip('"')
        return rewritten or question

    async def stream(
        self, question: str, passages: list[SearchHit], *, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str]:
        body = {"model": self.model, "messages": self.messages(question, passages, history), "stream": True}
        try:
            async with self.client.stream("POST", self.url, json=body, headers=self.headers) as response:
                if response.is_error:
                    await response.aread()
                    raise self._failure(
                        f"the generation endpoint failed: {response.status_code} {response.reason_phrase}: "
                        f"{response.text[:300]}"
                    )
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    raise self._failure(
                        f"the generation endpoint {response.request.url} answered without a chat completion stream "
                        f"(content-type {response.headers.get('content-type')!r})"
                    )
                async for line in response.aiter_lines():
                    try:
                        delta = _delta_of(line)
                    except DependencyUnavailable as exc:
                        raise self._failure(str(exc)) from exc
                    if delta is None:
                        return
                    if delta:
                        yield delta
        except httpx.HTTPError as exc:
            raise self._failure(f"the generation endpoint failed: {exc}") from exc


def _delta_of(line: str) -> str | None:
    """The content of one SSE line of a ``chat.completion.chunk`` stream; ``None`` at ``[DONE]``."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        chunk: Any = json.loads(data)
        if "error" in chunk:
            raise DependencyUnavailable(f"the generation endpoint failed mid-stream: {chunk['error']}")
        return "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices", []))
    except (ValueError, TypeError, AttributeError) as exc:
        raise DependencyUnavailable(f"the generation endpoint sent a malformed chunk {data[:200]!r}") from exc
