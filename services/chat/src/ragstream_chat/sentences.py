"""Sentences of a streamed answer, each linked to the citation numbers written in it.

A sentence ends at ``.``, ``!`` or ``?`` followed by whitespace, or at a line break; citation
markers right after the end (``... comes. [1] Next``) belong to the sentence they follow, so a
sentence is only complete once the next non-marker text has started (or the answer ended).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sentence", "SentenceLinker"]

_BOUNDARY = re.compile(r"(?:[.!?](?:[ \t]*\[\d+\])*\s+|\n\s*)(?=[^\s\[])")
_MARKER = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str
    citations: list[int]

    def data(self) -> dict[str, object]:
        return {"index": self.index, "text": self.text, "citations": self.citations}


class SentenceLinker:
    """Feed it deltas; it returns each sentence once complete. Numbers outside 1..``passages`` are dropped."""

    def __init__(self, passages: int) -> None:
        self.passages = passages
        self.buffer = ""
        self.count = 0

    def _sentence(self, text: str) -> Sentence | None:
        text = text.strip()
        if not text:
            return None
        numbers: list[int] = []
        for found in _MARKER.findall(text):
            number = int(found)
            if 0 < number <= self.passages and number not in numbers:
                numbers.append(number)
        sentence = Sentence(self.count, text, numbers)
        self.count += 1
        return sentence

    def feed(self, delta: str) -> list[Sentence]:
        self.buffer += delta
        done: list[Sentence] = []
        while match := _BOUNDARY.search(self.buffer):
            sentence = self._sentence(self.buffer[: match.end()])
            self.buffer = self.buffer[match.end() :]
            if sentence:
                done.append(sentence)
        return done

    def finish(self) -> list[Sentence]:
        """The last sentence, whatever its ending."""
        sentence = self._sentence(self.buffer)
        self.buffer = ""
        return [sentence] if sentence else []
