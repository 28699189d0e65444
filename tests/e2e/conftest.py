"""The whole system as ``make run`` starts it: NATS, PostgreSQL and five service processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstream_devstack.e2e import Client
from ragstream_devstack.engine_sets import ENGINE_SETS, RUN_CONTAINERS, EngineSet, docker_unreachable, start_engine_set
from ragstream_devstack.stack import Stack

E2E_ENV = {
    "RAGSTREAM_ACK_WAIT_S": "6",  # an interrupted message is redelivered within seconds
    "RAGSTREAM_RETRY_DELAY_S": "0.5",
    "RAGSTREAM_GATEWAY_MAX_UPLOAD_BYTES": str(2_000_000),
    "RAGSTREAM_GATEWAY_WEB_ALLOW_PRIVATE_ADDRESSES": "true",  # web sources crawl a site on 127.0.0.1
    "RAGSTREAM_LOG_LEVEL": "INFO",
}
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "e2e"


def start_stack(data_dir: Path, log_dir: Path, *, env: dict[str, str] | None = None, **options: Any) -> Stack:
    """A stack with the end-to-end settings, ``env`` added to them; ``options`` go to ``Stack``
    (e.g. ``browser_origins``)."""
    return Stack(data_dir=data_dir, log_dir=log_dir, env={**E2E_ENV, **(env or {})}, **options).start()


def print_log_tails(log_dir: Path, lines: int = 40) -> None:
    for log in sorted(log_dir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"\n===== last {len(tail)} lines of {log.name} =====\n" + "\n".join(tail))  # noqa: T201


@pytest.fixture(name="start_stack", scope="session")
def start_stack_fixture() -> Callable[..., Stack]:
    """Start a stack of this test's own on the given data and log directories."""
    return start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    log_dir = OUTPUT / "logs"
    for old in log_dir.glob("*.log"):
        old.unlink()
    running = start_stack(tmp_path_factory.mktemp("stack"), log_dir)
    yield running
    running.stop()
    if request.session.testsfailed:
        print_log_tails(log_dir)


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(timeout=60) as http:
        yield Client(stack, http)


@pytest.fixture(name="unstarted_stack")
def unstarted_stack_fixture() -> Callable[[Path, Path], Stack]:
    """A stack of this test's own with the e2e settings, not started (``start_servers`` first, e.g.
    to restore a backup before ``start_services``)."""
    return lambda data_dir, log_dir: Stack(data_dir=data_dir, log_dir=log_dir, env=dict(E2E_ENV))


@pytest.fixture(name="engine_set_stack", scope="module", params=ENGINE_SETS)
def engine_set_stack_fixture(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EngineSet, Stack]]:
    """A stack of the module's own on each engine set of ``ragstream_devstack.engine_sets``:
    embedded (edge, local objects, one nats-server), local-production (qdrant-client local mode,
    S3 on SeaweedFS, a 3-server JetStream cluster with R3 streams) and containers (Qdrant server
    and MinIO with testcontainers, the same NATS cluster). Without a Docker engine the
    containers variant is skipped, saying so; with RAGSTREAM_E2E_REQUIRE_DOCKER=1 (`make
    e2e-containers`) it fails instead."""
    name = str(request.param)
    if name == "containers" and (reason := docker_unreachable()):
        message = f"no Docker engine reachable ({reason}): {RUN_CONTAINERS}"
        if os.environ.get("RAGSTREAM_E2E_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp(f"engines-{name}")
    log_dir = OUTPUT / "logs" / f"engines-{name}"
    for old in log_dir.glob("*.log"):
        old.unlink()
    engines = start_engine_set(name, work)
    env = {**E2E_ENV, "RAGSTREAM_GATEWAY_CONSISTENCY_MIN_AGE_S": "0", **engines.env}
    try:
        running = Stack(data_dir=work / "data", log_dir=log_dir, env=env, nats_url=engines.nats_url).start()
    except BaseException:
        engines.stop()
        print_log_tails(log_dir)
        raise
    try:
        yield engines, running
    finally:
        running.stop()
        engines.stop()
        if request.session.testsfailed:
            print_log_tails(log_dir)
