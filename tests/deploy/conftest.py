"""Rendered manifests of every overlay, for the deploy tests.

Rendering is real Kustomize: ``kubectl kustomize`` (Kustomize v5 is built into kubectl, which
this machine has installed). Without kubectl the tests that need a rendering fail and say what
to install: a missing renderer must not pass as validated manifests.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")

Manifest = dict[str, Any]


def render(overlay: str) -> list[Manifest]:
    """The objects ``kubectl kustomize deploy/k8s/overlays/<overlay>`` prints."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl (with its built-in Kustomize) is not installed: the manifests cannot be rendered; install"
            " kubectl (Kubernetes' apt repository, or the kubectl binary) to validate deploy/k8s"
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kustomize failed for {overlay}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_CACHE: dict[str, list[Manifest]] = {}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def manifests(overlay: str) -> list[Manifest]:
    if overlay not in _CACHE:
        _CACHE[overlay] = render(overlay)
    return _CACHE[overlay]
