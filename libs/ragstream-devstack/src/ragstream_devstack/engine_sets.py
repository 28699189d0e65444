"""The engine sets the end-to-end suite runs on: the embedded ones, and production's.

- ``embedded``: ``make run``'s engines: the edge index, objects in a local directory, one
  nats-server (the stack's own).
- ``local-production``: what of production's shape runs without Docker: qdrant-client's local
  mode (``QdrantIndex``, the code a Qdrant server is driven by), objects on a real S3 server
  (SeaweedFS from its wheel, ``S3ObjectStore``) and a three-server JetStream cluster with R3
  streams (``RAGSTREAM_STREAM_REPLICAS=3``).
- ``containers``: production's engines, a Qdrant server and MinIO, started as containers with
  testcontainers at the image tags deploy/k8s runs, and the same NATS cluster. Needs a
  reachable Docker engine; without one the caller reports the variant as skipped
  (``docker_unreachable`` says why).

PostgreSQL is the devstack's own in every set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ragstream_devstack.nats_cluster import NatsCluster
from ragstream_devstack.s3 import SeaweedS3

__all__ = [
    "ENGINE_SETS",
    "MINIO_IMAGE",
    "QDRANT_IMAGE",
    "RUN_CONTAINERS",
    "EngineSet",
    "docker_unreachable",
    "start_engine_set",
]

ENGINE_SETS = ("embedded", "local-production", "containers")
#: the tags deploy/k8s/base/engines/{qdrant,minio}.yaml run
QDRANT_IMAGE = "qdrant/qdrant:v1.15.4"
MINIO_IMAGE = "minio/minio:RELEASE.2025-09-07T16-13-09Z"
#: what to run where Docker is present
RUN_CONTAINERS = "run `make e2e-containers` on a machine with Docker"
#: the collection layout the containers set asks the Qdrant server for (a single peer: 1 replica)
CONTAINER_LAYOUT = {"shard_number": 2, "replication_factor": 1, "write_consistency_factor": 1}
BUCKET = "ragstream-e2e"


def docker_unreachable() -> str:
    """Why no Docker engine can be used here ("" if one answers a ping)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure means: no engine to start containers on
        return f"{type(exc).__name__}: {exc}"
    return ""


@dataclass
class EngineSet:
    """The settings that point the services at one set of engines, and how to stop them."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    #: a Qdrant server's REST URL (``containers``), for tests that inspect it
    qdrant_url: str = ""
    #: S3 endpoint, access key, secret key and bucket (``local-production``, ``containers``)
    s3: tuple[str, str, str, str] | None = None
    #: the NATS cluster's URL for ``Stack(nats_url=...)``; empty: the stack starts its own server
    nats_url: str = ""
    _stops: list[Callable[[], object]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self._stops):
            with contextlib.suppress(Exception):
                stop()
        self._stops.clear()


def _s3_env(endpoint: str, access_key: str, secret_key: str) -> dict[str, str]:
    return {
        "RAGSTREAM_OBJECT_STORE": "s3",
        "RAGSTREAM_S3_ENDPOINT": endpoint,
        "RAGSTREAM_S3_ACCESS_KEY": access_key,
        "RAGSTREAM_S3_SECRET_KEY": secret_key,
        "RAGSTREAM_S3_BUCKET": BUCKET,
        "RAGSTREAM_S3_SECURE": "false",
    }


def start_engine_set(name: str, work_dir: Path) -> EngineSet:
    """Start the engines of set ``name`` (nothing for ``embedded``); ``stop()`` them afterwards.

    ``containers`` raises if no Docker engine answers: call ``docker_unreachable`` first.
    """
    if name == "embedded":
        return EngineSet(name, env={"RAGSTREAM_EMBEDDER_ENGINE": "edge", "RAGSTREAM_OBJECT_STORE": "local"})
    if name not in ENGINE_SETS:
        raise ValueError(f"unknown engine set {name!r}; known: {', '.join(ENGINE_SETS)}")
    engines = EngineSet(name)
    try:
        cluster = NatsCluster(work_dir / "nats").start()
        engines._stops.append(cluster.stop)
        engines.nats_url = cluster.url
        engines.env["RAGSTREAM_STREAM_REPLICAS"] = str(cluster.size)
        if name == "local-production":
            server = SeaweedS3(work_dir / "s3").start()
            engines._stops.append(server.stop)
            engines.s3 = (server.endpoint, server.access_key, server.secret_key, BUCKET)
            engines.env.update({"RAGSTREAM_EMBEDDER_ENGINE": "qdrant-local", **_s3_env(*engines.s3[:3])})
        else:
            _start_containers(engines)
    except BaseException:
        engines.stop()
        raise
    return engines


def _start_containers(engines: EngineSet) -> None:
    """Qdrant server and MinIO containers into ``engines`` (stopped by its ``stop``)."""
    from testcontainers.community.minio import MinioContainer
    from testcontainers.community.qdrant import QdrantContainer

    qdrant = QdrantContainer(image=QDRANT_IMAGE)
    qdrant.start()
    engines._stops.append(qdrant.stop)
    engines.qdrant_url = f"http://{qdrant.get_container_host_ip()}:{qdrant.get_exposed_port(6333)}"
    minio = MinioContainer(image=MINIO_IMAGE, access_key="ragstream", secret_key="ragstream-e2e-secret")
    # current MinIO reads the root credentials from these (the module sets the older names)
    minio.with_env("MINIO_ROOT_USER", minio.access_key).with_env("MINIO_ROOT_PASSWORD", minio.secret_key)
    minio.start()
    engines._stops.append(minio.stop)
    config = minio.get_config()
    engines.s3 = (str(config["endpoint"]), minio.access_key, minio.secret_key, BUCKET)
    engines.env.update(
        {
            "RAGSTREAM_EMBEDDER_QDRANT_URL": engines.qdrant_url,
            **{f"RAGSTREAM_EMBEDDER_QDRANT_{k.upper()}": str(v) for k, v in CONTAINER_LAYOUT.items()},
            **_s3_env(str(config["endpoint"]), minio.access_key, minio.secret_key),
        }
    )
