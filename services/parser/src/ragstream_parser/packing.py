"""Packing small units (table rows, subtitle cues) into chunks the embedding model reads whole.

Guarantee: ``pack`` keeps the units' order and never puts more than ``budget`` embedded tokens
in one group, provided each unit fits on its own; ``split_to_fit`` makes any text fit, cutting
only between words (a single word longer than the budget is cut between characters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

#: counts the model's WordPiece tokens of a text (no [CLS]/[SEP])
TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Unit:
    """One row or cue: ``text`` is shown to users, ``embed`` is what the model reads of it."""

    text: str
    embed: str
    tokens: int


def pack(units: Iterable[Unit], *, budget: int) -> Iterator[list[Unit]]:
    """Consecutive units grouped greedily, each group's ``tokens`` summing to at most ``budget``.

    WordPiece splits on whitespace first, so texts joined by newlines count as the sum of their
    parts. A unit larger than the budget gets a group of its own (split it first to avoid that).
    """
    group: list[Unit] = []
    used = 0
    for unit in units:
        if group and used + unit.tokens > budget:
            yield group
            group, used = [], 0
        group.append(unit)
        used += unit.tokens
    if group:
        yield group


def split_to_fit(text: str, *, budget: int, count_tokens: TokenCounter) -> list[str]:
    """``text`` cut between words into pieces of at most ``budget`` tokens each (at least one piece)."""
    if budget < 1:
        raise ValueError(f"budget must be positive, got {budget}")
    if count_tokens(text) <= budget:
        return [text]
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for word in text.split():
        tokens = count_tokens(word)
        if tokens > budget:
            if current:
                pieces.append(" ".join(current))
                current, used = [], 0
            pieces.extend(_split_word(word, budget=budget, count_tokens=count_tokens))
            continue
        if current and used + tokens > budget:
            pieces.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += tokens
    if current:
        pieces.append(" ".join(current))
    return pieces or [text]


def _split_word(word: str, *, budget: int, count_tokens: TokenCounter) -> list[str]:
    """A word longer than the budget (a URL, a base64 blob), cut between characters."""
    pieces: list[str] = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start + 1 and count_tokens(word[start:end]) > budget:
            end = start + max(1, (end - start) // 2)
        pieces.append(word[start:end])
        start = end
    return pieces
