"""Rate limits and quotas on the real stack in ``keys`` mode: a tenant whose admin sets low limits
gets 429 (with Retry-After) on upload at the gateway and on chat at the chat service, both reading
the limits the gateway stored, while another tenant keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

from .conftest import E2E_ENV, OUTPUT, print_log_tails

GATEWAY, CHAT = "ingest-gateway", "chat"


@pytest.fixture(scope="module")
def limits_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    log_dir = OUTPUT / "logs-limits"
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    env = {**E2E_ENV, "RAGSTREAM_AUTH_MODE": "keys"}
    stack = Stack(data_dir=tmp_path_factory.mktemp("limits"), log_dir=log_dir, env=env).start()
    yield stack
    stack.stop()
    if request.session.testsfailed:
        print_log_tails(log_dir)


def admin_key(stack: Stack, tenant: str) -> str:
    """The first admin key of a new tenant, made by the operator's command."""
    command = ["create-key", "--tenant", tenant, "--role", "admin", "--account", new_id("admin")]
    done = subprocess.run(
        [sys.executable, "-m", "ragstream_gateway", *command],
        env=stack.service_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    key: str = json.loads(done.stdout)["key"]
    return key


async def upload(http: httpx.AsyncClient, stack: Stack, key: str, name: str) -> httpx.Response:
    return await http.post(
        f"{stack.url(GATEWAY)}/v1/collections/notes/documents",
        files={"file": (name, f"# {name}\n\nA short note.\n".encode())},
        headers={"Authorization": f"Bearer {key}"},
    )


async def ask(http: httpx.AsyncClient, stack: Stack, key: str) -> httpx.Response:
    return await http.post(
        f"{stack.url(CHAT)}/v1/collections/notes/chat",
        json={"question": "What is in the note?"},
        headers={"Authorization": f"Bearer {key}"},
    )


async def test_a_tenants_low_limits_give_429_on_upload_and_chat_while_another_tenant_works(
    limits_stack: Stack,
) -> None:
    stack = limits_stack
    limited, other = admin_key(stack, new_id("tenant-low")), admin_key(stack, new_id("tenant-other"))
    async with httpx.AsyncClient(timeout=60) as http:
        changed = await http.put(
            f"{stack.url(GATEWAY)}/v1/tenant/limits",
            json={"upload_per_key": 1, "chat_per_key": 1},
            headers={"Authorization": f"Bearer {limited}"},
        )
        assert changed.status_code == 200, changed.text

        uploads = [await upload(http, stack, limited, f"n{n}.md") for n in range(2)]
        questions = [await ask(http, stack, limited) for _ in range(2)]
        others = [(await upload(http, stack, other, f"o{n}.md")).status_code for n in range(2)]
        other_questions = [(await ask(http, stack, other)).status_code for _ in range(2)]
        metrics = (await http.get(f"{stack.url(CHAT)}/metrics")).text

    assert uploads[0].status_code == 202, uploads[0].text
    assert uploads[1].status_code == 429, uploads[1].text
    assert int(uploads[1].headers["retry-after"]) >= 1
    assert (uploads[1].json()["limit"], uploads[1].json()["action"]) == ("key", "upload")
    assert questions[0].status_code == 200, questions[0].text
    assert questions[1].status_code == 429, questions[1].text
    assert (questions[1].json()["limit"], questions[1].json()["action"]) == ("key", "chat")
    assert others == [202, 202]
    assert other_questions == [200, 200]
    assert 'ragstream_rate_limited_total{action="chat",limit="key"} 1.0' in metrics
