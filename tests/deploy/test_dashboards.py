"""Grafana dashboards and alert rules: valid JSON, provisioned by the manifests, every query
parses as PromQL (``promql-parser``, a binding of a port of Prometheus' parser) and every metric
it selects is one the code defines or one an exporter we deploy is known to publish."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from .conftest import ROOT, Manifest

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
#: metrics of the engines' exporters (not our code): name -> who publishes it
EXTERNAL_METRICS = {
    "jetstream_consumer_num_pending": "prometheus-nats-exporter -jsz=all (nats.yaml sidecar)",
    "jetstream_consumer_num_redelivered": "prometheus-nats-exporter -jsz=all",
    "jetstream_stream_total_messages": "prometheus-nats-exporter -jsz=all",
    "jetstream_stream_total_bytes": "prometheus-nats-exporter -jsz=all",
    "gnatsd_varz_connections": "prometheus-nats-exporter -varz",
    "rest_responses_total": "Qdrant /metrics",
    "collections_total": "Qdrant /metrics",
    "collections_vector_total": "Qdrant /metrics",
    "minio_cluster_capacity_usable_free_bytes": "MinIO /minio/v2/metrics/cluster",
    "kube_pod_status_ready": "kube-state-metrics",
}


def code_metrics() -> set[str]:
    """Every metric name our code defines, with the series names a histogram adds."""
    names: set[str] = set()
    pattern = re.compile(r'\b(Counter|Gauge|Histogram)\(\s*"([a-z_:][a-z0-9_:]*)"')
    for path in [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")]:
        for kind, name in pattern.findall(path.read_text()):
            names.add(name)
            if kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects; raises ``ValueError`` if it does not parse."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(str(node.name))

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return names


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def rule_exprs(manifests: list[Manifest]) -> list[str]:
    rules = [m for m in manifests if m["kind"] == "PrometheusRule"]
    return [r["expr"] for m in rules for g in m["spec"]["groups"] for r in g["rules"]]


def test_the_four_dashboards_exist() -> None:
    assert {p.stem for p in DASHBOARDS} == {"pipeline-overview", "job-latency", "chat", "infrastructure"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_valid_with_unique_uid_and_panel_ids(path: Path) -> None:
    board = json.loads(path.read_text())
    ids = [p["id"] for p in board["panels"]]

    assert board["uid"].startswith("ragstream-")
    assert board["title"]
    assert len(ids) == len(set(ids))
    assert ids
    assert all(p.get("targets") for p in board["panels"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_queries_only_metrics_that_exist(path: Path) -> None:
    known = code_metrics() | set(EXTERNAL_METRICS)
    used = {name for expr in dashboard_exprs(json.loads(path.read_text())) for name in metric_names(expr)}

    assert used, path.name
    assert used - known == set()


def test_alert_rules_query_only_metrics_that_exist(manifests: list[Manifest]) -> None:
    known = code_metrics() | set(EXTERNAL_METRICS)
    used = {name for expr in rule_exprs(manifests) for name in metric_names(expr)}

    assert used - known == set()


def test_the_alerts_that_matter_are_defined(manifests: list[Manifest]) -> None:
    alerts = {
        r["alert"]: r
        for m in manifests
        if m["kind"] == "PrometheusRule"
        for g in m["spec"]["groups"]
        for r in g["rules"]
    }

    assert {
        "RagstreamConsumerLagGrowing",
        "RagstreamDeadLetters",
        "RagstreamJobFailureRatioHigh",
        "RagstreamChatAnswerSlow",
    } <= set(alerts)
    assert alerts["RagstreamConsumerLagGrowing"]["for"] == "10m"


def test_every_dashboard_is_provisioned_by_the_manifests(manifests: list[Manifest]) -> None:
    (provisioned,) = [
        m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "ragstream-dashboards"
    ]

    assert provisioned["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(provisioned["data"]) == {p.name for p in DASHBOARDS}
    for path in DASHBOARDS:
        assert json.loads(provisioned["data"][path.name]) == json.loads(path.read_text())


def test_a_query_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        metric_names("sum(rate(ragstream_messages_total[5m])")


def test_metric_name_extraction_ignores_labels_functions_and_groupings() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, stage) (rate(x_bucket{stage="a"}[5m]))) > 1 and y offset 5m'

    assert metric_names(expr) == {"x_bucket", "y"}


def test_kustomization_of_dashboards_lists_every_json_file() -> None:
    listed = yaml.safe_load((GRAFANA / "kustomization.yaml").read_text())["configMapGenerator"][0]["files"]

    assert sorted(listed) == sorted(p.name for p in DASHBOARDS)
