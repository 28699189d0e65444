"""``open`` mode (no keys) serves only on loopback; ``keys`` mode anywhere."""

from __future__ import annotations

import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth import authenticator_from
from ragstream_devstack.servers import Postgres


@pytest.fixture
async def pool(postgres: Postgres) -> AsyncConnectionPool:
    return AsyncConnectionPool(postgres.url, open=False)


async def test_open_mode_refuses_to_listen_beyond_loopback(pool: AsyncConnectionPool) -> None:
    with pytest.raises(SystemExit) as refused:
        authenticator_from(
            mode="open", cache_s=1, default_tenant="default", pool=pool, listen_hosts=("127.0.0.1", "0.0.0.0")
        )

    assert "RAGSTREAM_AUTH_MODE=keys" in str(refused.value)
    assert "0.0.0.0" in str(refused.value)


async def test_open_mode_serves_loopback_and_keys_mode_serves_anywhere(pool: AsyncConnectionPool) -> None:
    local = authenticator_from(mode="open", cache_s=1, default_tenant="default", pool=pool, listen_hosts=("::1",))
    exposed = authenticator_from(mode="keys", cache_s=1, default_tenant="default", pool=pool, listen_hosts=("0.0.0.0",))

    assert (local.mode, exposed.mode) == ("open", "keys")
