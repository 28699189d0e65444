"""Tying a generated answer to its passages: passages cut to what the question asks (``excerpt``),
and each sentence of the answer cited with the passage that supports it (``Citer``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragstream_chat.relevance import keyword_coverage
from ragstream_chat.rewrite import terms

__all__ = ["Citer", "excerpt"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MARKER = re.compile(r"\[(\d+)\]")
# "Dr. Watson", "Thomas J. Watson", "e.g. this": a full stop that does not end the sentence
_ABBREVIATION = re.compile(r"(?:^|[\s(])(?:[A-Z]|Dr|Mr|Mrs|Ms|Prof|St|Jr|Sr|Inc|Co|Corp|Ltd|vs|etc|e\.g|i\.e|No)\.$")


def excerpt(text: str, question: str, *, limit: int) -> str:
    """``text`` when it fits in ``limit`` characters; otherwise the sentences (or lines) sharing the most
    terms with ``question`` that fit, in their original order. Deterministic."""
    text = text.strip()
    if len(text) <= limit:
        return text
    parts = [p.strip() for p in _SENTENCE.split(text) if p.strip()]
    wanted = terms(question)
    ranked = sorted(range(len(parts)), key=lambda i: (-len(wanted & terms(parts[i])), i))
    chosen: set[int] = set()
    used = 0
    for index in ranked:
        if used + len(parts[index]) + 1 <= limit:
            chosen.add(index)
            used += len(parts[index]) + 1
    if not chosen:  # one sentence longer than the limit: its beginning
        return parts[ranked[0]][:limit]
    return " ".join(parts[i] for i in sorted(chosen))


class Citer:
    """Cites each sentence of a streamed answer: after a sentence that has no ``[n]`` of its own, the
    number of the passage holding the largest share (at least ``min_support``) of its key terms.

    A sentence no passage supports (the model's own knowledge, "I don't know") stays uncited, so an
    ungrounded claim is visible as such. Text passes through as it comes; only markers are added.
    """

    def __init__(self, passages: Sequence[str], *, min_support: float = 0.5) -> None:
        self.passages = list(passages)
        self.min_support = min_support
        self._sentence = ""

    def feed(self, delta: str) -> str:
        """``delta``, with a marker inserted where a sentence ended (at whitespace after ``.``, ``!`` or ``?``)."""
        out: list[str] = []
        for char in delta:
            if char.isspace() and self._sentence.endswith((".", "!", "?")) and not _ABBREVIATION.search(self._sentence):
                out.append(self._marker())
                self._sentence = ""
            out.append(char)
            if self._sentence or not char.isspace():
                self._sentence += char
        return "".join(out)

    def finish(self) -> str:
        """The marker of the last sentence, if it needs one."""
        marker = self._marker() if self._sentence.strip() else ""
        self._sentence = ""
        return marker

    def _marker(self) -> str:
        sentence = self._sentence.strip()
        if _MARKER.search(sentence) or not self.passages:
            return ""
        support = [keyword_coverage(sentence, text) for text in self.passages]
        best = max(range(len(support)), key=lambda i: (support[i], -i))
        return f" [{best + 1}]" if support[best] >= self.min_support else ""
