"""pytest fixtures over real servers (a plugin: the root conftest.py loads it).

Session-wide: one nats-server with JetStream and one PostgreSQL, each on a free port or socket
in a temporary directory. Tests make their own ids, so they share the servers safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_devstack.s3 import SeaweedS3
from ragstream_devstack.servers import NatsServer, Postgres, free_port

T = TypeVar("T")

CORPUS = Path(__file__).resolve().parents[4] / ".." / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared test corpus (../shared/corpus from the repository root)."""
    path = CORPUS.resolve()
    assert path.is_dir(), f"the test corpus is missing at {path}"
    return path


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"), port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    server = Postgres(tmp_path_factory.mktemp("pg")).start()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def migrated_pool(url: str, *, service: str, package: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on ``url`` after applying ``package``'s migrations (idempotent)."""
    from ragstream_core.db import apply_migrations, open_pool

    await apply_migrations(url, service=service, package=package)
    pool = await open_pool(url)
    try:
        yield pool
    finally:
        await pool.close()


def new_id(prefix: str = "t") -> str:
    """A fresh identifier for one test's collection, tenant or document."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    within_s: float = 30.0,
    interval_s: float = 0.1,
) -> T:
    """Poll ``probe`` until ``until(value)``; fail with the last value seen. Never sleeps blindly."""
    deadline = time.monotonic() + within_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if until(last):
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {within_s}s; last value: {last!r}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS), started the first time a test asks for it."""
    server = SeaweedS3(tmp_path_factory.mktemp("weed")).start()
    yield server
    server.stop()


@pytest.fixture
def isolated_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test alone: its streams see no other test's events."""
    server = NatsServer(tmp_path / "nats", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
async def bus_factory(isolated_nats: NatsServer) -> AsyncIterator[Callable[..., Awaitable[object]]]:
    """Connect ``Bus`` objects to the test NATS; all are stopped after the test."""
    from ragstream_core.bus import Bus

    made: list[Bus] = []

    async def make(**kwargs: object) -> Bus:
        bus = await Bus.connect(isolated_nats.url, **kwargs)  # type: ignore[arg-type]
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.stop()
