"""Writing an answer from retrieved passages: extractive (default) or an OpenAI-compatible model."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from ragstream_core.errors import DependencyUnavailable
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit

_WORD = re.compile(r"[\w']+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP_WORDS = (
    "a an and are as at be by did do does for from has have how i in is it its of on or that the this to "
    "was what when where which who why with you your"
)
_STOP = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True)
class Answer:
    text: str
    mode: str
    cited: list[int] = field(default_factory=list)  # citation numbers used in the text


class Answerer(Protocol):
    mode: str

    async def answer(self, question: str, passages: list[SearchHit]) -> Answer: ...


def _terms(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP}


class ExtractiveAnswerer:
    """Quotes, from each of the best passages, the sentence sharing the most terms with the question."""

    mode = "extractive"

    def __init__(self, *, max_sentences: int = 3) -> None:
        self.max_sentences = max_sentences

    async def answer(self, question: str, passages: list[SearchHit]) -> Answer:
        wanted = _terms(question)
        parts: list[str] = []
        cited: list[int] = []
        quoted: set[str] = set()
        for number, passage in enumerate(passages[: self.max_sentences], start=1):
            sentences = [s.strip() for s in _SENTENCE.split(passage.text) if s.strip()]
            if not sentences:
                continue
            best = max(sentences, key=lambda s: (len(wanted & _terms(s)), -abs(len(s) - 160)))
            if best not in quoted:  # the same sentence from two passages is quoted once
                quoted.add(best)
                parts.append(f"{best} [{number}]")
                cited.append(number)
        return Answer(text=" ".join(parts), mode=self.mode, cited=cited)


class OpenAICompatibleAnswerer:
    """Any ``/chat/completions`` endpoint (vLLM, Ollama, llama.cpp server, OpenAI)."""

    mode = "openai"

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout_s: float) -> None:
        self.model = model
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=timeout_s,
        )

    async def answer(self, question: str, passages: list[SearchHit]) -> Answer:
        context = "\n\n".join(f"[{n}] {p.text}" for n, p in enumerate(passages, start=1))
        messages = [
            {
                "role": "system",
                "content": "Answer only from the numbered passages. Cite them as [n] after each claim. "
                "If they do not contain the answer, say you don't know.",
            },
            {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {question}"},
        ]
        try:
            response = await self.client.post("/chat/completions", json={"model": self.model, "messages": messages})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(f"the generation endpoint failed: {exc}") from exc
        try:
            text = response.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, LookupError, TypeError) as exc:  # an HTML page, an error object, no choices
            raise DependencyUnavailable(
                f"the generation endpoint {response.request.url} answered without a chat completion: {exc!r}"
            ) from exc
        cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text) if 0 < int(n) <= len(passages)})
        return Answer(text=text.strip(), mode=self.mode, cited=cited)
