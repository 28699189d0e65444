"""Which retrieved passages are relevant enough to answer from: the gate before "I don't know".

Hybrid retrieval ranks by fusing two lists (reciprocal rank fusion), and a fused rank says
nothing about absolute relevance: every collection has a best passage, even for an unrelated
question. So a passage is kept on either of two independent pieces of evidence:

- **semantic**: its dense cosine similarity (``SearchHit.score``) is at least ``min_score``;
- **lexical**: it contains at least ``keyword_coverage`` of the query's key terms (lower-cased
  words that are not stop words, a plural ``s`` ignored).

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


def _stems(text: str) -> set[str]:
    return {t[:-1] if len(t) > 3 and t.endswith("s") and not t.endswith("ss") else t for t in terms(text)}


def keyword_coverage(query: str, text: str) -> float:
    """The share of ``query``'s key terms that occur in ``text`` (0 when the query has none)."""
    wanted = _stems(query)
    if not wanted:
        return 0.0
    return len(wanted & _stems(text)) / len(wanted)


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
