"""PostgreSQL and object store parts, and the manifest checks, against real servers."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from ragstream_core.hashing import sha256_file
from ragstream_core.settings import CoreSettings
from ragstream_core.storage import LocalObjectStore, S3ObjectStore
from ragstream_devstack.s3 import SeaweedS3
from ragstream_devstack.servers import Postgres
from ragstream_devstack.testing import new_id
from ragstream_ops.backup import TargetNotEmpty, backup, restore
from ragstream_ops.manifest import CorruptBackup, Manifest
from ragstream_ops.objects import backup_objects, list_keys, restore_objects, verify_objects
from ragstream_ops.postgres import backup_postgres, holds_data, restore_postgres, table_rows


async def _database(postgres: Postgres) -> str:
    name = new_id("db").replace("-", "_")
    async with await psycopg.AsyncConnection.connect(postgres.url, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    return postgres.url.replace("/ragstream?", f"/{name}?")


async def test_postgres_comes_back_in_an_empty_database(postgres: Postgres, tmp_path: Path) -> None:
    source, target = await _database(postgres), await _database(postgres)
    async with await psycopg.AsyncConnection.connect(source, autocommit=True) as conn:
        await conn.execute("CREATE TABLE schema_migrations (service text, name text)")
        await conn.execute("INSERT INTO schema_migrations VALUES ('gateway', '001.sql')")
        await conn.execute("CREATE SCHEMA gateway; CREATE TABLE gateway.documents (id text PRIMARY KEY, body jsonb)")
        await conn.execute("INSERT INTO gateway.documents SELECT 'd' || i, '{\"n\": 1}' FROM generate_series(1, 50) i")
        await conn.execute("CREATE SCHEMA progress; CREATE TABLE progress.jobs (id text, seq bigint)")
        await conn.execute("INSERT INTO progress.jobs VALUES ('j1', 7)")
    assert not await holds_data(target)
    part = await backup_postgres(source, tmp_path)
    assert part["tables"] == {"gateway.documents": 50, "progress.jobs": 1, "public.schema_migrations": 1}

    assert await restore_postgres(target, tmp_path, part) == 52
    assert await table_rows(target) == part["tables"]
    assert await holds_data(target)
    async with await psycopg.AsyncConnection.connect(target) as conn:
        row = await (await conn.execute("SELECT body FROM gateway.documents WHERE id = 'd7'")).fetchone()
    assert row == ({"n": 1},)

    # a migrated but empty database holds no data; a second restore over data replaces it (--clean)
    async with await psycopg.AsyncConnection.connect(target, autocommit=True) as conn:
        await conn.execute("INSERT INTO progress.jobs VALUES ('extra', 8)")
    assert await restore_postgres(target, tmp_path, part) == 52


@pytest.mark.parametrize("kind", ["local", "s3"])
async def test_objects_come_back_with_their_bytes(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    def store(name: str) -> LocalObjectStore | S3ObjectStore:
        if kind == "local":
            return LocalObjectStore(tmp_path / name)
        s3: SeaweedS3 = request.getfixturevalue("s3_server")
        return S3ObjectStore(
            endpoint=s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, bucket=new_id("b")
        )

    source, target = store("source"), store("target")
    objects = {
        "uploads/t/d1/1/report.pdf": b"%PDF-1.7 " + bytes(range(256)) * 40,
        "chunks/t/d1/1.json": json.dumps({"chunks": ["a", "b"]}).encode(),
        "staged/u1": b"",
        "ops/index-snapshots/x.tar": b"scratch, not backed up",
    }
    for key, data in objects.items():
        await source.put_bytes(key, data)
    part = await backup_objects(source, tmp_path / "backup")
    assert part["objects"] == 3
    verify_objects(tmp_path / "backup")

    await target.put_bytes("stale/left-over", b"x")
    assert await restore_objects(target, tmp_path / "backup", replace=True) == 3
    assert await list_keys(target) == sorted(k for k in objects if not k.startswith("ops/"))
    for key in await list_keys(target):
        assert await target.get_bytes(key) == objects[key]

    (tmp_path / "backup" / "objects" / "chunks/t/d1/1.json").write_bytes(b"{}")
    with pytest.raises(CorruptBackup, match="does not match its size and checksum"):
        verify_objects(tmp_path / "backup")


def test_a_backup_without_a_valid_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorruptBackup, match="does not exist"):
        Manifest.read(tmp_path / "nowhere")
    with pytest.raises(CorruptBackup, match=r"manifest\.json is missing"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "ragstream-backup", "version": 1, "parts": ')
    with pytest.raises(CorruptBackup, match="not valid JSON"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "ragstream-backup", "version": 99, "parts": {}}')
    with pytest.raises(CorruptBackup, match="this release reads version 1"):
        Manifest.read(tmp_path)

    (tmp_path / "postgres.dump").write_bytes(b"dump")
    manifest = Manifest(parts={"postgres": {"files": {"postgres.dump": sha256_file(tmp_path / "postgres.dump")}}})
    manifest.write(tmp_path)
    Manifest.read(tmp_path).verify(tmp_path)
    (tmp_path / "postgres.dump").write_bytes(b"dump, changed")
    with pytest.raises(CorruptBackup, match=r"postgres.dump \(part postgres\) does not match its checksum"):
        Manifest.read(tmp_path).verify(tmp_path)
    (tmp_path / "postgres.dump").unlink()
    with pytest.raises(CorruptBackup, match="is missing from the backup"):
        Manifest.read(tmp_path).verify(tmp_path)


async def test_backup_and_restore_refuse_before_touching_anything(tmp_path: Path) -> None:
    settings = CoreSettings(data_dir=tmp_path / "data", nats_url="nats://127.0.0.1:1", postgres_url="unused")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(TargetNotEmpty, match="already holds files; name a new or empty directory"):
        await backup(tmp_path / "used", settings)
    with pytest.raises(CorruptBackup, match=r"manifest\.json is missing"):
        await restore(tmp_path / "used", settings)
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"
