"""Object stores: the local directory and S3 (against a real SeaweedFS S3 server)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from ragstream_core.errors import InvalidInput, NotFound
from ragstream_core.storage import LocalObjectStore, ObjectStore, S3ObjectStore
from ragstream_devstack.s3 import SeaweedS3


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    server: SeaweedS3 = request.getfixturevalue("s3_server")
    return S3ObjectStore(
        endpoint=server.endpoint, access_key=server.access_key, secret_key=server.secret_key, bucket="ragstream-test"
    )


async def test_stored_object_reads_back_identical(store: ObjectStore) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)

    await store.put_file("uploads/a/blob", io.BytesIO(payload), len(payload))

    assert await store.get_bytes("uploads/a/blob") == payload
    assert await store.exists("uploads/a/blob")


async def test_object_streams_into_a_file_with_its_size(store: ObjectStore) -> None:
    payload = os.urandom(2 * 1024 * 1024 + 5)
    await store.put_bytes("uploads/a/streamed", payload)
    target = io.BytesIO()

    size = await store.read_into("uploads/a/streamed", target)

    assert (size, target.getvalue()) == (len(payload), payload)
    assert await store.size("uploads/a/streamed") == len(payload)


async def test_missing_object_has_no_size_and_cannot_be_streamed(store: ObjectStore) -> None:
    assert await store.size("uploads/nothing") is None
    with pytest.raises(NotFound, match="uploads/nothing"):
        await store.read_into("uploads/nothing", io.BytesIO())


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


async def test_listing_yields_every_object_under_a_prefix_with_size_and_time(store: ObjectStore) -> None:
    import uuid
    from datetime import UTC, datetime, timedelta

    base = f"listing-{uuid.uuid4().hex[:8]}"
    keys = [f"{base}/uploads/t1/a", f"{base}/uploads/t1/b", f"{base}/uploads/t2/c", f"{base}/chunks/t1/d/v1.json"]
    for i, key in enumerate(keys):
        await store.put_bytes(key, b"x" * (i + 1))
    await store.put_bytes(f"{base}-sibling/uploads/t1/z", b"not under the prefix")

    everything = {o.key: o async for o in store.list_objects(f"{base}/")}
    uploads = sorted([o.key async for o in store.list_objects(f"{base}/uploads/")])
    partial = sorted([o.key async for o in store.list_objects(f"{base}/uploads/t")])
    nothing = [o.key async for o in store.list_objects(f"{base}/missing/")]

    assert sorted(everything) == sorted(keys)
    assert [everything[k].size for k in keys] == [1, 2, 3, 4]
    now = datetime.now(UTC)
    assert all(now - timedelta(minutes=5) < o.modified <= now + timedelta(minutes=1) for o in everything.values())
    assert uploads == partial == sorted(keys[:3])
    assert nothing == []


async def test_listing_pages_through_more_objects_than_one_page(store: ObjectStore) -> None:
    import uuid

    from ragstream_core.storage.listing import PAGE

    base = f"paged-{uuid.uuid4().hex[:8]}/"
    count = PAGE + 7
    for i in range(count):
        await store.put_bytes(f"{base}{i:05d}", b"")

    listed = [o.key async for o in store.list_objects(base)]

    assert sorted(listed) == [f"{base}{i:05d}" for i in range(count)]


async def test_listing_skips_a_write_in_progress(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await store.put_bytes("uploads/t/done", b"done")
    (tmp_path / "objects" / "uploads" / "t" / ".tmp-abc").write_bytes(b"half")

    assert [o.key async for o in store.list_objects("uploads/")] == ["uploads/t/done"]
