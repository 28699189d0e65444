"""``ragstream secrets rotate`` against the real PostgreSQL: reseals with the first key, says what it did."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from ragstream_chat.collection_settings import CollectionChat, CollectionEndpoint, CollectionStore, secret_context
from ragstream_core.secrets import SecretBox, generate_key
from ragstream_devstack.servers import Postgres, python_env
from ragstream_devstack.testing import migrated_pool, new_id

BASE_URL = "https://llm.example.com/v1"
API_KEY = "sk-rotate-" + new_id("key")


async def _store_sealed(url: str, tenant: str, collection: str, key: str) -> None:
    sealed = SecretBox.from_config(key).seal(API_KEY, context=secret_context(tenant, collection, BASE_URL))
    async with migrated_pool(url, service="chat", package="ragstream_chat") as pool:
        endpoint = CollectionEndpoint(BASE_URL, "m", sealed, API_KEY[-4:])
        await CollectionStore(pool).put_settings(tenant, collection, CollectionChat("openai", endpoint=endpoint))


async def _key_id_of(url: str, tenant: str, collection: str) -> str:
    async with migrated_pool(url, service="chat", package="ragstream_chat") as pool, pool.connection() as conn:
        cur = await conn.execute(
            "SELECT api_key_key_id FROM chat.collection_settings WHERE tenant_id = %s AND collection_id = %s",
            (tenant, collection),
        )
        row = await cur.fetchone()
    assert row is not None
    return str(row[0])


def ragstream(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ragstream_cli", *args]
    return subprocess.run(command, env=python_env(env), capture_output=True, text=True, timeout=120)


def test_rotate_reseals_with_the_first_key_and_reports_counts(postgres: Postgres, tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    tenant, collection = new_id("tenant"), new_id("col")
    asyncio.run(_store_sealed(postgres.url, tenant, collection, old))
    env = {"RAGSTREAM_POSTGRES_URL": postgres.url, "RAGSTREAM_SECRET_KEYS": f"{new},{old}",
           "XDG_CONFIG_HOME": str(tmp_path)}  # fmt: skip

    first = ragstream("secrets", "rotate", "--json", env=env)
    second = ragstream("secrets", "rotate", "--json", env=env)

    report, again = json.loads(first.stdout), json.loads(second.stdout)
    # only this test's secret opens with these keys; others (other tests' keys) are unreadable: exit 1
    assert report["rotated"] == 1, first.stdout + first.stderr
    assert first.returncode == (1 if report["unreadable"] else 0)
    assert collection not in [u["collection_id"] for u in report["unreadable"]]
    assert (again["rotated"], again["current"]) == (0, 1)
    assert asyncio.run(_key_id_of(postgres.url, tenant, collection)) == SecretBox.from_config(new).key_ids[0]
    assert API_KEY not in first.stdout + first.stderr
    assert old not in first.stdout + first.stderr


def test_rotate_without_keys_is_a_usage_error_saying_what_to_set(postgres: Postgres, tmp_path: Path) -> None:
    env = {"RAGSTREAM_POSTGRES_URL": postgres.url, "RAGSTREAM_SECRET_KEYS": "", "XDG_CONFIG_HOME": str(tmp_path)}

    ran = ragstream("secrets", "rotate", env=env)

    assert ran.returncode == 2
    assert "RAGSTREAM_SECRET_KEYS is not set" in ran.stderr
