"""Migrating a projection made before "released" existed keeps its jobs' order and stages."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg.conninfo import make_conninfo

from ragstream_core.db import apply_migrations
from ragstream_devstack.servers import Postgres
from ragstream_devstack.testing import new_id

BEFORE = ("001_jobs.sql", "002_change_feed.sql", "003_statuses.sql")


async def test_ranks_move_up_for_released_and_stages_are_filled_in(postgres: Postgres) -> None:
    name = new_id("migrate").replace("-", "_")
    async with await psycopg.AsyncConnection.connect(postgres.url, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(postgres.url, dbname=name)
    migrations = resources.files("ragstream_progress").joinpath("migrations")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE schema_migrations (service text NOT NULL, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (service, name))"
        )
        for file in BEFORE:
            await conn.execute(migrations.joinpath(file).read_text())
            await conn.execute("INSERT INTO schema_migrations VALUES ('progress', %s)", (file,))
        for job_id, status, rank, error_stage in (
            ("a", "uploaded", 0, None),
            ("b", "parsing", 1, None),
            ("c", "embedding", 3, None),
            ("d", "failed", 9, "embedding"),
            ("e", "indexed", 10, None),
        ):
            await conn.execute(
                "INSERT INTO progress.jobs (job_id, tenant_id, collection_id, document_id, version, file_name,"
                " status, stage_rank, pages, error_stage, created_at, updated_at)"
                " VALUES (%s, 't', 'c', 'd', 1, 'f', %s, %s, 3, %s, now(), now())",
                (job_id, status, rank, error_stage),
            )

    applied = await apply_migrations(url, service="progress", package="ragstream_progress")

    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT job_id, stage_rank, stage, pages_parsed FROM progress.jobs ORDER BY job_id")
        rows = await cur.fetchall()
    assert "004_runs_and_estimates.sql" in applied
    assert rows == [
        ("a", 0, "queued", 0),
        ("b", 2, "parsing", 0),
        ("c", 4, "embedding", 3),
        ("d", 9, "embedding", 0),
        ("e", 10, "indexed", 3),
    ]
