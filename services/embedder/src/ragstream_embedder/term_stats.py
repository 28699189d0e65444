"""Document frequencies of the keyword terms per collection: the inputs of the BM25 IDF.

The edge engine keeps these itself because counting them per query over a collection's chunks
(Qdrant's per-query IDF corpus) costs tens of milliseconds at 100,000 chunks. With them a sparse
query weighs each term by its IDF, which scores exactly as Qdrant's IDF modifier does: the
score of a chunk is the sum over shared terms of ``idf(term) * weight_in_chunk``, with
``idf = ln(1 + (N - n + 0.5) / (n + 0.5))`` (N chunks in the corpus, n of them with the term).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

Scope = tuple[str, str]  # (tenant_id, collection_id)


def idf(chunks: int, with_term: int) -> float:
    """Qdrant's IDF (the BM25 one, kept positive)."""
    return math.log(1 + (chunks - with_term + 0.5) / (with_term + 0.5))


class DocumentFrequencies:
    """Per collection and over all: how many active chunks there are, and how many hold each term.

    Not thread-safe: the index updates and reads it under its own lock.
    """

    def __init__(self) -> None:
        self._chunks: Counter[Scope] = Counter()
        self._terms: dict[Scope, Counter[int]] = {}
        self._all_chunks = 0
        self._all_terms: Counter[int] = Counter()

    def add(self, scope: Scope, terms: Iterable[int], *, sign: int = 1) -> None:
        """Count one chunk (``sign=-1``: uncount it) with its distinct ``terms``."""
        counts = self._terms.setdefault(scope, Counter())
        self._chunks[scope] += sign
        self._all_chunks += sign
        for term in terms:
            for counter in (counts, self._all_terms):
                counter[term] += sign
                if counter[term] <= 0:
                    del counter[term]
        if self._chunks[scope] <= 0:
            del self._chunks[scope]
            self._terms.pop(scope, None)

    def chunks(self, scope: Scope | None = None) -> int:
        return self._all_chunks if scope is None else self._chunks.get(scope, 0)

    def weights(self, scope: Scope | None, terms: list[int]) -> list[float]:
        """The IDF of each term in the collection ``scope`` (None: over every collection)."""
        counts = self._all_terms if scope is None else self._terms.get(scope, Counter())
        chunks = self.chunks(scope)
        return [idf(chunks, counts.get(term, 0)) for term in terms]
