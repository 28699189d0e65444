"""Fault suite, scenarios 5 and 6: steering jobs mid-batch through the gateway's job-control API.

NEEDS the job-control API of the gateway's scheduler (``POST /v1/collections/{c}/jobs:pause``,
``:resume``, ``POST /v1/jobs/{id}:cancel``, ``GET /v1/jobs/{id}/control``). Without it these
tests fail with the route and its 404 (``ControlRefused``); they are never skipped.

The batch is audited as in ``test_faults.py``: nothing lost, nothing duplicated, nothing stuck,
the stores agree, no message pending or unacknowledged, no dead letter.
"""

from __future__ import annotations

from ragstream_devstack.e2e import Client
from ragstream_devstack.fault_control import CancelWhileEmbedding, CollectionPause
from ragstream_devstack.fault_report import FaultReport
from ragstream_devstack.faults import document_count, run_fault_scenario
from ragstream_devstack.testing import new_id

pytest_plugins = ["ragstream_devstack.fault_fixtures"]


async def test_a_paused_collection_releases_nothing_until_resumed_and_then_loses_nothing(
    fault_client: Client, fault_report: FaultReport
) -> None:
    collection = new_id("pause")
    pause = CollectionPause(fault_client, collection, hold_s=4.0)

    outcome = await run_fault_scenario(fault_client, pause.fault(), collection=collection, documents=document_count())
    fault_report.add(outcome.row)

    assert pause.violations == []
    assert pause.held > 0, "the pause held no job: it was given too late to prove anything"
    outcome.assert_clean()


async def test_a_job_cancelled_mid_embedding_ends_cancelled_without_points_and_spares_the_rest(
    fault_client: Client, fault_report: FaultReport
) -> None:
    cancel = CancelWhileEmbedding(fault_client)

    outcome = await run_fault_scenario(
        fault_client, cancel.fault(), collection=new_id("cancel"), documents=document_count()
    )
    fault_report.add(outcome.row)

    outcome.assert_clean()
    cancelled = outcome.audit.jobs[outcome.job_of[cancel.name]]
    assert cancelled["status"] == "cancelled"
    assert not any((await fault_client.points(cancelled["document_id"])).values())
