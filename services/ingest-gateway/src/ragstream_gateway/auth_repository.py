"""The gateway's writes of ``auth``: tenants, accounts (members) and API keys, each audited.

Only the gateway writes these tables; every service reads keys through
``ragstream_core.auth.KeyStore``. A key's secret exists only in the answer that creates it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth import BOOTSTRAP_ACCOUNT, BOOTSTRAP_KEY_ID, Principal, Role, key_hash, new_key, role_rank
from ragstream_core.errors import Conflict, NotFound, UnprocessableInput
from ragstream_gateway.repository import audit

_KEY_COLUMNS = (
    "key_id, tenant_id, account_id, role, name, created_at, created_by, expires_at, revoked_at, revoked_by,"
    " collection_ids, origins"
)
_ACCOUNT_COLUMNS = "tenant_id, account_id, role, display_name, created_at, created_by, disabled_at"


class AuthRepository:
    """Tenants, accounts and keys; every query is scoped by tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def ensure_account(
        self, conn: AsyncConnection[Any], tenant_id: str, account_id: str, role: Role, *, actor: str
    ) -> None:
        """The tenant and the account exist (created with ``role`` if new; an existing one keeps its own)."""
        await conn.execute("INSERT INTO auth.tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))
        await conn.execute(
            "INSERT INTO auth.accounts (tenant_id, account_id, role, created_by) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (tenant_id, account_id, role, actor),
        )

    async def create_account(
        self, tenant_id: str, account_id: str, role: Role, *, display_name: str, actor: str
    ) -> dict[str, Any]:
        """A new member of the tenant; 409 if the account id is taken."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO auth.tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))
            cur = await conn.execute(
                "INSERT INTO auth.accounts (tenant_id, account_id, role, display_name, created_by)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING account_id",
                (tenant_id, account_id, role, display_name, actor),
            )
            if await cur.fetchone() is None:
                raise Conflict(f"the account {account_id!r} exists already", account_id=account_id)
            await audit(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="account.create",
                outcome="ok",
                target=account_id,
                role=role,
            )
        return await self.account(tenant_id, account_id)

    async def account(self, tenant_id: str, account_id: str) -> dict[str, Any]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM auth.accounts WHERE tenant_id = %s AND account_id = %s",
                (tenant_id, account_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"account {account_id!r} is not known")
        return row

    async def accounts(self, tenant_id: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM auth.accounts WHERE tenant_id = %s ORDER BY account_id", (tenant_id,)
            )
            return await cur.fetchall()

    async def change_account(
        self, tenant_id: str, account_id: str, *, role: Role | None, disabled: bool | None, actor: str
    ) -> dict[str, Any]:
        """Change a member's role or disable it (its keys stop working: the weaker role applies)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE auth.accounts SET role = coalesce(%s, role),"
                " disabled_at = CASE WHEN %s::boolean IS NULL THEN disabled_at"
                " WHEN %s THEN coalesce(disabled_at, now()) ELSE NULL END"
                " WHERE tenant_id = %s AND account_id = %s RETURNING account_id",
                (role, disabled, disabled, tenant_id, account_id),
            )
            if await cur.fetchone() is None:
                raise NotFound(f"account {account_id!r} is not known")
            await audit(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="account.change",
                outcome="ok",
                target=account_id,
                role=role,
                disabled=disabled,
            )
        return await self.account(tenant_id, account_id)

    async def create_key(
        self,
        tenant_id: str,
        account_id: str,
        role: Role,
        *,
        name: str,
        expires_at: datetime | None,
        actor: str,
        create_account: bool = False,
        collection_ids: list[str] | None = None,
        origins: list[str] | None = None,
    ) -> dict[str, Any]:
        """A new key of an account, at most as strong as the account; the answer holds the key, once."""
        key_id, key = new_key()
        async with self.pool.connection() as conn, conn.transaction():
            if create_account:
                await self.ensure_account(conn, tenant_id, account_id, role, actor=actor)
            cur = await conn.execute(
                "SELECT role, disabled_at FROM auth.accounts WHERE tenant_id = %s AND account_id = %s",
                (tenant_id, account_id),
            )
            account = await cur.fetchone()
            if account is None:
                raise NotFound(f"account {account_id!r} is not known: create it with POST /v1/accounts first")
            if account[1] is not None:
                raise Conflict(f"account {account_id!r} is disabled")
            if role_rank(role) > role_rank(account[0]):
                raise UnprocessableInput(
                    f"a key of account {account_id!r} can have at most its role {account[0]!r}, not {role!r}"
                )
            await conn.execute(
                "INSERT INTO auth.api_keys"
                " (key_id, key_hash, tenant_id, account_id, role, name, created_by, expires_at,"
                " collection_ids, origins)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (key_id, key_hash(key), tenant_id, account_id, role, name, actor, expires_at, collection_ids, origins),
            )
            await audit(conn, tenant_id=tenant_id, actor=actor, action="key.create", outcome="ok", target=key_id)
        return {**await self.key(tenant_id, key_id), "key": key}

    async def create_session(self, caller: Principal, *, ttl_s: float) -> dict[str, Any]:
        """A short-lived key of the caller's account with the caller's role (sessions expired for a
        day are deleted on the way: they are no use to anyone)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM auth.api_keys WHERE tenant_id = %s AND name = 'session'"
                " AND expires_at < now() - interval '1 day'",
                (caller.tenant_id,),
            )
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
        return await self.create_key(
            caller.tenant_id, caller.actor, caller.role, name="session", expires_at=expires_at, actor=caller.actor
        )

    async def key(self, tenant_id: str, key_id: str) -> dict[str, Any]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_KEY_COLUMNS} FROM auth.api_keys WHERE tenant_id = %s AND key_id = %s", (tenant_id, key_id)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"API key {key_id!r} is not known")
        return row

    async def keys(self, tenant_id: str, *, account_id: str | None = None) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_KEY_COLUMNS} FROM auth.api_keys WHERE tenant_id = %s"
                " AND (%s::text IS NULL OR account_id = %s) ORDER BY created_at DESC",
                (tenant_id, account_id, account_id),
            )
            return await cur.fetchall()

    async def revoke_key(self, tenant_id: str, key_id: str, *, actor: str) -> dict[str, Any]:
        """Revoke a key (again: no change); it is refused everywhere within the key cache's time."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE auth.api_keys SET revoked_at = coalesce(revoked_at, now()),"
                " revoked_by = coalesce(revoked_by, %s) WHERE tenant_id = %s AND key_id = %s RETURNING key_id",
                (actor, tenant_id, key_id),
            )
            if await cur.fetchone() is None:
                raise NotFound(f"API key {key_id!r} is not known")
            await audit(conn, tenant_id=tenant_id, actor=actor, action="key.revoke", outcome="ok", target=key_id)
        return await self.key(tenant_id, key_id)

    async def end_session(self, caller: Principal) -> dict[str, Any]:
        """Revoke the caller's own session key (again: no change); 422 if its key is not a session."""
        if caller.key_id is None:
            raise UnprocessableInput("no session to end: this gateway checks no keys (RAGSTREAM_AUTH_MODE=open)")
        row = await self.key(caller.tenant_id, caller.key_id)
        if row["name"] != "session" or row["expires_at"] is None:
            raise UnprocessableInput(
                f"the key {caller.key_id} is not a session: DELETE /v1/sessions/current ends a session made by"
                " POST /v1/sessions; an admin revokes API keys with DELETE /v1/keys/{key_id}"
            )
        return await self.revoke_key(caller.tenant_id, caller.key_id, actor=caller.actor)

    async def tenant_origins(self, tenant_id: str) -> list[str]:
        """The browser origins ``tenant_id`` allows besides the global list, sorted."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT origin FROM auth.tenant_origins WHERE tenant_id = %s ORDER BY origin", (tenant_id,)
            )
            return [str(row[0]) for row in await cur.fetchall()]

    async def set_tenant_origins(self, tenant_id: str, origins: list[str], *, actor: str) -> list[str]:
        """Replace the tenant's browser origins with ``origins`` (idempotent), audited with what was
        added and removed."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO auth.tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))
            cur = await conn.execute(
                "SELECT origin FROM auth.tenant_origins WHERE tenant_id = %s FOR UPDATE", (tenant_id,)
            )
            before = {str(row[0]) for row in await cur.fetchall()}
            after = set(origins)
            await conn.execute(
                "DELETE FROM auth.tenant_origins WHERE tenant_id = %s AND NOT (origin = ANY (%s))",
                (tenant_id, sorted(after)),
            )
            for origin in sorted(after - before):
                await conn.execute(
                    "INSERT INTO auth.tenant_origins (tenant_id, origin, created_by) VALUES (%s, %s, %s)",
                    (tenant_id, origin, actor),
                )
            await audit(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="tenant.origins",
                outcome="ok",
                target=tenant_id,
                added=sorted(after - before),
                removed=sorted(before - after),
            )
        return sorted(after)

    async def install_bootstrap_key(self, tenant_id: str, key: str) -> None:
        """Make ``key`` (from configuration) the admin key ``rs_live_bootstrap`` of ``tenant_id``.

        Idempotent; a changed key replaces the previous one (rotation: change it and restart).
        """
        async with self.pool.connection() as conn, conn.transaction():
            await self.ensure_account(conn, tenant_id, BOOTSTRAP_ACCOUNT, "admin", actor="configuration")
            await conn.execute(
                "INSERT INTO auth.api_keys (key_id, key_hash, tenant_id, account_id, role, name, created_by)"
                " VALUES (%s, %s, %s, %s, 'admin', 'bootstrap (RAGSTREAM_BOOTSTRAP_ADMIN_KEY)', 'configuration')"
                " ON CONFLICT (key_id) DO UPDATE SET key_hash = excluded.key_hash, tenant_id = excluded.tenant_id,"
                " account_id = excluded.account_id,"
                # a revoked bootstrap key stays revoked until the configuration gives a new one
                " revoked_at = CASE WHEN auth.api_keys.key_hash = excluded.key_hash THEN auth.api_keys.revoked_at END,"
                " revoked_by = CASE WHEN auth.api_keys.key_hash = excluded.key_hash THEN auth.api_keys.revoked_by END",
                (BOOTSTRAP_KEY_ID, key_hash(key), tenant_id, BOOTSTRAP_ACCOUNT),
            )
