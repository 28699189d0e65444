"""Which retrieved passages are relevant enough to answer from: the gate before "I don't know".

Hybrid retrieval ranks by fusing two lists (reciprocal rank fusion), and a fused rank says
nothing about absolute relevance: every collection has a best passage, even for an unrelated
question. So a passage is kept on either of two independent pieces of evidence:

- **semantic**: its dense cosine similarity (``SearchHit.score``) is at least ``min_score``;
- **lexical**: it contains at least ``min_keyword_coverage`` (two thirds by default) of the
  query's key terms: lower-cased words that are not stop words, where a possessive is dropped
  and two words match when equal or when they share a prefix of all but two letters of the
  shorter, and at least four ("subscribe" / "subscription", "located" / "location",
  "berries" / "berry", but not "company" / "compute").

The lexical side rescues what the keyword index found and the embedding model scored low: a
CSV or table row ("Berries | Blueberry, Strawberry | 150") is far from the question's sentence in
the embedding space, yet holds every word the question asks about. An unrelated question rarely
has most of its key terms in one passage, so "I don't know" keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragstream_chat.rewrite import terms
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit

__all__ = ["keyword_coverage", "relevant_passages"]


def _words(text: str) -> set[str]:
    return {w.removesuffix("'s").removesuffix("'") for w in terms(text)} - {""}


def _same_word(a: str, b: str) -> bool:
    if a == b:
        return True
    shared = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return shared >= max(4, min(len(a), len(b)) - 2)


def keyword_coverage(query: str, text: str) -> float:
    """The share of ``query``'s key terms that occur in ``text`` (0 when the query has none)."""
    wanted = _words(query)
    if not wanted:
        return 0.0
    present = _words(text)
    found = sum(1 for w in wanted if w in present or any(_same_word(w, p) for p in present))
    return found / len(wanted)


def relevant_passages(
    hits: Sequence[SearchHit], query: str, *, min_score: float, min_keyword_coverage: float
) -> list[SearchHit]:
    """The hits passing the gate, in retrieval order. ``min_keyword_coverage`` 0 turns the lexical side off."""
    kept: list[SearchHit] = []
    for hit in hits:
        lexical = min_keyword_coverage > 0 and keyword_coverage(query, hit.text) >= min_keyword_coverage
        if hit.score >= min_score or lexical:
            kept.append(hit)
    return kept
