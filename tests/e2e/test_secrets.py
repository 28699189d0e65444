"""Secrets never appear in logs, traces or error messages.

A stack of its own runs with secrets configured: the API key of the OpenAI-compatible provider
(whose fake endpoint refuses it and, like a careless provider, quotes it back), a collection's
own provider API key (set through the chat settings, stored sealed), the key that seals it (the
stack's generated ``RAGSTREAM_SECRET_KEYS``) and a password in the PostgreSQL URL. Uploads, bad
uploads, chats (JSON, streamed and OpenAI-compatible) that fail at the provider and the readiness
pages (also with PostgreSQL stopped) are exercised; then every service log, the traces file,
every response body, the audit log and the stored settings are searched for the secrets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from ragstream_devstack.identity import identity_headers
from ragstream_devstack.stack import SERVICES, Stack
from ragstream_devstack.testing import eventually, new_id

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "e2e" / "logs-secrets"
API_KEY = "sk-ragstream-" + new_id("apikey")
DB_PASSWORD = "pw-" + new_id("dbpass")
COLLECTION_KEY = "sk-collection-" + new_id("apikey")


class _RefusingProvider(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that refuses every key with OpenAI's 401 error object,
    quoting the key it was sent (the worst a provider may do)."""

    authorizations: list[str] = []  # noqa: RUF012 - one server per module

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        sent = self.headers.get("Authorization", "")
        self.authorizations.append(sent)
        body = json.dumps(
            {
                "error": {
                    "message": f"Incorrect API key provided: {sent.removeprefix('Bearer ')}.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[str, list[str]]]:
    _RefusingProvider.authorizations = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", _RefusingProvider.authorizations
    server.shutdown()


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname or ""
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
def secret_stack(
    tmp_path: Path, unstarted_stack: Callable[[Path, Path], Stack], provider: tuple[str, list[str]]
) -> Iterator[Stack]:
    for old in OUTPUT.glob("*.log"):
        old.unlink()
    stack = unstarted_stack(tmp_path / "data", OUTPUT)
    stack.env.update(
        {
            "RAGSTREAM_CHAT_PROVIDER": "openai",
            "RAGSTREAM_CHAT_OPENAI_BASE_URL": provider[0],
            "RAGSTREAM_CHAT_OPENAI_MODEL": "gpt-fake",
            "RAGSTREAM_CHAT_OPENAI_API_KEY": API_KEY,
            "RAGSTREAM_LOG_LEVEL": "DEBUG",
        }
    )
    try:
        stack.start_servers()
        assert stack.postgres is not None
        stack.env["RAGSTREAM_POSTGRES_URL"] = with_password(stack.postgres.url, DB_PASSWORD)
        stack.start_services()
        yield stack
    finally:
        stack.stop()


async def test_no_secret_appears_in_logs_traces_or_error_bodies(
    secret_stack: Stack, provider: tuple[str, list[str]]
) -> None:
    tenant = new_id("secrets")
    headers = identity_headers(tenant)
    gateway, chat = secret_stack.url("ingest-gateway"), secret_stack.url("chat")
    bodies: list[str] = []
    async with httpx.AsyncClient(timeout=60) as http:

        async def keep(response: httpx.Response) -> httpx.Response:
            bodies.append(f"{response.request.method} {response.request.url} {response.status_code} {response.text}")
            return response

        uploaded = await keep(
            await http.post(
                f"{gateway}/v1/collections/docs/documents",
                files={"file": ("harbor.md", b"# Harbor\n\nThe harbor opens at dawn for the fleet.")},
                headers=headers,
            )
        )
        assert uploaded.status_code == 202, uploaded.text
        job_id = uploaded.json()["job_id"]
        job = await eventually(
            lambda: http.get(f"{secret_stack.url('progress')}/v1/jobs/{job_id}", headers=headers),
            until=lambda r: r.status_code == 200 and r.json()["status"] in {"indexed", "failed"},
            within_s=180,
            interval_s=0.3,
        )
        assert job.json()["status"] == "indexed", job.text
        await keep(
            await http.post(
                f"{gateway}/v1/collections/docs/documents", files={"file": ("x.rtf", b"{\\rtf1}")}, headers=headers
            )
        )
        answer = await keep(
            await http.post(
                f"{chat}/v1/collections/docs/chat", json={"question": "When does the harbor open?"}, headers=headers
            )
        )
        assert answer.status_code >= 500, f"the provider refused the key; chat should fail: {answer.text}"
        streamed = await keep(
            await http.post(
                f"{chat}/v1/collections/docs/chat",
                json={"question": "When does the harbor open?", "stream": True},
                headers=headers,
            )
        )
        assert "error" in streamed.text, streamed.text
        # the provider's quote of the key reached chat's error, with the key replaced
        assert "Incorrect API key provided: ***" in streamed.text, streamed.text
        service_calls = len(provider[1])
        # the collection's own endpoint and key: write-only, sent to its provider, never shown
        settings = await keep(
            await http.put(
                f"{chat}/v1/collections/docs/chat/settings",
                json={"provider": "openai", "openai_base_url": provider[0], "openai_model": "gpt-own",
                      "api_key": COLLECTION_KEY},
                headers=headers,
            )
        )  # fmt: skip
        assert settings.status_code == 200, settings.text
        assert settings.json()["api_key_set"] is True, settings.text
        await keep(await http.get(f"{chat}/v1/collections/docs/chat/settings", headers=headers))
        own = await keep(
            await http.post(
                f"{chat}/v1/collections/docs/chat", json={"question": "When does the harbor open?"}, headers=headers
            )
        )
        assert own.status_code == 503, own.text
        assert "Incorrect API key provided: ***" in own.text, own.text
        await keep(
            await http.post(
                f"{chat}/v1/collections/docs/chat",
                json={"question": "When does the harbor open?", "stream": True},
                headers=headers,
            )
        )
        await keep(
            await http.post(
                f"{chat}/v1/chat/completions",
                json={"model": "docs", "messages": [{"role": "user", "content": "When does the harbor open?"}]},
                headers=headers,
            )
        )
        collection_calls = provider[1][service_calls:]
        assert collection_calls, "chat never called the collection's provider"
        assert all(a == f"Bearer {COLLECTION_KEY}" for a in collection_calls), "not the collection's key"
        # at rest: sealed in chat's table; the audit log records the change without the key
        assert secret_stack.postgres is not None
        async with await psycopg.AsyncConnection.connect(secret_stack.postgres.url) as db:
            cur = await db.execute(
                "SELECT api_key_sealed, api_key_key_id FROM chat.collection_settings WHERE tenant_id = %s",
                (tenant,),
            )
            stored = await cur.fetchall()
            cur = await db.execute(
                "SELECT action || ' ' || detail::text FROM gateway.audit_log WHERE tenant_id = %s", (tenant,)
            )
            audit = "\n".join(row[0] for row in await cur.fetchall())
        assert len(stored) == 1, stored
        assert stored[0][0].startswith(f"rs1:{stored[0][1]}:"), stored
        assert "chat_settings.update" in audit, audit
        assert '"api_key_sent": true' in audit, audit
        for service in ("ingest-gateway", "progress", "chat"):
            await keep(await http.get(f"{secret_stack.url(service)}/readyz"))
        # PostgreSQL gone: the readiness pages and the API explain it, without the URL's password
        assert secret_stack.postgres is not None
        secret_stack.postgres.stop()
        for service in ("ingest-gateway", "progress", "chat"):
            ready = await keep(await http.get(f"{secret_stack.url(service)}/readyz"))
            assert ready.status_code == 503, f"{service} is ready without PostgreSQL: {ready.text}"
        down = await keep(await http.get(f"{gateway}/v1/collections/docs/documents", headers=headers))
        assert down.status_code >= 500, down.text
    assert provider[1], "chat never called the provider"
    assert all(a == f"Bearer {API_KEY}" for a in provider[1][:service_calls]), (
        "chat sent another key than the configured one"
    )

    secret_stack.stop()  # flushes every log line and buffered span
    sealing_key = (secret_stack.data_dir / "secret-keys").read_text().strip()
    assert sealing_key, "the stack generated no key sealing secrets"
    places = {"response bodies": "\n".join(bodies), "audit log": audit, "chat.collection_settings": repr(stored)}
    for spec in SERVICES:
        log = OUTPUT / f"{spec.name}.log"
        assert log.exists(), f"no log of {spec.name}"
        places[log.name] = log.read_text(errors="replace")
    traces = secret_stack.traces_file
    assert traces.exists(), "no traces were written"
    places["traces.jsonl"] = traces.read_text(errors="replace")

    leaks = [
        f"{secret_name} in {place}: …{text[max(0, text.index(secret) - 120) : text.index(secret) + 40]}…"
        for secret_name, secret in (
            ("the provider's API key", API_KEY),
            ("the PostgreSQL password", DB_PASSWORD),
            ("the collection's API key", COLLECTION_KEY),
            ("the key sealing secrets", sealing_key),
        )
        for place, text in places.items()
        if secret in text
    ]
    assert leaks == [], "secrets leaked:\n" + "\n".join(leaks)
