"""Schemathesis against the OpenAPI specs of the gateway, progress and chat, on the real stack.

Tenant A owns a document (with a unique name and text), its job and a conversation; the fuzzer
acts as tenant B. Every operation of each spec gets ``RAGSTREAM_FUZZ_EXAMPLES`` generated
requests (a few in ``make test``, many in ``make fuzz``), and each of those is sent a second time
with A's ids in its path, so that B also probes A's real documents, jobs and conversations.

Checks, and why these:
- ``not_a_server_error``: no 5xx, whatever the input (the point of the exercise).
- ``status_code_conformance``: every status a route answers is documented in its ``responses``,
  so clients can rely on the spec.
- ``response_schema_conformance`` / ``content_type_conformance``: documented bodies are what comes
  back.
- ours: no response to B contains A's document id, job id, conversation id, file name or text
  (an id B sent itself may be echoed in a 404's message; A's file name and text never may).
Not used: ``negative_data_rejection`` and ``positive_data_acceptance`` (they hold the server to
what the *generator* believes valid, but our validation is stricter than JSON Schema can say:
identifiers, tags and file contents are checked by rules the spec states in prose, so those
checks would report correct 4xx answers), ``max_response_time`` (speed belongs in benchmarks),
``use_after_free``/``ensure_resource_availability`` (stateful link checks; the spec has no links).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from ragstream_devstack.identity import identity_headers
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

FUZZ_LOGS = Path(__file__).resolve().parents[2] / "test-output" / "e2e" / "logs-fuzz"

#: generated requests per operation and mode: small in `make test`, large in `make fuzz`
EXAMPLES = int(os.environ.get("RAGSTREAM_FUZZ_EXAMPLES", "6"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
#: operations that cannot be fuzzed meaningfully, with the reason
EXCLUDED = {
    # a live feed: the response never ends, so there is no response to check (the feed's
    # filters are the same as GET /v1/jobs's, which is fuzzed)
    ("progress", "GET", "/v1/jobs/events"),
}
SERVICES = ("ingest-gateway", "progress", "chat")


class TenantA:
    """What tenant A owns; none of it may appear in a response to tenant B."""

    def __init__(self) -> None:
        self.tenant = new_id("tenant-a")
        self.collection = new_id("coll-a")
        self.marker = new_id("secretword")
        self.file_name = f"{self.marker}-plans.md"
        self.document_id = ""
        self.job_id = ""
        self.conversation_id = ""

    def tokens(self) -> list[str]:
        return [t for t in (self.document_id, self.job_id, self.conversation_id, self.marker, self.file_name) if t]

    def path_ids(self) -> dict[str, str]:
        return {
            "document_id": self.document_id,
            "job_id": self.job_id,
            "conversation_id": self.conversation_id,
            "collection_id": self.collection,
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, start_stack: Callable[..., Stack]) -> Iterator[Stack]:
    """The fuzz test's own stack (it overrides the shared one): its thousands of odd requests and
    the uploads they make stay out of the other tests' metrics, traces and queues."""
    running = start_stack(tmp_path_factory.mktemp("fuzz"), FUZZ_LOGS)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tenant_a(stack: Stack) -> TenantA:
    owner = TenantA()
    headers = identity_headers(owner.tenant)
    text = f"# Plans of {owner.marker}\n\nThe {owner.marker} launch happens in the harbor at dawn.\n"
    with httpx.Client(timeout=60) as http:
        response = http.post(
            f"{stack.url('ingest-gateway')}/v1/collections/{owner.collection}/documents",
            files={"file": (owner.file_name, io.BytesIO(text.encode()))},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        owner.document_id, owner.job_id = response.json()["document_id"], response.json()["job_id"]
        deadline = time.monotonic() + 180
        status = ""
        while time.monotonic() < deadline and status not in {"indexed", "failed"}:
            status = http.get(f"{stack.url('progress')}/v1/jobs/{owner.job_id}", headers=headers).json()["status"]
            time.sleep(0.3)
        assert status == "indexed", f"tenant A's document did not index: {status}"
        answer = http.post(
            f"{stack.url('chat')}/v1/collections/{owner.collection}/chat",
            json={"question": f"When is the {owner.marker} launch?"},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        owner.conversation_id = answer.json()["conversation_id"]
        assert owner.marker in answer.text, "tenant A's chat should cite its own document"
    return owner


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def _fuzz_operation(operation: Any, base_url: str, tenant_b: str, owner: TenantA, http: requests.Session) -> list[str]:
    """Run the generated cases of one operation; the failures found, one line each."""
    failures: list[str] = []
    overrides = {k: v for k, v in owner.path_ids().items() if k in _path_names(operation)}

    def check(case: Any, response: Any) -> None:
        try:
            case.validate_response(response, checks=CHECKS)
        except (FailureGroup, AssertionError) as exc:  # the checks' failures
            found = getattr(exc, "exceptions", [exc])
            reasons = "; ".join(" ".join(str(e).split())[:300] for e in found)
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {reasons}")
        # an id B itself sent may be echoed ("document 'x' is not known"); anything else of A's is a leak
        sent = f"{response.request.url} {response.request.body!r}"
        leaked = [t for t in owner.tokens() if t in response.text and t not in sent]
        if leaked:
            failures.append(f"{case.method} {case.formatted_path}: tenant B saw tenant A's {leaked}")

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = operation.as_strategy(generation_mode=mode)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            case.headers = {**(case.headers or {}), **identity_headers(tenant_b)}
            check(case, case.call(base_url=base_url, session=http, timeout=60))
            if overrides:
                case.path_parameters = {**(case.path_parameters or {}), **overrides}
                check(case, case.call(base_url=base_url, session=http, timeout=60))

        try:
            run()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                failures.append(f"{operation.method.upper()} {operation.path}: no valid request could be generated")
            # else: nothing of this operation can be made invalid (e.g. only free-text path ids)
        except Exception as exc:  # generation itself failed: report it, go on with the others
            failures.append(f"{operation.method.upper()} {operation.path}: could not fuzz: {exc!r}"[:600])
    return failures


def _path_names(operation: Any) -> set[str]:
    return {p.name for p in operation.path_parameters}


@pytest.mark.parametrize("service", SERVICES)
def test_fuzzing_as_another_tenant_finds_no_server_error_no_undocumented_answer_and_no_foreign_data(
    stack: Stack, tenant_a: TenantA, session: requests.Session, service: str
) -> None:
    base_url = stack.url(service)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    tenant_b = new_id("tenant-b")
    failures: list[str] = []
    fuzzed = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (service, operation.method.upper(), operation.path) in EXCLUDED:
            continue
        fuzzed += 1
        failures += _fuzz_operation(operation, base_url, tenant_b, tenant_a, session)

    assert fuzzed > 3, f"{service}'s spec has too few operations: {fuzzed}"
    assert not failures, f"{len(failures)} failures over {fuzzed} operations of {service}:\n" + "\n".join(
        dict.fromkeys(failures)
    )
