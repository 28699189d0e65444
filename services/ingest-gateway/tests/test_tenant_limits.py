"""Rate limits per key and per tenant, upload quotas, and ``/v1/tenant/limits`` at the gateway, in
``keys`` mode over the real PostgreSQL (the limiter's buckets are rows of ``auth.rate_buckets``)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from ragstream_core.auth import Authenticator, AuthInterceptor, Principal, RateLimiter, RateLimits
from ragstream_core.errors import RateLimited
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import ingest_pb2, ingest_pb2_grpc
from ragstream_devstack.servers import Postgres, free_port
from ragstream_devstack.testing import eventually, new_id
from ragstream_gateway.app import create_app
from ragstream_gateway.auth_repository import AuthRepository
from ragstream_gateway.grpc_api import IngestServicer
from ragstream_gateway.main import GRPC_CHANGES, GRPC_RATES, GRPC_ROLES
from ragstream_gateway.ports import GatewayPorts

if TYPE_CHECKING:
    from conftest import GatewayFactory

#: a short window, so that recovery takes about a second: a limit of N allows one more every 2/N s
WINDOW_S = 2.0


@dataclass
class Tenant:
    tenant_id: str
    admin_key: str
    http: httpx.AsyncClient
    ports: GatewayPorts

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    async def key(self, role: str = "editor") -> str:
        response = await self.http.post("/v1/keys", json={"role": role}, headers=self.auth())
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    async def set_limits(self, **limits: int | None) -> dict[str, object]:
        response = await self.http.put("/v1/tenant/limits", json=limits, headers=self.auth())
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    async def upload(self, key: str | None, name: str, data: bytes, *, collection: str = "docs") -> httpx.Response:
        return await self.http.post(
            f"/v1/collections/{collection}/documents", files={"file": (name, data)}, headers=self.auth(key)
        )


TenantFactory = Callable[[], Awaitable[Tenant]]


@pytest.fixture
async def new_tenant(
    make_ports: Callable[..., GatewayPorts], gateway_pool: AsyncConnectionPool
) -> AsyncIterator[TenantFactory]:
    """Make tenants, each with an admin key, on one gateway in keys mode with a 2 s rate window."""
    ports = make_ports()
    limiter = RateLimiter(gateway_pool, RateLimits(window_s=WINDOW_S))
    authenticator = Authenticator(mode="keys", default_tenant="default", pool=gateway_pool, cache_s=0, limiter=limiter)
    app = create_app(ports, progress_url="http://progress.test", authenticator=authenticator)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as http:

        async def make() -> Tenant:
            tenant = f"t-{uuid.uuid4().hex[:10]}"
            key = secrets.token_urlsafe(40)
            await AuthRepository(gateway_pool).install_bootstrap_key(tenant, key)
            # the bootstrap key is one for all tenants: trade it for an admin key of this tenant
            bootstrapped = Tenant(tenant, key, http, ports)
            return Tenant(tenant, await bootstrapped.key("admin"), http, ports)

        yield make


async def test_a_key_over_its_upload_limit_gets_429_with_retry_after_naming_the_limit(
    new_tenant: TenantFactory,
) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(upload_per_key=2, upload_per_tenant=10)
    key = await tenant.key()

    first = await tenant.upload(key, "a.md", b"# a\none")
    second = await tenant.upload(key, "b.md", b"# b\ntwo")
    third = await tenant.upload(key, "c.md", b"# c\nthree")

    assert [first.status_code, second.status_code] == [202, 202]
    assert third.status_code == 429, third.text
    assert int(third.headers["retry-after"]) >= 1
    body = third.json()
    assert body["error"] == "RateLimited"
    assert (body["limit"], body["action"], body["limit_per_window"], body["window_s"]) == ("key", "upload", 2, WINDOW_S)
    assert body["retry_after_s"] == int(third.headers["retry-after"])
    assert "at most 2 upload calls per 2 s" in body["detail"]
    assert "/v1/tenant/limits" in body["detail"]


async def test_a_second_key_of_the_tenant_is_stopped_by_the_tenant_limit(new_tenant: TenantFactory) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(upload_per_key=2, upload_per_tenant=3)
    first_key, second_key = await tenant.key(), await tenant.key()
    for n in range(2):
        assert (await tenant.upload(first_key, f"a{n}.md", f"# a\n{n}".encode())).status_code == 202

    allowed = await tenant.upload(second_key, "b0.md", b"# b\n0")
    refused = await tenant.upload(second_key, "b1.md", b"# b\n1")

    assert allowed.status_code == 202
    assert refused.status_code == 429
    assert refused.json()["limit"] == "tenant"
    assert tenant.tenant_id in refused.json()["detail"]


async def test_another_tenant_uploads_while_one_is_limited(new_tenant: TenantFactory) -> None:
    limited = await new_tenant()
    other = await new_tenant()
    await limited.set_limits(upload_per_key=1, upload_per_tenant=1)
    assert (await limited.upload(None, "a.md", b"# a\n1")).status_code == 202
    assert (await limited.upload(None, "b.md", b"# b\n1")).status_code == 429

    answers = [(await other.upload(None, f"o{n}.md", f"# o\n{n}".encode())).status_code for n in range(3)]

    assert answers == [202, 202, 202]


async def test_a_limited_key_may_upload_again_once_its_retry_after_has_passed(new_tenant: TenantFactory) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(upload_per_key=2, upload_per_tenant=0)  # one more every 1 s
    key = await tenant.key()
    for n in range(2):
        assert (await tenant.upload(key, f"a{n}.md", f"# a\n{n}".encode())).status_code == 202
    refused = await tenant.upload(key, "late.md", b"# late")
    assert refused.status_code == 429
    refused_at = time.monotonic()

    accepted = await eventually(
        lambda: tenant.upload(key, "late.md", b"# late"), lambda r: r.status_code != 429, within_s=5
    )

    assert accepted.status_code == 202, accepted.text
    assert time.monotonic() - refused_at <= int(refused.headers["retry-after"]) + 0.5


async def test_rate_limits_hold_across_replicas_exactly(gateway_pool: AsyncConnectionPool, postgres: Postgres) -> None:
    """Two limiters on two pools (two replicas) charged at once: exactly the limit passes."""
    second_pool = AsyncConnectionPool(postgres.url, min_size=4, max_size=4, open=False, kwargs={"autocommit": True})
    await second_pool.open(wait=True)
    try:
        limits = RateLimits(upload_per_key=0, upload_per_tenant=7, window_s=600)
        replicas = [RateLimiter(gateway_pool, limits), RateLimiter(second_pool, limits)]
        caller = Principal(f"t-{uuid.uuid4().hex[:10]}", "someone", "editor")

        async def attempt(n: int) -> bool:
            try:
                await replicas[n % 2].check(caller, "upload")
            except RateLimited:
                return False
            return True

        outcomes = await asyncio.gather(*(attempt(n) for n in range(20)))
    finally:
        await second_pool.close()

    assert sum(outcomes) == 7


def _stored_objects(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_an_upload_over_the_byte_quota_is_refused_and_nothing_is_stored(
    new_tenant: TenantFactory, tmp_path: Path
) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_bytes=100)
    assert (await tenant.upload(None, "a.md", b"# a\n" + b"x" * 56)).status_code == 202  # 60 bytes
    stored_before = _stored_objects(tmp_path / "objects")

    refused = await tenant.upload(None, "b.md", b"# b\n" + b"y" * 56)

    assert refused.status_code == 403, refused.text
    body = refused.json()
    assert (body["error"], body["code"], body["quota"]) == ("QuotaExceeded", "quota_exceeded", "bytes")
    assert (body["usage"], body["limit"], body["requested"]) == (60, 100, 60)
    assert "PUT /v1/tenant/limits" in body["detail"]
    assert _stored_objects(tmp_path / "objects") == stored_before
    listed = await tenant.http.get("/v1/collections/docs/documents", headers=tenant.auth())
    assert [d["file_name"] for d in listed.json()["documents"]] == ["a.md"]
    audit = await tenant.http.get(
        "/v1/audit", params={"action": "POST /v1/collections/{collection_id}/documents"}, headers=tenant.auth()
    )
    [entry] = audit.json()["entries"]  # the refused upload is on record, by the error's type
    assert (entry["outcome"], entry["detail"]["status"], entry["detail"]["reason"]) == (
        "refused",
        403,
        "QuotaExceeded",
    )


async def test_the_document_quota_refuses_a_new_document_but_not_a_new_version(
    new_tenant: TenantFactory,
) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_documents=1)
    assert (await tenant.upload(None, "a.md", b"# a\n1")).status_code == 202

    new_document = await tenant.upload(None, "b.md", b"# b\n1")
    new_version = await tenant.upload(None, "a.md", b"# a\n2")

    assert new_document.status_code == 403
    assert (new_document.json()["quota"], new_document.json()["usage"], new_document.json()["limit"]) == (
        "documents",
        1,
        1,
    )
    assert new_version.status_code == 202, new_version.text
    assert new_version.json()["version"] == 2


async def test_deleting_a_document_frees_its_quota(new_tenant: TenantFactory) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_documents=1, quota_bytes=1000)
    first = await tenant.upload(None, "a.md", b"# a\n1")
    assert (await tenant.upload(None, "b.md", b"# b\n1")).status_code == 403

    deleted = await tenant.http.delete(
        f"/v1/documents/{first.json()['document_id']}", params={"cancel": "true"}, headers=tenant.auth()
    )
    limits = await tenant.http.get("/v1/tenant/limits", headers=tenant.auth())
    again = await tenant.upload(None, "b.md", b"# b\n1")

    assert deleted.status_code == 202
    assert limits.json()["usage"] == {"bytes": 0, "documents": 0}
    assert again.status_code == 202, again.text


async def test_a_batch_reports_the_quota_per_file(new_tenant: TenantFactory) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_documents=2)

    response = await tenant.http.post(
        "/v1/collections/docs/documents:batch",
        files=[("files", (f"f{n}.md", f"# f\n{n}".encode())) for n in range(3)],
        headers=tenant.auth(),
    )

    assert response.status_code == 207
    codes = [(r["status_code"], r.get("code")) for r in response.json()["results"]]
    assert codes == [(202, None), (202, None), (403, "quota_exceeded")]


async def test_direct_upload_announcing_more_than_the_quota_is_refused_at_once(
    new_tenant: TenantFactory,
) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_bytes=10)

    response = await tenant.http.post(
        "/v1/collections/docs/uploads", json={"file_name": "big.md", "size_bytes": 11}, headers=tenant.auth()
    )

    assert response.status_code == 403
    assert (response.json()["quota"], response.json()["limit"]) == ("bytes", 10)


async def test_limits_show_defaults_overrides_and_usage_and_only_admins_change_them(
    new_tenant: TenantFactory, gateway_pool: AsyncConnectionPool
) -> None:
    tenant = await new_tenant()
    viewer, editor = await tenant.key("viewer"), await tenant.key("editor")
    await tenant.upload(None, "a.md", b"# a\n12345")

    changed = await tenant.set_limits(chat_per_key=5, quota_documents=50)
    read = await tenant.http.get("/v1/tenant/limits", headers=tenant.auth(viewer))
    refused = await tenant.http.put("/v1/tenant/limits", json={"chat_per_key": 1}, headers=tenant.auth(editor))

    assert read.status_code == 200
    body = read.json()
    assert body == changed
    assert body["limits"]["chat_per_key"] == 5
    assert body["limits"]["upload_per_key"] == body["defaults"]["upload_per_key"]
    assert body["overrides"]["upload_per_key"] is None
    assert body["usage"] == {"bytes": 9, "documents": 1}
    assert body["window_s"] == tenant.ports.settings.core.rate_window_s
    assert refused.status_code == 403
    assert refused.json()["needed_role"] == "admin"
    async with gateway_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT detail->'limits'->>'chat_per_key' FROM gateway.audit_log"
            " WHERE tenant_id = %s AND action = 'tenant.limits'",
            (tenant.tenant_id,),
        )
        assert await cur.fetchall() == [("5",)]


async def test_simultaneous_uploads_cannot_take_a_tenant_past_its_document_quota(new_tenant: TenantFactory) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_documents=3)

    answers = await asyncio.gather(*(tenant.upload(None, f"f{n}.md", f"# f\n{n}".encode()) for n in range(8)))

    codes = sorted(a.status_code for a in answers)
    assert codes == [202] * 3 + [403] * 5, [a.text for a in answers]
    limits = await tenant.http.get("/v1/tenant/limits", headers=tenant.auth())
    assert limits.json()["usage"]["documents"] == 3


async def test_simultaneous_uploads_cannot_take_a_tenant_past_its_byte_quota(new_tenant: TenantFactory) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_bytes=100)
    files = [f"# {n}\n".encode() + bytes([65 + n]) * 26 for n in range(6)]  # 30 bytes each

    answers = await asyncio.gather(*(tenant.upload(None, f"f{n}.md", data) for n, data in enumerate(files)))

    assert sorted(a.status_code for a in answers) == [202] * 3 + [403] * 3, [a.text for a in answers]
    limits = await tenant.http.get("/v1/tenant/limits", headers=tenant.auth())
    assert limits.json()["usage"]["bytes"] == 90


async def test_an_upload_refused_after_its_quota_check_gives_its_share_back(new_tenant: TenantFactory) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_bytes=100)
    first = await tenant.upload(None, "a.md", b"# a\n" + b"a" * 26)
    assert (await tenant.upload(None, "b.md", b"# b\n" + b"b" * 26)).status_code == 202

    # passes the quota check (60 + 30 of 100), then is refused: the name belongs to another document
    renamed = await tenant.http.post(
        "/v1/collections/docs/documents",
        files={"file": ("b.md", b"# c\n" + b"c" * 26)},
        params={"replaces": first.json()["document_id"]},
        headers=tenant.auth(),
    )
    after = await tenant.upload(None, "d.md", b"# d\n" + b"d" * 26)

    assert renamed.status_code == 409, renamed.text
    assert after.status_code == 202, after.text  # 90 of 100: the refused upload holds nothing
    limits = await tenant.http.get("/v1/tenant/limits", headers=tenant.auth())
    assert limits.json()["usage"] == {"bytes": 90, "documents": 3}


async def test_bytes_stored_once_count_once_however_many_versions_or_collections_hold_them(
    new_tenant: TenantFactory,
) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(quota_bytes=100)
    data = b"# shared\n" + b"s" * 51  # 60 bytes
    first = await tenant.upload(None, "a.md", data)

    reembedded = await tenant.http.post(f"/v1/documents/{first.json()['document_id']}/reembed", headers=tenant.auth())
    elsewhere = await tenant.upload(None, "a.md", data, collection="other")
    limits = await tenant.http.get("/v1/tenant/limits", headers=tenant.auth())
    over = await tenant.upload(None, "b.md", b"# b\n" + b"b" * 56)

    assert (reembedded.status_code, elsewhere.status_code) == (202, 202), (reembedded.text, elsewhere.text)
    assert limits.json()["usage"] == {"bytes": 60, "documents": 2}
    assert over.status_code == 403  # 60 + 60 of 100: the quota still holds
    assert over.json()["usage"] == 60


async def test_a_negative_limit_is_refused_saying_what_is_accepted(new_tenant: TenantFactory) -> None:
    tenant = await new_tenant()

    response = await tenant.http.put("/v1/tenant/limits", json={"quota_bytes": -1}, headers=tenant.auth())

    assert response.status_code == 422
    assert "greater than or equal to 0" in response.text


GrpcUpload = Callable[..., Awaitable[ingest_pb2.UploadResponse]]


@pytest.fixture
async def grpc_upload(
    new_tenant: TenantFactory, gateway_pool: AsyncConnectionPool
) -> AsyncIterator[tuple[Tenant, GrpcUpload]]:
    """A tenant and ``upload(key, name, data)`` through the gateway's gRPC server as ``main`` starts it
    (auth and rate limits in the interceptor, in keys mode)."""
    tenant = await new_tenant()
    limiter = RateLimiter(gateway_pool, RateLimits(window_s=WINDOW_S))
    authenticator = Authenticator(mode="keys", default_tenant="default", pool=gateway_pool, cache_s=0, limiter=limiter)
    servicer = IngestServicer(tenant.ports)
    port = free_port()
    server = await start_grpc_server(
        [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.IngestService"],
        host="127.0.0.1",
        port=port,
        interceptors=[AuthInterceptor(authenticator, GRPC_ROLES, rates=GRPC_RATES, changes=GRPC_CHANGES)],
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]

        async def upload(key: str, name: str, data: bytes) -> ingest_pb2.UploadResponse:
            async def requests() -> AsyncIterator[ingest_pb2.UploadRequest]:
                yield ingest_pb2.UploadRequest(header=ingest_pb2.UploadHeader(collection_id="docs", file_name=name))
                for start in range(0, len(data), 64):
                    yield ingest_pb2.UploadRequest(chunk=data[start : start + 64])

            response: ingest_pb2.UploadResponse = await stub.Upload(
                requests(), metadata=(("authorization", f"Bearer {key}"),)
            )
            return response

        yield tenant, upload
    await server.stop(grace=None)


async def test_grpc_upload_over_the_limit_is_resource_exhausted_with_retry_after(
    grpc_upload: tuple[Tenant, GrpcUpload],
) -> None:
    tenant, upload = grpc_upload
    await tenant.set_limits(upload_per_key=1)
    key = await tenant.key()

    accepted = await upload(key, "a.md", b"# a\ntext")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await upload(key, "b.md", b"# b\ntext")

    assert accepted.document_id
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(raised.value.trailing_metadata() or ())
    assert int(trailing["retry-after"]) >= 1
    assert "at most 1 upload calls" in (raised.value.details() or "")


async def test_a_streamed_upload_is_cut_off_once_it_passes_the_byte_quota_leaving_nothing(
    grpc_upload: tuple[Tenant, GrpcUpload], tmp_path: Path
) -> None:
    tenant, upload = grpc_upload
    await tenant.set_limits(quota_bytes=100)
    key = await tenant.key()
    await upload(key, "a.md", b"# a\n" + b"x" * 36)  # 40 of 100 bytes
    stored_before = _stored_objects(tmp_path / "objects")

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await upload(key, "big.md", b"# big\n" + b"y" * 4000)

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "passed 64 bytes" in (raised.value.details() or "")  # the first chunk over the 60 bytes left
    assert "40 of 100 bytes used" in (raised.value.details() or "")
    assert not dict(raised.value.trailing_metadata() or ()).get("retry-after")
    assert _stored_objects(tmp_path / "objects") == stored_before
    audit = await tenant.http.get(
        "/v1/audit", params={"action": "RPC /ragstream.v1.IngestService/Upload"}, headers=tenant.auth()
    )
    [entry] = audit.json()["entries"]  # the refusal, on record as REST's are: status and error type only
    assert (entry["outcome"], entry["detail"]["status"], entry["detail"]["reason"]) == (
        "refused",
        403,
        "QuotaExceeded",
    )
    assert "big.md" not in audit.text


async def test_a_request_refused_by_the_tenant_limit_is_not_charged_to_its_key(
    new_tenant: TenantFactory, gateway_pool: AsyncConnectionPool
) -> None:
    tenant = await new_tenant()
    await tenant.set_limits(upload_per_key=1, upload_per_tenant=1)
    first_key, second_key = await tenant.key(), await tenant.key()
    assert (await tenant.upload(first_key, "a.md", b"# a\n1")).status_code == 202
    refused = [await tenant.upload(second_key, "b.md", b"# b\n1") for _ in range(3)]
    await tenant.set_limits(upload_per_key=1, upload_per_tenant=0)  # only the key's own limit is left

    accepted = await tenant.upload(second_key, "b.md", b"# b\n1")

    assert [r.json()["limit"] for r in refused] == ["tenant", "tenant", "tenant"]
    assert accepted.status_code == 202, accepted.text


async def test_in_open_mode_the_tenant_header_is_what_is_limited(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory()
    limited, other = {"X-Tenant-Id": new_id("open-a")}, {"X-Tenant-Id": new_id("open-b")}
    changed = await gateway.client.put("/v1/tenant/limits", json={"upload_per_tenant": 1}, headers=limited)

    def upload(headers: dict[str, str], name: str) -> Awaitable[httpx.Response]:
        return gateway.client.post(
            "/v1/collections/docs/documents", files={"file": (name, b"# x\n" + name.encode())}, headers=headers
        )

    first, second = await upload(limited, "a.md"), await upload(limited, "b.md")
    others = [(await upload(other, f"o{n}.md")).status_code for n in range(2)]

    assert changed.status_code == 200
    assert first.status_code == 202
    assert second.status_code == 429
    assert second.json()["limit"] == "tenant"
    assert others == [202, 202]
