"""Retrieval through the embedder (NATS request/reply), with a cache that never serves stale content.

The cache keeps search results per collection and drops a collection's entries when an
``index.updated`` event for it arrives, so new, changed or deleted content is seen at once,
without restarts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import nats.errors
import structlog
from prometheus_client import Counter

from ragstream_core.bus import Bus
from ragstream_core.errors import DependencyUnavailable
from ragstream_core.events import SEARCH_SUBJECT, timestamp_of
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit, SearchMode, SearchRequest, SearchResponse
from ragstream_core.tags import check_range, clean_tags, parse_date

log = structlog.get_logger(__name__)
CACHE = Counter("ragstream_chat_retrieval_cache_total", "Retrieval cache lookups.", ["result"])

# (tenant, collection, query, top_k, mode, document ids, media types, file names, keep chunks, filters)
_Key = tuple[str, str, str, int, int, tuple[str, ...], tuple[str, ...], tuple[str, ...], bool, "Filters"]


@dataclass(frozen=True)
class Filters:
    """What a chat request narrows retrieval to: documents carrying any of ``tags``, versions
    created from ``date_from`` up to ``date_to`` (inclusive; aware UTC datetimes)."""

    tags: tuple[str, ...] = ()
    date_from: datetime | None = None
    date_to: datetime | None = None

    @classmethod
    def of(
        cls,
        tags: Sequence[str] | None = None,
        date_from: str | datetime | None = None,
        date_to: str | datetime | None = None,
    ) -> Filters:
        """Checked filters from a request; raises ``UnprocessableInput`` (422) saying what is accepted."""
        start, end = parse_date("date_from", date_from), parse_date("date_to", date_to, end=True)
        check_range(start, end)
        return cls(tuple(sorted(clean_tags(tags or []))), start, end)


class Retriever:
    def __init__(self, bus: Bus, *, timeout_s: float, cache_entries: int) -> None:
        self.bus = bus
        self.timeout_s = timeout_s
        self.cache_entries = cache_entries
        self._cache: OrderedDict[_Key, list[SearchHit]] = OrderedDict()

    async def search(
        self,
        tenant_id: str,
        collection_id: str,
        query: str,
        *,
        top_k: int,
        mode: SearchMode = SearchMode.SEARCH_MODE_HYBRID,
        document_ids: Sequence[str] = (),
        media_types: Sequence[str] = (),
        file_names: Sequence[str] = (),
        keep_chunks: bool = False,
        filters: Filters | None = None,
    ) -> list[SearchHit]:
        """The best passages; raises ``DependencyUnavailable`` if the embedder does not answer.

        Hybrid (dense + keyword, fused) unless ``mode`` says otherwise; the filters narrow the
        chunks searched; adjacent chunks come merged into one passage unless ``keep_chunks``.
        ``filters`` narrow them by tag and date. Every parameter is part of the cache key.
        """
        filters = filters or Filters()
        key: _Key = (
            tenant_id,
            collection_id,
            query,
            top_k,
            int(mode),
            tuple(sorted(document_ids)),
            tuple(sorted(media_types)),
            tuple(sorted(file_names)),
            keep_chunks,
            filters,
        )
        if key in self._cache:
            CACHE.labels("hit").inc()
            self._cache.move_to_end(key)
            return self._cache[key]
        CACHE.labels("miss").inc()
        request = SearchRequest(
            tenant_id=tenant_id,
            collection_id=collection_id,
            query=query,
            top_k=top_k,
            mode=mode,
            document_ids=document_ids,
            media_types=media_types,
            file_names=file_names,
            keep_chunks=keep_chunks,
            tags=filters.tags,
        )
        if filters.date_from is not None:
            request.date_from.CopyFrom(timestamp_of(filters.date_from))
        if filters.date_to is not None:
            request.date_to.CopyFrom(timestamp_of(filters.date_to))
        try:
            response = await self.bus.request(SEARCH_SUBJECT, request, SearchResponse, timeout_s=self.timeout_s)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise DependencyUnavailable(f"the search service (embedder) did not answer: {type(exc).__name__}") from exc
        if response.error:
            raise DependencyUnavailable(response.error)
        hits = list(response.hits)
        if self.cache_entries:
            self._cache[key] = hits
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)
        return hits

    def invalidate(self, tenant_id: str, collection_id: str) -> int:
        """Forget the cached results of one collection; returns how many were dropped."""
        stale = [k for k in self._cache if k[0] == tenant_id and k[1] == collection_id]
        for key in stale:
            del self._cache[key]
        return len(stale)
