"""A real Prometheus scrapes the running services with deploy's alert rules loaded; after an
ingest, a failed document and a chat answer, every dashboard panel query and every alert rule
is evaluated through its HTTP API: each parses, and each returns series.

Panels about the engines (NATS, Qdrant, MinIO, Kubernetes) read the metrics of exporters that
do not run here (``EXPORTER_PANELS``): those are evaluated too, and must parse, but cannot
return series. An alert rule's expression returns series only while it fires, so for each rule
the expression is evaluated whole (it must parse) and every operand under its threshold
comparisons must return series; /api/v1/rules must show every rule loaded and healthy.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml

from ragstream_devstack.e2e import Client
from ragstream_devstack.observe import exercise
from ragstream_devstack.servers import free_port
from ragstream_devstack.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
MONITORING = ROOT / "deploy" / "k8s" / "base" / "monitoring.yaml"
#: panels whose metrics come from exporters of the engines, not from our services: (dashboard, panel title)
EXPORTER_PANELS = {
    ("infrastructure", "NATS connections per server"): "prometheus-nats-exporter",
    ("infrastructure", "JetStream stream messages and bytes"): "prometheus-nats-exporter",
    ("infrastructure", "Qdrant REST responses per second"): "Qdrant server /metrics",
    ("infrastructure", "Qdrant collections and vectors"): "Qdrant server /metrics",
    ("infrastructure", "MinIO usable capacity free"): "MinIO /minio/v2/metrics/cluster",
    ("infrastructure", "Pods not ready (ragstream namespace)"): "kube-state-metrics",
}
#: Grafana's template variables and what stands for them here
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$collection": ".*", "$stage": ".*"}
COMPARISONS = {">", "<", ">=", "<=", "==", "!="}


def alert_groups() -> list[dict[str, Any]]:
    """The rule groups of deploy's PrometheusRule, as a Prometheus rules file holds them."""
    rules = [d for d in yaml.safe_load_all(MONITORING.read_text()) if d and d["kind"] == "PrometheusRule"]
    return [group for rule in rules for group in rule["spec"]["groups"]]


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every target of every panel."""
    queries = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                queries.append((path.stem, panel["title"], expr))
    return queries


def operands(expr: str) -> list[str]:
    """The parts of an alert expression below its threshold comparisons and set operators."""

    def visit(node: Any) -> list[str]:
        if isinstance(node, promql_parser.BinaryExpr):
            op = str(node.op)
            if op in ("and", "or", "unless"):
                return visit(node.lhs) + visit(node.rhs)
            if op in COMPARISONS and isinstance(node.rhs, promql_parser.NumberLiteral):
                return visit(node.lhs)
        return [str(node)]

    return visit(promql_parser.parse(expr))


class Prometheus:
    """A Prometheus server scraping ``targets`` every second, with ``rules`` loaded."""

    def __init__(self, workdir: Path, targets: dict[str, str], rules: list[dict[str, Any]]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail(
                "prometheus is not installed: the dashboard queries and alert rules cannot be evaluated;"
                " install the Debian package `prometheus` (`make system-deps` does, as root)"
            )
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rules_file = workdir / "rules.yml"
        self.rules_file.write_text(yaml.safe_dump({"groups": rules}))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.rules_file)],
            "scrape_configs": [
                # `container` as the Prometheus Operator labels a pod's series (container = service)
                {"job_name": name, "static_configs": [{"targets": [target], "labels": {"container": name}}]}
                for name, target in targets.items()
            ],
        }
        self.config_file = workdir / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.workdir = workdir
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.workdir / "prometheus.log").read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("Prometheus not ready within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    targets = {name: f"127.0.0.1:{port}" for name, port in stack.ports.items()}
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), targets, alert_groups()).start()
    yield server
    server.stop()


async def query(http: httpx.AsyncClient, prometheus: Prometheus, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query; fails with Prometheus' error if it does not parse."""
    response = await http.get(f"{prometheus.url}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200, f"{expr!r}: {body.get('errorType')}: {body.get('error')}"
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def eventually_series(http: httpx.AsyncClient, prometheus: Prometheus, expr: str, *, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await query(http, prometheus, expr):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{expr!r} returned no series within {within_s}s")


@pytest.fixture(scope="module")
async def scraped_workload(stack: Stack, prometheus: Prometheus) -> Prometheus:
    """Prometheus after it scraped the workload's metrics a few times (rates need two samples)."""
    async with httpx.AsyncClient(timeout=60) as http:
        await eventually_series(http, prometheus, 'up{job="chat"} == 1', within_s=30)
        await exercise(Client(stack, http))
        await eventually_series(
            http, prometheus, "rate(ragstream_job_upload_to_indexed_seconds_count[1m]) > 0", within_s=30
        )
        await eventually_series(http, prometheus, "rate(ragstream_chat_answer_seconds_count[1m]) > 0", within_s=30)
    return prometheus


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: install the Debian package `prometheus` (it ships promtool)")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": alert_groups()}))

    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in alert_groups())} rules found" in result.stdout


@pytest.mark.parametrize(
    ("dashboard", "title", "expr"), panel_queries(), ids=[f"{d}:{t[:40]}" for d, t, _ in panel_queries()]
)
async def test_every_panel_query_returns_series(
    scraped_workload: Prometheus, dashboard: str, title: str, expr: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        result = await query(http, scraped_workload, expr)

    if (dashboard, title) in EXPORTER_PANELS:
        assert result == [], f"{title!r} reads {EXPORTER_PANELS[dashboard, title]}, which does not run here"
    else:
        assert result, f"{dashboard}/{title}: {expr!r} returned no series"


@pytest.mark.parametrize(
    "rule", [r for g in alert_groups() for r in g["rules"]], ids=lambda r: str(r.get("alert", r.get("record")))
)
async def test_every_alert_rule_parses_and_its_operands_return_series(
    scraped_workload: Prometheus, rule: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        await query(http, scraped_workload, rule["expr"])
        empty = [part for part in operands(rule["expr"]) if not await query(http, scraped_workload, part)]

    assert empty == [], f"{rule['alert']}: no series for {empty}"


async def test_prometheus_loaded_every_rule_and_evaluates_it_healthily(scraped_workload: Prometheus) -> None:
    expected = {r["alert"] for g in alert_groups() for r in g["rules"]}
    deadline = time.monotonic() + 30
    rules: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            body = (await http.get(f"{scraped_workload.url}/api/v1/rules")).json()
            rules = [r for g in body["data"]["groups"] for r in g["rules"]]
            if {r["name"] for r in rules} == expected and all(
                r.get("lastEvaluation", "").startswith("2") for r in rules
            ):
                break
            await asyncio.sleep(0.5)

    assert {r["name"] for r in rules} == expected
    assert {r["name"]: r["health"] for r in rules} == dict.fromkeys(expected, "ok")


def test_operands_split_an_alert_at_its_thresholds_and_set_operators() -> None:
    expr = "delta(a[10m]) > 0 and b > 50 or sum(c) / clamp_min(sum(d), 1e-9) > 0.05"

    assert [p.replace("{}", "") for p in operands(expr)] == [
        "delta(a[10m])",
        "b",
        "sum(c) / clamp_min(sum(d), 0.000000001)",
    ]
