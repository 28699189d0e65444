"""The gRPC APIs of the running system: ingest, progress (streaming), chat, health."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ragstream_core.proto.ragstream.v1 import (
    chat_pb2,
    chat_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    progress_pb2,
    progress_pb2_grpc,
)
from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id


def channel(stack: Stack, service: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{stack.grpc_ports[service]}")


async def test_watching_a_job_streams_it_to_indexed_then_chat_answers_over_grpc(
    client: Client, stack: Stack, corpus: Path
) -> None:
    collection = new_id("grpc")
    upload = await client.upload(collection, "wiki.md", (corpus / "md" / "wiki.md").read_bytes())
    job_id, document_id = upload.json()["job_id"], upload.json()["document_id"]

    async with channel(stack, "progress") as progress:
        watch = progress_pb2_grpc.ProgressServiceStub(progress).WatchJob(progress_pb2.GetJobRequest(job_id=job_id))
        seen = [job.status async for job in watch]
    async with channel(stack, "ingest-gateway") as ingest:
        document = await ingest_pb2_grpc.IngestServiceStub(ingest).GetDocument(
            ingest_pb2.GetDocumentRequest(document_id=document_id)
        )
    async with channel(stack, "chat") as chat:
        answer = await chat_pb2_grpc.ChatServiceStub(chat).Ask(
            chat_pb2.AskRequest(collection_id=collection, question="When was IBM founded?")
        )

    assert seen[-1] == "indexed"
    assert seen == sorted(set(seen), key=seen.index), "each change is sent once"
    assert (document.file_name, [v.version for v in document.versions]) == ("wiki.md", [1])
    assert answer.mode == "extractive"
    assert answer.citations[0].document_id == document_id
    assert answer.citations[0].heading_path[0] == "IBM"


async def test_unknown_ids_are_not_found_over_grpc(stack: Stack) -> None:
    async with channel(stack, "ingest-gateway") as ingest:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await ingest_pb2_grpc.IngestServiceStub(ingest).GetDocument(
                ingest_pb2.GetDocumentRequest(document_id="no-such-document")
            )

    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-document" in (error.value.details() or "")


@pytest.mark.parametrize(
    ("service", "name"),
    [
        ("ingest-gateway", "ragstream.v1.IngestService"),
        ("progress", "ragstream.v1.ProgressService"),
        ("chat", "ragstream.v1.ChatService"),
    ],
)
async def test_every_grpc_server_reports_serving(stack: Stack, service: str, name: str) -> None:
    async with channel(stack, service) as ch:
        response = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=name))

    assert response.status == health_pb2.HealthCheckResponse.SERVING
