"""The engine sets' own behaviour: why the containers set cannot run, and unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstream_devstack.engine_sets import ENGINE_SETS, docker_unreachable, start_engine_set
from ragstream_devstack.servers import free_port


def test_a_docker_host_nobody_listens_on_is_reported_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")

    reason = docker_unreachable()

    assert "Connection refused" in reason or "ConnectionError" in reason, reason


def test_an_unknown_set_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown engine set 'qdrant-cloud'; known: " + ", ".join(ENGINE_SETS)):
        start_engine_set("qdrant-cloud", tmp_path)


def test_the_embedded_set_starts_nothing_and_names_its_engines(tmp_path: Path) -> None:
    engines = start_engine_set("embedded", tmp_path)

    assert engines.env == {"RAGSTREAM_EMBEDDER_ENGINE": "edge", "RAGSTREAM_OBJECT_STORE": "local"}
    assert (engines.nats_url, engines.qdrant_url, engines.s3) == ("", "", None)
    assert list(tmp_path.iterdir()) == []
