"""Helpers of the end-to-end tests and the benchmark: a client of the REST APIs, test documents."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from typing import Any

import httpx

from ragstream_devstack.stack import Stack

#: extensions the parser reads in this version (legacy Office and OpenDocument through LibreOffice)
SUPPORTED = (
    ".pdf",
    ".docx",
    ".pptx",
    ".xlsx",
    ".xlsm",
    ".html",
    ".htm",
    ".md",
    ".txt",
    ".csv",
    ".parquet",
    ".doc",
    ".xls",
    ".ppt",
    ".odt",
    ".ods",
    ".odp",
    ".eml",
    ".vtt",
)


#: job statuses after which nothing more happens
FINAL = frozenset({"indexed", "failed", "deleted", "cancelled"})


class Client:
    """The REST APIs of the running system, as a user's client sees them."""

    def __init__(self, stack: Stack, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.http = http

    async def upload(self, collection: str, name: str, data: bytes, **params: Any) -> httpx.Response:
        return await self.http.post(
            f"{self.stack.url('ingest-gateway')}/v1/collections/{collection}/documents",
            files={"file": (name, data)},
            params=params,
        )

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.stack.url('progress')}/v1/jobs/{job_id}")
        if response.status_code == 404:
            return {"status": "unknown"}
        response.raise_for_status()
        return dict(response.json())

    async def wait_done(self, job_ids: list[str], *, within_s: float = 180.0) -> list[dict[str, Any]]:
        """Poll until every job is indexed or failed, at the progress service and in the gateway's
        version registry (two projections of the same events, each behind its own consumer: a
        test that reads the gateway next must not see a job the gateway still thinks runs); fail
        with the stragglers' state."""
        deadline = time.monotonic() + within_s
        jobs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            jobs = [await self.job(j) for j in job_ids]
            if all(j["status"] in FINAL for j in jobs):
                break
            await asyncio.sleep(0.25)
        else:
            pending = [(j.get("file_name"), j["status"]) for j in jobs if j["status"] not in FINAL]
            raise AssertionError(f"jobs not done within {within_s}s: {pending}")
        running: list[str] = []
        while time.monotonic() < deadline:
            running = [j for j in job_ids if await self._gateway_runs(j)]
            if not running:
                return jobs
            await asyncio.sleep(0.1)
        raise AssertionError(f"jobs done at the progress service still run in the gateway's registry: {running}")

    async def _gateway_runs(self, job_id: str) -> bool:
        """Whether the gateway's registry still has the job's version processing (a delete's job,
        or a key that may not look, has nothing there to wait for)."""
        response = await self.http.get(f"{self.stack.url('ingest-gateway')}/v1/jobs/{job_id}/control")
        return response.status_code == 200 and response.json()["status"] == "processing"

    async def chat(self, collection: str, question: str, *, top_k: int | None = None) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.stack.url('chat')}/v1/collections/{collection}/chat", json={"question": question, "top_k": top_k}
        )
        response.raise_for_status()
        return dict(response.json())

    async def points(self, document_id: str, tenant: str = "default") -> dict[str, int]:
        response = await self.http.get(
            f"{self.stack.url('embedder')}/v1/tenants/{tenant}/documents/{document_id}/points"
        )
        response.raise_for_status()
        return dict(response.json()["versions"])


_VOCABULARY = (
    "river stone harbor signal maple copper lantern orbit meadow canyon pixel falcon velvet quarry "
    "summit thunder willow ember glacier prairie beacon cobalt delta fjord garnet horizon ivory jasper"
)
_WORDS = _VOCABULARY.split()


def operator_key(stack: Stack, tenant: str, role: str, account: str) -> dict[str, str]:
    """A tenant's key made by the operator's command (``create-key``: the first key of a new
    tenant; the tenant and account are made if new): ``tenant_id``, ``account_id``, ``role``,
    ``key_id`` and ``key``."""
    command = ["-m", "ragstream_gateway", "create-key", "--tenant", tenant, "--role", role, "--account", account]
    done = subprocess.run(
        [sys.executable, *command],
        env=stack.service_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    created: dict[str, str] = json.loads(done.stdout)
    return created


def long_markdown(seed: int, *, sections: int = 12, sentences: int = 30) -> bytes:
    """A distinct, long Markdown document (many chunks) for crash tests."""
    rng = random.Random(seed)
    parts = [f"# Report {seed}\n"]
    for s in range(sections):
        parts.append(f"\n## Section {s} of report {seed}\n")
        for _ in range(sentences):
            parts.append(" ".join(rng.choice(_WORDS) for _ in range(12)).capitalize() + ". ")
    return "".join(parts).encode()
