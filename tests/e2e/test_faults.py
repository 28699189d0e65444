"""Fault suite: a batch keeps its guarantees while services die, NATS and PostgreSQL restart,
and a poison document keeps failing (issue 4, scenarios 1-4).

After each scenario every job is indexed (the poison document failed with a reason, and is in
the dead-letter stream), each document has exactly as many points as chunks, the projection,
the gateway and the object store agree, and no JetStream consumer holds a pending or
unacknowledged message. The table of all scenarios is printed at the end of the session.
The batch size is ``RAGSTREAM_FAULT_DOCS`` (default 50; ``make soak``: 500).
"""

from __future__ import annotations

import pytest

from ragstream_devstack.e2e import Client
from ragstream_devstack.fault_report import FaultReport
from ragstream_devstack.faults import (
    MAX_DELIVER,
    PARSED,
    NatsRestart,
    document_count,
    kill_service,
    poison_document,
    restart_postgres,
    run_fault_scenario,
)
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

pytest_plugins = ["ragstream_devstack.fault_fixtures"]

#: how long NATS and PostgreSQL stay away in their restart scenarios
DOWN_S = 3.0


@pytest.mark.parametrize(
    ("service", "after"),
    [
        ("parser", PARSED),
        ("embedder", PARSED),
        ("progress", PARSED),
        ("ingest-gateway", frozenset()),  # at once: the second half is uploaded while it is away
        ("chat", PARSED),
    ],
)
async def test_a_service_killed_mid_batch_loses_and_duplicates_nothing(
    fault_client: Client, fault_stack: Stack, fault_report: FaultReport, service: str, after: frozenset[str]
) -> None:
    outcome = await run_fault_scenario(
        fault_client,
        kill_service(fault_stack, service, after=after),
        collection=new_id(f"kill-{service}"),
        documents=document_count(),
    )
    fault_report.add(outcome.row)

    outcome.assert_clean()


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_nats_restarted_mid_batch_keeps_every_message(
    fault_client: Client, fault_stack: Stack, fault_report: FaultReport, kill: bool
) -> None:
    restart = NatsRestart(fault_stack, down_s=DOWN_S, kill=kill)

    outcome = await run_fault_scenario(
        fault_client, restart.fault(), collection=new_id("restart-nats"), documents=document_count()
    )
    fault_report.add(outcome.row)

    assert restart.violations == []
    outcome.assert_clean()


async def test_postgres_restarted_mid_batch_loses_no_job_state(
    fault_client: Client, fault_stack: Stack, fault_report: FaultReport
) -> None:
    outcome = await run_fault_scenario(
        fault_client,
        restart_postgres(fault_stack, down_s=DOWN_S),
        collection=new_id("restart-pg"),
        documents=document_count(),
    )
    fault_report.add(outcome.row)

    outcome.assert_clean()


async def test_poison_document_is_dead_lettered_after_max_deliveries_and_spares_the_rest(
    fault_client: Client, fault_report: FaultReport
) -> None:
    outcome = await run_fault_scenario(
        fault_client, poison_document("poison.eml"), collection=new_id("poison"), documents=document_count()
    )
    fault_report.add(outcome.row)

    outcome.assert_clean(dead_letters=1)
    poison = outcome.audit.jobs[outcome.job_of["poison.eml"]]
    assert poison["status"] == "failed"
    assert poison["error"]["stage"] == "parsing"
    assert poison["attempts"] == MAX_DELIVER
    (letter,) = outcome.dead_letters
    assert letter.job_id == poison["job_id"]
    assert letter.stage == "parsing"
    assert letter.deliveries == MAX_DELIVER
    assert letter.reason.split() == poison["error"]["reason"].split()  # a NATS header holds no line breaks
