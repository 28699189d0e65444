"""Direct uploads: announce, PUT the bytes (presigned S3 URL or one-time gateway URL), finalize.

Each flow runs against the local store and against a real S3 server (SeaweedFS, SigV4 checked).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.storage import S3ObjectStore
from ragstream_devstack.s3 import SeaweedS3
from ragstream_devstack.testing import eventually, new_id
from ragstream_gateway.direct_upload import expire_uploads, sweep_uploads_until
from ragstream_gateway.media import MARKDOWN
from ragstream_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import Gateway, GatewayFactory


@dataclass
class Direct:
    """A gateway over one kind of store, and a plain HTTP client for presigned URLs."""

    kind: str
    gateway: Gateway
    outside: httpx.AsyncClient
    pool: AsyncConnectionPool

    async def open(self, collection_id: str, file_name: str, **fields: Any) -> httpx.Response:
        return await self.gateway.client.post(
            f"/v1/collections/{collection_id}/uploads", json={"file_name": file_name, **fields}
        )

    async def put(self, url: str, data: bytes) -> httpx.Response:
        client = self.gateway.client if self.kind == "local" else self.outside
        return await client.put(url, content=data)

    async def finalize(self, upload_id: str, *, tenant: str | None = None) -> httpx.Response:
        headers = {"X-Tenant-Id": tenant} if tenant else {}
        return await self.gateway.client.post(f"/v1/uploads/{upload_id}/finalize", headers=headers)

    async def upload(self, collection_id: str, file_name: str, data: bytes, **fields: Any) -> dict[str, Any]:
        """Announce and PUT; the announcement's body."""
        ticket = await self.open(collection_id, file_name, **fields)
        assert ticket.status_code == 201, ticket.text
        body: dict[str, Any] = ticket.json()
        stored = await self.put(body["url"], data)
        assert stored.status_code == 200, stored.text
        return body

    async def staged(self, upload_id: str) -> bool:
        return await self.gateway.ports.objects.exists(f"staging/default/{upload_id}")

    async def expire(self, upload_id: str) -> None:
        """As if the upload's time had run out."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.uploads SET expires_at = now() - interval '1 second' WHERE upload_id = %s",
                (upload_id,),
            )

    async def status(self, upload_id: str) -> str:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT status FROM gateway.uploads WHERE upload_id = %s", (upload_id,))
            row = await cur.fetchone()
        assert row is not None
        return str(row[0])


def s3_store(server: SeaweedS3) -> S3ObjectStore:
    return S3ObjectStore(
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        bucket="ragstream-gateway-test",
    )


@pytest.fixture
async def direct_factory(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, gateway_pool: AsyncConnectionPool
) -> AsyncIterator[Any]:
    """Build a ``Direct`` over the store this test is parametrized with."""
    outside = httpx.AsyncClient()
    kind: str = getattr(request, "param", "local")

    async def make(settings: GatewaySettings | None = None) -> Direct:
        objects = s3_store(request.getfixturevalue("s3_server")) if kind == "s3" else None
        return Direct(kind, await gateway_factory(settings, objects=objects), outside, gateway_pool)

    yield make
    await outside.aclose()


@pytest.fixture
async def direct(direct_factory: Any) -> Direct:
    made: Direct = await direct_factory()
    return made


both_stores = pytest.mark.parametrize("direct_factory", ["local", "s3"], indirect=True)


def document(words: str = "") -> bytes:
    return f"# Ponds\n\nDucks swim in ponds. {words or new_id()}\n".encode()


# announcing


@both_stores
async def test_announcing_answers_201_with_a_put_url_valid_for_the_ttl(direct: Direct) -> None:
    response = await direct.open(new_id("col"), "ponds.md")

    assert response.status_code == 201
    body = response.json()
    assert body["method"] == "PUT"
    assert body["finalize_url"].endswith(f"/v1/uploads/{body['upload_id']}/finalize")
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert abs(expires_at - (datetime.now(expires_at.tzinfo) + timedelta(hours=1))) < timedelta(minutes=1)


async def test_local_store_url_is_a_one_time_gateway_url(direct: Direct) -> None:
    body = (await direct.open(new_id("col"), "ponds.md")).json()

    url = urlsplit(body["url"])

    assert url.path == f"/v1/uploads/{body['upload_id']}"
    assert len(parse_qs(url.query)["token"][0]) >= 40


@pytest.mark.parametrize("direct_factory", ["s3"], indirect=True)
async def test_s3_url_is_presigned_for_the_staging_key(direct: Direct) -> None:
    body = (await direct.open(new_id("col"), "ponds.md")).json()

    url = urlsplit(body["url"])

    assert url.path == f"/ragstream-gateway-test/staging/default/{body['upload_id']}"
    assert "X-Amz-Signature" in parse_qs(url.query)
    assert parse_qs(url.query)["X-Amz-Expires"] == ["3600"]


async def test_announcing_an_unsupported_extension_is_415(direct: Direct) -> None:
    response = await direct.open(new_id("col"), "tool.exe")

    assert response.status_code == 415
    assert "'.exe' is not supported" in response.json()["detail"]


async def test_announcing_a_table_over_the_tabular_limit_is_413(direct_factory: Any) -> None:
    direct: Direct = await direct_factory(GatewaySettings(max_tabular_bytes=1000))

    response = await direct.open(new_id("col"), "rows.csv", size_bytes=1001)

    assert response.status_code == 413
    assert "limit of 1000 bytes for tabular files" in response.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"sha256": "abc"}, "sha256 'abc' is not valid"),
        ({"size_bytes": 0}, "size_bytes is 0"),
    ],
)
async def test_announcing_invalid_facts_is_400(direct: Direct, fields: dict[str, Any], detail: str) -> None:
    response = await direct.open(new_id("col"), "ponds.md", **fields)

    assert response.status_code == 400
    assert detail in response.json()["detail"]


async def test_announcing_into_an_invalid_collection_is_400(direct: Direct) -> None:
    response = await direct.open("bad id!", "ponds.md")

    assert response.status_code == 400


# finalizing


@both_stores
async def test_finalize_starts_the_job_with_the_single_upload_body(direct: Direct) -> None:
    collection, data = new_id("col"), document()
    ticket = await direct.upload(collection, "ponds.md", data)

    response = await direct.finalize(ticket["upload_id"])

    assert response.status_code == 202
    body = response.json()
    assert (body["upload_id"], body["collection_id"], body["file_name"]) == (
        ticket["upload_id"],
        collection,
        "ponds.md",
    )
    assert (body["version"], body["unchanged"], body["media_type"]) == (1, False, MARKDOWN)
    assert (body["size_bytes"], body["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    [event] = await direct.gateway.uploaded_events(body["job_id"])
    assert await direct.gateway.ports.objects.get_bytes(event.object_key) == data


@both_stores
async def test_finalize_deletes_the_staging_object(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "ponds.md", document())
    assert await direct.staged(ticket["upload_id"])

    await direct.finalize(ticket["upload_id"])

    assert not await direct.staged(ticket["upload_id"])


@both_stores
async def test_finalize_twice_answers_the_same_without_a_second_job(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "ponds.md", document())
    first = await direct.finalize(ticket["upload_id"])

    again = await direct.finalize(ticket["upload_id"])

    assert again.status_code == first.status_code == 202
    assert {k: v for k, v in again.json().items() if k != "status"} == {
        k: v for k, v in first.json().items() if k != "status"
    }
    assert len(await direct.gateway.uploaded_events()) == 1


@both_stores
async def test_concurrent_finalizes_open_one_job(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "ponds.md", document())

    answers = await asyncio.gather(*(direct.finalize(ticket["upload_id"]) for _ in range(3)))

    job_ids = {a.json()["job_id"] for a in answers if a.status_code == 202}
    assert len(job_ids) == 1
    assert {a.status_code for a in answers} <= {202, 409}
    assert len(await direct.gateway.uploaded_events()) == 1


@both_stores
async def test_known_bytes_finalize_as_unchanged(direct: Direct) -> None:
    collection, data = new_id("col"), document()
    first = (await direct.finalize((await direct.upload(collection, "ponds.md", data))["upload_id"])).json()

    again = await direct.finalize((await direct.upload(collection, "ponds.md", data))["upload_id"])

    assert again.status_code == 200
    assert (again.json()["unchanged"], again.json()["job_id"]) == (True, first["job_id"])


@both_stores
async def test_declared_size_and_sha256_that_match_are_accepted(direct: Direct) -> None:
    data = document()
    ticket = await direct.upload(
        new_id("col"), "ponds.md", data, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest().upper()
    )

    response = await direct.finalize(ticket["upload_id"])

    assert response.status_code == 202


@both_stores
async def test_finalize_before_the_bytes_arrive_is_409_and_can_be_repeated(direct: Direct) -> None:
    ticket = (await direct.open(new_id("col"), "ponds.md")).json()

    early = await direct.finalize(ticket["upload_id"])
    await direct.put(ticket["url"], document())
    later = await direct.finalize(ticket["upload_id"])

    assert early.status_code == 409
    assert "nothing was uploaded" in early.json()["detail"]
    assert later.status_code == 202


@both_stores
async def test_sha256_mismatch_is_422_with_expected_and_found_and_no_job(direct: Direct) -> None:
    data, declared = document(), hashlib.sha256(b"other bytes").hexdigest()
    ticket = await direct.upload(new_id("col"), "ponds.md", data, sha256=declared)

    response = await direct.finalize(ticket["upload_id"])

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "ContentMismatch"
    assert (body["expected_sha256"], body["found_sha256"]) == (declared, hashlib.sha256(data).hexdigest())
    assert declared in body["detail"]
    assert await direct.gateway.uploaded_events() == []
    assert not await direct.staged(ticket["upload_id"])


@both_stores
async def test_size_mismatch_is_422_with_expected_and_found(direct: Direct) -> None:
    data = document()
    ticket = await direct.upload(new_id("col"), "ponds.md", data, size_bytes=len(data) + 1)

    body = (await direct.finalize(ticket["upload_id"])).json()

    assert (body["error"], body["expected_size_bytes"], body["found_size_bytes"]) == (
        "ContentMismatch",
        len(data) + 1,
        len(data),
    )


@both_stores
async def test_rejection_is_answered_again_to_a_second_finalize(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "ponds.md", document(), sha256="0" * 64)
    first = await direct.finalize(ticket["upload_id"])

    again = await direct.finalize(ticket["upload_id"])

    assert again.status_code == first.status_code == 422
    assert again.json()["detail"] == first.json()["detail"]
    assert again.json()["expected_sha256"] == "0" * 64


@both_stores
async def test_content_contradicting_the_name_is_415_at_finalize(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "report.pdf", b"plain words, not a PDF")

    response = await direct.finalize(ticket["upload_id"])

    assert response.status_code == 415
    assert "the name says .pdf but the content is plain text" in response.json()["detail"]
    assert await direct.gateway.uploaded_events() == []


@pytest.mark.parametrize("direct_factory", ["s3"], indirect=True)
async def test_s3_object_over_the_limit_is_413_at_finalize(direct_factory: Any) -> None:
    direct: Direct = await direct_factory(GatewaySettings(max_upload_bytes=1000))
    ticket = await direct.upload(new_id("col"), "ponds.md", b"#" * 1001)

    response = await direct.finalize(ticket["upload_id"])

    assert response.status_code == 413
    assert "limit of 1000 bytes" in response.json()["detail"]
    assert not await direct.staged(ticket["upload_id"])


async def test_unknown_upload_is_404(direct: Direct) -> None:
    missing = new_id("upload")

    response = await direct.finalize(missing)

    assert response.status_code == 404
    assert response.json()["detail"] == f"upload {missing!r} does not exist"


async def test_upload_of_another_tenant_is_404(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "ponds.md", document())

    response = await direct.finalize(ticket["upload_id"], tenant=new_id("tenant"))

    assert response.status_code == 404


@both_stores
async def test_finalize_of_an_expired_upload_is_410(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "ponds.md", document())
    await direct.expire(ticket["upload_id"])

    response = await direct.finalize(ticket["upload_id"])

    assert response.status_code == 410
    assert "expired at" in response.json()["detail"]
    assert "create a new upload" in response.json()["detail"]
    assert await direct.gateway.uploaded_events() == []


# the one-time gateway URL (local store)


async def test_one_time_url_cannot_be_used_twice(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "ponds.md", document())

    again = await direct.put(ticket["url"], document())

    assert again.status_code == 403
    assert "already used" in again.json()["detail"]


async def test_wrong_token_is_404_like_an_unknown_upload(direct: Direct) -> None:
    ticket = (await direct.open(new_id("col"), "ponds.md")).json()

    response = await direct.put(f"/v1/uploads/{ticket['upload_id']}?token=guessed", document())

    assert response.status_code == 404
    assert "does not open" in response.json()["detail"]


async def test_put_to_an_unknown_upload_is_404(direct: Direct) -> None:
    response = await direct.put(f"/v1/uploads/{new_id('upload')}?token=x", document())

    assert response.status_code == 404


async def test_put_over_the_limit_is_413_and_the_url_stays_usable(direct_factory: Any) -> None:
    direct: Direct = await direct_factory(GatewaySettings(max_upload_bytes=1000))
    ticket = (await direct.open(new_id("col"), "ponds.md")).json()

    too_big = await direct.put(ticket["url"], b"#" * 1001)
    retried = await direct.put(ticket["url"], b"# Fits\n")

    assert too_big.status_code == 413
    assert "limit of 1000 bytes" in too_big.json()["detail"]
    assert retried.status_code == 200
    assert retried.json()["size_bytes"] == len(b"# Fits\n")


async def test_put_after_expiry_is_410(direct: Direct) -> None:
    ticket = (await direct.open(new_id("col"), "ponds.md")).json()
    await direct.expire(ticket["upload_id"])

    response = await direct.put(ticket["url"], document())

    assert response.status_code == 410


# expiry


@both_stores
async def test_sweep_deletes_staging_objects_of_expired_uploads(direct: Direct) -> None:
    ticket = await direct.upload(new_id("col"), "ponds.md", document())
    await direct.expire(ticket["upload_id"])

    swept = await expire_uploads(direct.gateway.ports)

    assert swept >= 1
    assert await direct.status(ticket["upload_id"]) == "expired"
    assert not await direct.staged(ticket["upload_id"])
    assert (await direct.finalize(ticket["upload_id"])).status_code == 410


async def test_sweep_leaves_open_and_finalized_uploads_alone(direct: Direct) -> None:
    waiting = await direct.upload(new_id("col"), "ponds.md", document())
    done = await direct.upload(new_id("col"), "ponds.md", document())
    await direct.finalize(done["upload_id"])
    await direct.expire(done["upload_id"])

    await expire_uploads(direct.gateway.ports)

    assert await direct.status(waiting["upload_id"]) == "received"
    assert await direct.staged(waiting["upload_id"])
    assert await direct.status(done["upload_id"]) == "finalized"
    assert (await direct.finalize(done["upload_id"])).status_code == 202


async def test_sweeper_loop_expires_uploads_until_stopped(direct_factory: Any) -> None:
    direct: Direct = await direct_factory(GatewaySettings(upload_sweep_s=0.05))
    ticket = await direct.upload(new_id("col"), "ponds.md", document())
    await direct.expire(ticket["upload_id"])
    stop = asyncio.Event()
    sweeper = asyncio.create_task(sweep_uploads_until(stop, direct.gateway.ports))

    status = await eventually(lambda: direct.status(ticket["upload_id"]), lambda s: s == "expired", within_s=10)
    stop.set()
    await asyncio.wait_for(sweeper, timeout=5)

    assert status == "expired"
    assert not await direct.staged(ticket["upload_id"])


async def test_bytes_of_a_large_upload_arrive_intact(direct: Direct, corpus: Path) -> None:
    data = (corpus / "pdf" / "multi_page.pdf").read_bytes() + b"%" + new_id().encode()
    ticket = await direct.upload(new_id("col"), "multi_page.pdf", data)

    body = (await direct.finalize(ticket["upload_id"])).json()

    [event] = await direct.gateway.uploaded_events(body["job_id"])
    assert await direct.gateway.ports.objects.get_bytes(event.object_key) == data
