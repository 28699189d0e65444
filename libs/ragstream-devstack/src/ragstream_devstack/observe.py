"""Helpers of the observability tests: a workload that touches every metric, and a scrape."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ragstream_core.proto.ragstream.v1 import chat_pb2, chat_pb2_grpc
from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import SERVICES
from ragstream_devstack.testing import CORPUS, new_id

#: every service of the stack, by the name its /metrics is scraped under
SERVICE_NAMES = tuple(spec.name for spec in SERVICES)

DOCUMENT = b"""# Tides

## Causes

Tides are caused by the gravity of the moon and the sun pulling on the oceans of the earth.

## Spring tides

When the sun and the moon line up, the tides are highest: these are called spring tides.
"""
#: bytes the gateway accepts as a PDF and Docling cannot read: the job fails at parsing
BROKEN_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n garbage"


async def exercise(client: Client) -> dict[str, Any]:
    """Two documents ingested (one with pages), one that fails, a chat answer, a blank question
    (REST and gRPC), and one gRPC call of each gRPC service. Returns the jobs and the answer.
    """
    collection = new_id("observe")
    upload = await client.upload(collection, "tides.md", DOCUMENT)
    paged = await client.upload(
        collection, "code_and_formula.pdf", (CORPUS / "pdf" / "code_and_formula.pdf").read_bytes()
    )
    broken = await client.upload(collection, "broken.pdf", BROKEN_PDF)
    uploads = (upload, paged, broken)
    assert [u.status_code for u in uploads] == [202, 202, 202], [u.text for u in uploads]
    indexed, pdf, failed = await client.wait_done([u.json()["job_id"] for u in uploads])
    assert (indexed["status"], pdf["status"], failed["status"]) == ("indexed", "indexed", "failed"), (indexed, failed)
    answer = await client.chat(collection, "What causes tides?")
    # bad input, as clients send it: a blank question over REST (400) and over gRPC
    blank = await client.http.post(
        f"{client.stack.url('chat')}/v1/collections/{collection}/chat", json={"question": " "}
    )
    assert blank.status_code == 400, blank.text
    async with grpc.aio.insecure_channel(f"127.0.0.1:{client.stack.grpc_ports['chat']}") as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Ask(chat_pb2.AskRequest(collection_id=collection, question=" "))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    for name, port in client.stack.grpc_ports.items():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    return {"indexed": indexed, "failed": failed, "answer": answer, "collection": collection}


async def scrape(client: Client, service: str) -> dict[str, Metric]:
    """The metric families of ``service``'s /metrics, parsed by prometheus-client's parser."""
    response = await client.http.get(f"{client.stack.url(service)}/metrics")
    response.raise_for_status()
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def sample_value(family: Metric, suffix: str = "", **labels: str) -> float:
    """The sum of the family's samples named ``<family><suffix>`` whose labels include ``labels``."""
    name = family.name + suffix
    return sum(
        s.value for s in family.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
