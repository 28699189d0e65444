"""gRPC ``IngestService.Upload`` (client streaming) through a real grpc.aio server and channel."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import grpc
import pytest

from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import ingest_pb2, ingest_pb2_grpc
from ragstream_core.proto.ragstream.v1.events_pb2 import DocUploaded
from ragstream_devstack.servers import free_port
from ragstream_devstack.testing import new_id
from ragstream_gateway.grpc_api import IngestServicer
from ragstream_gateway.media import CSV, MARKDOWN
from ragstream_gateway.ports import GatewayPorts
from ragstream_gateway.settings import GatewaySettings

ReadEvents = Callable[..., Awaitable[list[DocUploaded]]]
StubFactory = Callable[..., Awaitable[tuple[ingest_pb2_grpc.IngestServiceStub, GatewayPorts]]]
CHUNK = 64 * 1024


@pytest.fixture
async def ingest_stub(make_ports: Callable[..., GatewayPorts]) -> AsyncIterator[StubFactory]:
    """A stub on a started gRPC server (with the shared error interceptor) over this test's ports."""
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def make(settings: GatewaySettings | None = None) -> tuple[ingest_pb2_grpc.IngestServiceStub, GatewayPorts]:
        ports = make_ports(settings)
        servicer = IngestServicer(ports)
        port = free_port()
        servers.append(
            await start_grpc_server(
                [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
                service_names=["ragstream.v1.IngestService"],
                host="127.0.0.1",
                port=port,
            )
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return ingest_pb2_grpc.IngestServiceStub(channel), ports  # type: ignore[no-untyped-call]

    yield make
    for channel in channels:
        await channel.close(grace=None)
    for server in servers:
        await server.stop(grace=None)


def messages(
    collection_id: str, file_name: str, data: bytes, *, force: bool = False
) -> Iterable[ingest_pb2.UploadRequest]:
    header = ingest_pb2.UploadHeader(collection_id=collection_id, file_name=file_name, force=force)
    yield ingest_pb2.UploadRequest(header=header)
    for start in range(0, len(data), CHUNK):
        yield ingest_pb2.UploadRequest(chunk=data[start : start + CHUNK])


async def upload(
    stub: ingest_pb2_grpc.IngestServiceStub, requests: Iterable[ingest_pb2.UploadRequest], *, tenant: str = "default"
) -> ingest_pb2.UploadResponse:
    async def stream() -> AsyncIterator[ingest_pb2.UploadRequest]:
        for request in requests:
            yield request

    response: ingest_pb2.UploadResponse = await stub.Upload(stream(), metadata=[("x-tenant-id", tenant)])
    return response


def big_markdown() -> bytes:
    """About 300 KB: several chunks of the stream."""
    return b"# Ducks\n\n" + b"Ducks swim in ponds and rivers.\n" * 10_000


async def test_streamed_upload_is_accepted_with_the_rest_bodys_facts(
    ingest_stub: StubFactory, uploaded_events: ReadEvents
) -> None:
    stub, _ = await ingest_stub()
    collection, data = new_id("col"), big_markdown()

    response = await upload(stub, messages(collection, "ducks.md", data))

    assert response.version == 1
    assert response.unchanged is False
    assert (response.collection_id, response.file_name, response.media_type) == (collection, "ducks.md", MARKDOWN)
    assert (response.size_bytes, response.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert response.job_url.endswith(f"/v1/jobs/{response.job_id}")
    assert response.created_at.seconds > 0
    [event] = await uploaded_events(response.job_id)
    assert (event.meta.document_id, event.size_bytes) == (response.document_id, len(data))


async def test_streamed_bytes_are_stored_intact(ingest_stub: StubFactory, uploaded_events: ReadEvents) -> None:
    stub, ports = await ingest_stub()
    data = big_markdown() + new_id().encode()

    response = await upload(stub, messages(new_id("col"), "ducks.md", data))

    [event] = await uploaded_events(response.job_id)
    assert await ports.objects.get_bytes(event.object_key) == data


async def test_same_bytes_again_are_unchanged(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub()
    collection, data = new_id("col"), big_markdown()
    first = await upload(stub, messages(collection, "ducks.md", data))

    again = await upload(stub, messages(collection, "ducks.md", data))

    assert again.unchanged is True
    assert (again.job_id, again.version) == (first.job_id, first.version)


async def test_forced_upload_of_same_bytes_opens_version_two(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub()
    collection, data = new_id("col"), big_markdown()
    await upload(stub, messages(collection, "ducks.md", data))

    forced = await upload(stub, messages(collection, "ducks.md", data, force=True))

    assert (forced.unchanged, forced.version) == (False, 2)


async def test_tenant_comes_from_the_metadata(ingest_stub: StubFactory) -> None:
    stub, ports = await ingest_stub()
    tenant = new_id("tenant")

    response = await upload(stub, messages(new_id("col"), "ducks.md", big_markdown()), tenant=tenant)

    assert await ports.documents.get_version(tenant, response.document_id, 1) is not None
    assert await ports.documents.get_version("default", response.document_id, 1) is None


async def assert_refused(
    stub: ingest_pb2_grpc.IngestServiceStub, requests: Iterable[ingest_pb2.UploadRequest], *, code: grpc.StatusCode
) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await upload(stub, requests)
    assert error.value.code() == code
    return str(error.value.details())


async def test_upload_over_the_limit_is_refused_while_streaming(
    ingest_stub: StubFactory, uploaded_events: ReadEvents
) -> None:
    stub, _ = await ingest_stub(GatewaySettings(max_upload_bytes=100_000))

    details = await assert_refused(
        stub, messages(new_id("col"), "ducks.md", big_markdown()), code=grpc.StatusCode.INVALID_ARGUMENT
    )

    assert "exceeds the limit of 100000 bytes for this type; its type is text/markdown" in details
    assert await uploaded_events() == []


async def test_oversized_stream_is_cut_off_without_reading_the_rest(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub(GatewaySettings(max_upload_bytes=100_000))
    sent = 0

    async def endless() -> AsyncIterator[ingest_pb2.UploadRequest]:
        nonlocal sent
        yield ingest_pb2.UploadRequest(header=ingest_pb2.UploadHeader(collection_id=new_id("col"), file_name="a.md"))
        for _ in range(2_000):  # 128 MiB if nobody stopped it
            sent += 1
            yield ingest_pb2.UploadRequest(chunk=b"#" * CHUNK)

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Upload(endless())

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sent < 200


async def test_csv_over_the_tabular_limit_is_refused_naming_it(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub(GatewaySettings(max_tabular_bytes=1000))
    rows = b"name,quantity\n" + b"apple,1\n" * 500

    details = await assert_refused(
        stub, messages(new_id("col"), "rows.csv", rows), code=grpc.StatusCode.INVALID_ARGUMENT
    )

    assert f"limit of 1000 bytes for tabular files (CSV, XLSX/XLSM, ODS, Parquet); its type is {CSV}" in details


async def test_unsupported_content_is_refused_with_the_accepted_types(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub()

    details = await assert_refused(
        stub, messages(new_id("col"), "report.pdf", b"plain words"), code=grpc.StatusCode.INVALID_ARGUMENT
    )

    assert "the name says .pdf but the content is plain text" in details
    assert "accepted types:" in details


async def test_empty_upload_is_refused(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub()

    details = await assert_refused(
        stub, messages(new_id("col"), "empty.md", b""), code=grpc.StatusCode.INVALID_ARGUMENT
    )

    assert "empty" in details


async def test_stream_without_a_header_is_refused(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub()

    details = await assert_refused(
        stub, [ingest_pb2.UploadRequest(chunk=b"# no header\n")], code=grpc.StatusCode.INVALID_ARGUMENT
    )

    assert "first message of an upload must be a header" in details


async def test_second_header_is_refused(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub()
    header = ingest_pb2.UploadRequest(header=ingest_pb2.UploadHeader(collection_id=new_id("col"), file_name="a.md"))

    details = await assert_refused(stub, [header, header], code=grpc.StatusCode.INVALID_ARGUMENT)

    assert "only the first message of an upload carries a header" in details


async def test_invalid_collection_is_refused(ingest_stub: StubFactory) -> None:
    stub, _ = await ingest_stub()

    details = await assert_refused(stub, messages("bad id!", "a.md", b"# A\n"), code=grpc.StatusCode.INVALID_ARGUMENT)

    assert "collection 'bad id!' is not valid" in details


async def test_uploaded_document_is_readable_over_grpc(ingest_stub: StubFactory, corpus: Path) -> None:
    stub, _ = await ingest_stub()
    response = await upload(stub, messages(new_id("col"), "duck.md", (corpus / "md" / "duck.md").read_bytes()))

    document = await stub.GetDocument(ingest_pb2.GetDocumentRequest(document_id=response.document_id))

    assert [v.job_id for v in document.versions] == [response.job_id]
