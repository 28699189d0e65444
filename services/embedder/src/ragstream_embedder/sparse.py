"""BM25-style sparse keyword vectors, computed offline: no model, no vocabulary, no download.

A text becomes words (Unicode letters and digits, lower-cased, NFKC-normalised), minus a short
list of English stop words, each reduced by Harman's S-stemmer (``ducks`` and ``duck`` are one
term). A term's id is a stable 31-bit hash of the word, so the vocabulary is open and the same
word has the same id in every process and release. A document's weight for a term is the BM25
term-frequency part, ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_length))``; the IDF
part is left to the index, which knows the corpus (Qdrant's ``Modifier.IDF`` through
qdrant-client; the edge engine's own counts, ``term_stats``, put into the query's weights). A query
weighs each distinct term 1, so its score is the BM25 sum over the terms it shares with a chunk.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+")

# the most frequent English function words: they match everything and rank nothing
_STOP_WORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not of off on once only or other our ours ourselves out over own same she should so
some such than that the their theirs them themselves then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def stem(word: str) -> str:
    """Harman's S-stemmer: plural to singular, nothing else (conservative by design)."""
    if len(word) > 3 and word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if len(word) > 2 and word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order, repeats kept."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return [stem(w) for w in words if w not in STOP_WORDS]


def term_id(term: str) -> int:
    """A stable id in [0, 2**31): the same term gets the same id everywhere."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


class SparseEncoder:
    """Texts to sparse vectors. Pure and deterministic: safe from any thread.

    ``avg_length`` is the expected chunk length in terms (chunks are cut at 256 WordPiece
    tokens, about 120 index terms once stop words are gone); fixing it rather than measuring
    the corpus keeps a chunk's vector independent of what else is indexed.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_length: float = 120.0) -> None:
        self.k1 = k1
        self.b = b
        self.avg_length = avg_length

    def document(self, text: str) -> SparseVector:
        """The vector of one chunk: BM25-saturated term frequencies (empty for a text of no terms)."""
        counts = Counter(term_id(t) for t in terms(text))
        length = sum(counts.values())
        norm = self.k1 * (1 - self.b + self.b * length / self.avg_length)
        ids = sorted(counts)
        return SparseVector(ids, [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in ids])

    def query(self, text: str) -> SparseVector:
        """The vector of a query: each distinct term weighs 1 (the index multiplies in the IDF)."""
        ids = sorted({term_id(t) for t in terms(text)})
        return SparseVector(ids, [1.0] * len(ids))
