"""Adjacent chunks found together become one passage: a reader gets the text whole, once."""

from __future__ import annotations

from dataclasses import dataclass

from ragstream_embedder.index import Hit


@dataclass(frozen=True)
class Passage:
    """Consecutive chunks of one document version, in document order."""

    chunks: list[Hit]
    rank: int  # position of its best chunk among the hits

    @property
    def first(self) -> Hit:
        return self.chunks[0]

    @property
    def text(self) -> str:
        return "\n".join(str(c.payload["text"]) for c in self.chunks)

    @property
    def chunk_indexes(self) -> list[int]:
        return [int(c.payload["chunk_index"]) for c in self.chunks]

    @property
    def score(self) -> float:
        return max(c.score for c in self.chunks)

    @property
    def rank_score(self) -> float:
        return max(c.rank_score for c in self.chunks)


def merge_adjacent(hits: list[Hit]) -> list[Passage]:
    """Group hits (best first) into passages of consecutive chunks of one document version.

    Ordered by each passage's best hit; a hit that has no neighbour among the hits is a
    passage of one chunk. Never merges across documents or versions.
    """
    rank: dict[tuple[str, int, int], int] = {}
    for position, hit in enumerate(hits):
        key = (str(hit.payload["document_id"]), int(hit.payload["version"]), int(hit.payload["chunk_index"]))
        rank.setdefault(key, position)
    by_key = {key: hits[position] for key, position in rank.items()}
    passages: list[Passage] = []
    run: list[tuple[str, int, int]] = []
    for key in sorted(rank):
        if run and (key[0], key[1], key[2] - 1) != run[-1]:
            passages.append(Passage([by_key[k] for k in run], min(rank[k] for k in run)))
            run = []
        run.append(key)
    if run:
        passages.append(Passage([by_key[k] for k in run], min(rank[k] for k in run)))
    return sorted(passages, key=lambda p: p.rank)
