"""Every service's /metrics after an ingest, a failed document and a chat answer, parsed with
prometheus-client's own parser: the families an operator needs exist, with sane values, and
follow Prometheus' naming conventions (units in names, ``_total`` counters, bounded labels)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from prometheus_client.metrics_core import Metric

from ragstream_devstack.e2e import Client
from ragstream_devstack.observe import SERVICE_NAMES, exercise, sample_value, scrape
from ragstream_devstack.stack import Stack

#: the bus's families, in every service that consumes a JetStream stream
BUS_FAMILIES = {
    "ragstream_stage_duration_seconds": "histogram",
    "ragstream_messages": "counter",
    "ragstream_in_flight_messages": "gauge",
    "ragstream_job_failures": "counter",
    "ragstream_dead_letters": "counter",
    "ragstream_redeliveries": "counter",
    "ragstream_consumer_pending_messages": "gauge",
    "ragstream_consumer_ack_pending_messages": "gauge",
    "ragstream_consumer_redelivered_messages": "gauge",
}
CONSUMERS = {
    "ingest-gateway": "gateway-versions",
    "parser": "parser-released",
    "embedder": "embedder",
    "progress": "progress",
}
UNIT_SUFFIXES = ("_seconds", "_bytes", "_messages", "_total", "_info", "_ratio")


@pytest.fixture(scope="module")
async def scraped(stack: Stack) -> dict[str, Any]:
    """The workload once, then one scrape of every service."""
    async with httpx.AsyncClient(timeout=60) as http:
        client = Client(stack, http)
        workload = await exercise(client)
        return {"workload": workload, **{name: await scrape(client, name) for name in SERVICE_NAMES}}


def family(scraped: dict[str, Any], service: str, name: str) -> Metric:
    families: dict[str, Metric] = scraped[service]
    assert name in families, f"{service} exports no {name}; it has {sorted(f for f in families if 'ragstream' in f)}"
    return families[name]


@pytest.mark.parametrize("service", sorted(CONSUMERS))
def test_every_consuming_service_exports_the_bus_families(scraped: dict[str, Any], service: str) -> None:
    for name, kind in BUS_FAMILIES.items():
        assert family(scraped, service, name).type == kind, name

    consumer = CONSUMERS[service]
    pending = family(scraped, service, "ragstream_consumer_pending_messages")
    assert any(s.labels == {"consumer": consumer} and s.value >= 0 for s in pending.samples), pending.samples
    assert sample_value(family(scraped, service, "ragstream_messages"), "_total", outcome="ok") > 0


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_service_times_its_http_requests_by_route_template(scraped: dict[str, Any], service: str) -> None:
    http = family(scraped, service, "ragstream_http_request_duration_seconds")

    routes = {s.labels["route"] for s in http.samples if s.name.endswith("_count")}
    assert "/readyz" in routes
    assert all(route.startswith("/") or route == "<unmatched>" for route in routes)
    assert not any(re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", route) for route in routes), routes
    assert sample_value(http, "_count", route="/readyz", status="200") > 0


def test_stage_work_is_counted(scraped: dict[str, Any]) -> None:
    parser = {n: family(scraped, "parser", f"ragstream_parser_{n}") for n in ("documents", "pages", "chunks", "bytes")}
    embedder = {n: family(scraped, "embedder", f"ragstream_embedder_{n}") for n in ("documents", "chunks", "tokens")}

    counted = {f.name: sample_value(f, "_total") for f in (*parser.values(), *embedder.values())}
    assert all(value > 0 for value in counted.values()), counted
    assert sample_value(parser["chunks"], "_total") >= sample_value(parser["documents"], "_total")
    assert (
        sample_value(family(scraped, "ingest-gateway", "ragstream_gateway_uploads"), "_total", outcome="accepted") >= 3
    )
    assert sample_value(family(scraped, "ingest-gateway", "ragstream_gateway_upload_bytes"), "_total") > 0
    batches = family(scraped, "embedder", "ragstream_embedder_batch_duration_seconds")
    upserts = family(scraped, "embedder", "ragstream_embedder_index_duration_seconds")
    assert sample_value(batches, "_count") > 0
    assert sample_value(upserts, "_count", operation="upsert") > 0
    assert sample_value(upserts, "_count", operation="activate") > 0


def test_the_failed_document_is_counted_by_stage_and_reason_and_dead_lettered(scraped: dict[str, Any]) -> None:
    failures = family(scraped, "parser", "ragstream_job_failures")
    dead = family(scraped, "parser", "ragstream_dead_letters")

    assert sample_value(failures, "_total", stage="parsing") >= 1
    assert all(s.labels["error_type"] for s in failures.samples)
    assert sample_value(dead, "_total", stage="parsing") >= 1


def test_latencies_users_wait_for_are_observed(scraped: dict[str, Any]) -> None:
    first_token = family(scraped, "chat", "ragstream_chat_first_delta_seconds")
    answer = family(scraped, "chat", "ragstream_chat_answer_seconds")
    indexed = family(scraped, "progress", "ragstream_job_upload_to_indexed_seconds")
    search = family(scraped, "embedder", "ragstream_embedder_search_duration_seconds")

    assert sample_value(first_token, "_count") > 0
    assert 0 < sample_value(first_token, "_sum") <= sample_value(answer, "_sum")
    assert sample_value(indexed, "_count") >= 1
    assert sample_value(indexed, "_sum") > 0
    assert sample_value(search, "_count") > 0
    assert scraped["workload"]["answer"]["citations"], "the chat answer cites the indexed document"


@pytest.mark.parametrize("service", sorted(n for n in SERVICE_NAMES if n != "parser" and n != "embedder"))
def test_grpc_calls_are_timed_by_method_and_code(scraped: dict[str, Any], service: str) -> None:
    grpc_family = family(scraped, service, "ragstream_grpc_request_duration_seconds")

    assert sample_value(grpc_family, "_count", method="/grpc.health.v1.Health/Check", code="OK") >= 1


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_names_carry_units_and_label_sets_stay_bounded(scraped: dict[str, Any], service: str) -> None:
    # the parser lists the `_created` timestamps of counters and histograms as families of their own
    ours = [f for n, f in scraped[service].items() if n.startswith("ragstream_") and not n.endswith("_created")]

    assert ours
    for metric in ours:
        if metric.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in metric.samples), metric.name
        if metric.type == "histogram":
            assert metric.name.endswith(("_seconds", "_bytes")), metric.name
        if metric.type == "gauge":
            assert metric.name.endswith(UNIT_SUFFIXES) or metric.name.startswith("ragstream_chat_local_"), metric.name
        # label sets, a histogram's buckets (`le`: a fixed multiple) aside; they must not grow with
        # ids or paths (the fuzz test, on this same stack, has called every route with odd input)
        series = {tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")) for s in metric.samples}
        assert len(series) < 500, f"{metric.name} has {len(series)} label sets"
