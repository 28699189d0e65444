"""pytest fixtures of the fault suite (a plugin: each fault test module names it in ``pytest_plugins``).

Each module gets a stack of its own (``fault_stack``): its faults (NATS restarts, say) must not
disturb the other tests' session stack, and its JetStream consumers then hold only its events.
Service logs go to ``test-output/e2e/logs/<module>/``; their tails are printed if a test of the
module failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ragstream_devstack.e2e import Client
from ragstream_devstack.fault_report import FaultReport
from ragstream_devstack.faults import start_fault_stack
from ragstream_devstack.stack import Stack

OUTPUT = Path(__file__).resolve().parents[4] / "test-output" / "e2e"


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """NATS, PostgreSQL and the five services, for this test module alone."""
    module = Path(str(request.module.__file__)).stem
    log_dir = OUTPUT / "logs" / module
    for old in log_dir.glob("*.log"):
        old.unlink()
    failed_before = request.session.testsfailed
    running = start_fault_stack(tmp_path_factory.mktemp(module), log_dir)
    yield running
    running.stop()
    if request.session.testsfailed > failed_before:
        for log in sorted(log_dir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-40:]
            print(f"\n===== last {len(tail)} lines of {module}/{log.name} =====\n" + "\n".join(tail))  # noqa: T201


@pytest.fixture
async def fault_client(fault_stack: Stack) -> AsyncIterator[Client]:
    """A client of ``fault_stack``, every service of which is running (a scenario that failed
    half-way may have left one down)."""
    fault_stack.restart_exited()
    async with httpx.AsyncClient(timeout=60) as http:
        yield Client(fault_stack, http)


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> FaultReport:
    """The session's table of scenarios (printed at its end, written to test-output/e2e/)."""
    return FaultReport.of(request.config, path=OUTPUT / "fault-report.json")
