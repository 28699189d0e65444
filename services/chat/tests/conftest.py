"""Chat over a real NATS: a search responder on a second connection plays the embedder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import nats.errors
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_chat.answers import Answerer, ExtractiveAnswerer
from ragstream_chat.api import create_app
from ragstream_chat.collection_provider import CollectionProviders
from ragstream_chat.collection_settings import CollectionStore
from ragstream_chat.conversations import ConversationStore
from ragstream_chat.ports import Collections, Conversations, Search
from ragstream_chat.retrieval import Retriever
from ragstream_core.bus import Bus
from ragstream_core.events import SEARCH_SUBJECT
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit, SearchRequest, SearchResponse
from ragstream_core.runtime import serve_http
from ragstream_core.secrets import SecretBox, generate_key
from ragstream_devstack.servers import Postgres, free_port, wait_for_port
from ragstream_devstack.testing import eventually, migrated_pool

BusFactory = Callable[..., Awaitable[Bus]]
_PROBE = "readiness probe"


@dataclass
class Ports:
    """Shaped like the composition root's ``Ports``."""

    retriever: Search
    conversations: Conversations
    collections: Collections
    answerers: dict[str, Answerer] = field(default_factory=lambda: {"extractive": ExtractiveAnswerer()})
    provider: str = "extractive"
    min_score: float = 0.2
    top_k: int = 5
    history_turns: int = 6
    min_keyword_coverage: float = 0.66
    #: collections' own endpoints; their keys sealed with a key of this test's own
    providers: CollectionProviders = field(
        default_factory=lambda: CollectionProviders(SecretBox.from_config(generate_key()), timeout_s=5)
    )


@dataclass
class SearchResponder:
    """Answers ``ragstream.rpc.search`` with ``hits`` (or ``error``) and records each request."""

    hits: list[SearchHit] = field(default_factory=list)
    error: str = ""
    requests: list[SearchRequest] = field(default_factory=list)

    async def answer(self, request: SearchRequest) -> SearchResponse:
        if request.query == _PROBE:
            return SearchResponse()
        self.requests.append(request)
        if self.error:
            return SearchResponse(error=self.error)
        return SearchResponse(hits=self.hits[: request.top_k], embedding_model="all-MiniLM-L6-v2")

    def add_hit(self, text: str, *, score: float = 0.8, page: int = 1, **fields: object) -> SearchHit:
        """Return a hit of document ``doc-1`` (``duck.md``, unless ``fields`` say otherwise) from now on."""
        values: dict[str, object] = {"document_id": "doc-1", "version": 1, "file_name": "duck.md", "chunk_index": 0}
        values.update(fields)
        found = SearchHit(text=text, score=score, page=page, **values)  # type: ignore[arg-type]
        self.hits.append(found)
        return found

    def asked(self, query: str) -> int:
        """How many searches for ``query`` reached the responder."""
        return sum(1 for r in self.requests if r.query == query)


@pytest.fixture
async def chat_bus(bus_factory: BusFactory) -> Bus:
    """The chat service's connection."""
    return await bus_factory(service="chat-test")


@pytest.fixture
async def responder(bus_factory: BusFactory, chat_bus: Bus) -> SearchResponder:
    """A search responder on its own connection, subscribed before the test starts."""
    embedder_bus = await bus_factory(service="embedder-test")
    responder = SearchResponder()
    await embedder_bus.serve(SEARCH_SUBJECT, SearchRequest, responder.answer, queue="x")

    async def answers_probe() -> bool:
        try:
            await chat_bus.request(SEARCH_SUBJECT, SearchRequest(query=_PROBE), SearchResponse, timeout_s=1)
        except nats.errors.NoRespondersError:
            return False
        return True

    await eventually(answers_probe, until=bool, within_s=5, interval_s=0.01)
    return responder


@pytest.fixture
def retriever(chat_bus: Bus) -> Retriever:
    return Retriever(chat_bus, timeout_s=2.0, cache_entries=64)


@pytest.fixture(scope="session")
async def chat_pool(postgres: Postgres) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on the session PostgreSQL, with chat's tables."""
    async with migrated_pool(postgres.url, service="chat", package="ragstream_chat") as pool:
        yield pool


@pytest.fixture
def ports(retriever: Retriever, chat_pool: AsyncConnectionPool) -> Ports:
    """Extractive answers, passages scoring under 0.2 ignored, five passages per question."""
    return Ports(retriever, ConversationStore(chat_pool), CollectionStore(chat_pool))


@pytest.fixture
async def client(ports: Ports) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the REST API, in process."""
    app = create_app(ports, default_tenant="default")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat.test") as client:
        yield client


@pytest.fixture
async def chat_url(ports: Ports) -> AsyncIterator[str]:
    """The REST API under a real uvicorn server (as the service serves it), on a free port."""
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve_http(create_app(ports, default_tenant="default"), host="127.0.0.1", port=port, stop=stop)
    )
    await asyncio.to_thread(wait_for_port, port)
    yield f"http://127.0.0.1:{port}"
    stop.set()
    await task
