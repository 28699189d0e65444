"""The job projection over the session PostgreSQL, and the events of fresh jobs to feed it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from psycopg_pool import AsyncConnectionPool

from ragstream_core.events import stamp, timestamp_of
from ragstream_core.proto.ragstream.v1.events_pb2 import (
    DocParsed,
    DocReleased,
    DocUploaded,
    EventMeta,
    IndexUpdated,
    JobControlled,
    JobFailed,
    StageProgress,
)
from ragstream_devstack.servers import Postgres
from ragstream_devstack.testing import migrated_pool, new_id
from ragstream_progress.api import create_app
from ragstream_progress.projection import JobStore


@dataclass
class JobEvents:
    """The events of one job, stamped as the bus stamps them, applied with growing stream sequences.

    Events are made for the current ``retry`` (run), ``batch_id`` and ``priority``, at ``at``
    (now when ``None``).
    """

    store: JobStore
    tenant_id: str
    collection_id: str
    job_id: str = field(default_factory=lambda: new_id("job"))
    document_id: str = field(default_factory=lambda: new_id("doc"))
    trace_id: str = field(default_factory=lambda: new_id("trace"))
    sequence: int = 0
    batch_id: str = ""
    priority: str = "normal"
    retry: int = 0
    at: datetime | None = None

    def meta(self) -> EventMeta:
        meta = EventMeta(
            job_id=self.job_id,
            tenant_id=self.tenant_id,
            collection_id=self.collection_id,
            document_id=self.document_id,
            version=1,
            file_name="duck.md",
            batch_id=self.batch_id,
            priority=self.priority,
            retry=self.retry,
        )
        if self.at is not None:
            meta.occurred_at.CopyFrom(timestamp_of(self.at))
        return meta

    def uploaded(self) -> DocUploaded:
        event = DocUploaded(meta=self.meta(), object_key="uploads/k", media_type="text/markdown", size_bytes=1043)
        stamp(event)
        return event

    def released(self) -> DocReleased:
        event = DocReleased(meta=self.meta(), upload=self.uploaded())
        stamp(event)
        return event

    def control(self, action: str, *, actor: str = "alice", reason: str = "") -> JobControlled:
        event = JobControlled(meta=self.meta(), action=action, actor=actor, reason=reason, control_id=new_id("ctl"))
        stamp(event)
        return event

    def parsing(self, *, done: int = 0, total: int = 0, attempt: int = 1, unit: str = "pages") -> StageProgress:
        event = StageProgress(meta=self.meta(), stage="parsing", unit=unit, done=done, total=total, attempt=attempt)
        stamp(event)
        return event

    def parsed(self, *, pages: int, chunks: int, seconds: float = 0.0) -> DocParsed:
        event = DocParsed(
            meta=self.meta(), chunks_key="chunks/k", page_count=pages, chunk_count=chunks, parse_seconds=seconds
        )
        stamp(event)
        return event

    def embedding(self, *, done: int, total: int) -> StageProgress:
        event = StageProgress(meta=self.meta(), stage="embedding", unit="chunks", done=done, total=total, attempt=1)
        stamp(event)
        return event

    def indexed(self, *, chunks: int, seconds: float = 0.0) -> IndexUpdated:
        event = IndexUpdated(
            meta=self.meta(),
            chunk_count=chunks,
            embedding_model="all-MiniLM-L6-v2",
            dimensions=384,
            embed_seconds=seconds,
        )
        stamp(event)
        return event

    def failed(
        self, *, stage: str, reason: str, attempts: int = 1, hint: str = "", error_type: str = "UnreadableDocument"
    ) -> JobFailed:
        event = JobFailed(
            meta=self.meta(), stage=stage, reason=reason, attempts=attempts, error_type=error_type, hint=hint
        )
        stamp(event)
        return event

    async def apply(self, *events: Message) -> list[bool]:
        """Apply each event as the next message of the stream; whether each was new."""
        applied = []
        for event in events:
            self.sequence += 1
            applied.append(await self.store.apply(event, stream_sequence=self.sequence, trace_id=self.trace_id))
        return applied

    async def apply_at(self, sequence: int, event: Message) -> bool:
        """Apply ``event`` as the message at ``sequence`` of the stream (events applied out of order)."""
        self.sequence = max(self.sequence, sequence)
        return await self.store.apply(event, stream_sequence=sequence, trace_id=self.trace_id)

    async def state(self) -> dict[str, Any] | None:
        return await self.store.get(self.tenant_id, self.job_id)

    async def run_to_indexed(self) -> None:
        await self.apply(
            self.uploaded(),
            self.parsing(),
            self.parsed(pages=4, chunks=10),
            self.embedding(done=10, total=10),
            self.indexed(chunks=10),
        )


NewJob = Callable[..., JobEvents]


@pytest.fixture(scope="session")
async def progress_pool(postgres: Postgres) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on the session PostgreSQL, with the projection's tables."""
    async with migrated_pool(postgres.url, service="progress", package="ragstream_progress") as pool:
        yield pool


@pytest.fixture
def jobs(progress_pool: AsyncConnectionPool) -> JobStore:
    return JobStore(progress_pool)


@pytest.fixture
def collection_id() -> str:
    """This test's collection."""
    return new_id("col")


@pytest.fixture
def new_job(jobs: JobStore, collection_id: str) -> NewJob:
    """A fresh job of tenant ``default`` in this test's collection (or of the tenant and collection given)."""

    def make(
        *, tenant_id: str = "default", collection_id: str = collection_id, batch_id: str = "", priority: str = "normal"
    ) -> JobEvents:
        return JobEvents(jobs, tenant_id=tenant_id, collection_id=collection_id, batch_id=batch_id, priority=priority)

    return make


@pytest.fixture
async def client(jobs: JobStore) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the REST API (in process)."""
    app = create_app(jobs, default_tenant="default")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://progress.test") as client:
        yield client


@pytest.fixture
def job_events() -> type[JobEvents]:
    """``JobEvents`` itself, for tests that feed a store of their own (conftest is not importable)."""
    return JobEvents
