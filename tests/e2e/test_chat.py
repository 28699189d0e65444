"""Streamed, cited answers and conversations over the running system (SSE, WebSocket, gRPC, OpenAI API)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
from openai import AsyncOpenAI
from websockets.asyncio.client import connect

from ragstream_core.proto.ragstream.v1 import chat_pb2, chat_pb2_grpc
from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import eventually, new_id

DUCKS = b"""# Ducks

## Migration

Mallards migrate south when winter comes. They return to the northern lakes in early spring.

## Breeds

The Pekin duck is raised for its meat. It was bred in China from the mallard.
"""


async def indexed_collection(client: Client) -> tuple[str, str]:
    """A new collection holding ``ducks.md``, indexed; its id and the document's."""
    collection = new_id("chat")
    upload = await client.upload(collection, "ducks.md", DUCKS)
    [job] = await client.wait_done([upload.json()["job_id"]])
    assert job["status"] == "indexed", job
    return collection, upload.json()["document_id"]


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    blocks = [dict(line.split(": ", 1) for line in b.splitlines()) for b in body.strip().split("\n\n")]
    return [(b["event"], json.loads(b["data"])) for b in blocks]


async def test_answer_streams_over_sse_and_the_follow_up_continues_the_stored_conversation(
    client: Client, stack: Stack
) -> None:
    collection, document_id = await indexed_collection(client)
    url = f"{stack.url('chat')}/v1/collections/{collection}/chat"

    async with client.http.stream(
        "POST", url, json={"question": "When do mallards migrate?"}, headers={"Accept": "text/event-stream"}
    ) as response:
        first = sse_events((await response.aread()).decode())
    conversation_id = first[0][1]["conversation_id"]
    follow_up = await client.http.post(
        url, json={"question": "When do they return?", "conversation_id": conversation_id}
    )
    stored = await client.http.get(f"{stack.url('chat')}/v1/conversations/{conversation_id}")

    assert response.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in first]
    assert (names[0], names[-1]) == ("started", "done")
    citation = next(data for name, data in first if name == "citation")
    assert (citation["document_id"], citation["file_name"]) == (document_id, "ducks.md")
    assert "Mallards migrate south when winter comes." in first[-1][1]["answer"]
    assert all(data["citations"] for name, data in first if name == "sentence")
    assert follow_up.json()["query"] == "When do they return? mallards migrate"
    assert "return to the northern lakes" in follow_up.json()["answer"]
    assert [m["role"] for m in stored.json()["messages"]] == ["user", "assistant", "user", "assistant"]


async def test_answer_streams_over_websocket_and_grpc(client: Client, stack: Stack) -> None:
    collection, document_id = await indexed_collection(client)
    ws_url = stack.url("chat").replace("http://", "ws://") + f"/v1/collections/{collection}/chat/ws"

    async with connect(ws_url) as socket:
        await socket.send(json.dumps({"question": "Which duck is raised for its meat?"}))
        received = [json.loads(await socket.recv())]
        while received[-1]["event"] not in ("done", "error"):
            received.append(json.loads(await socket.recv()))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.grpc_ports['chat']}") as channel:
        request = chat_pb2.AskRequest(collection_id=collection, question="Which duck is raised for its meat?")
        events = [e async for e in chat_pb2_grpc.ChatServiceStub(channel).AskStream(request)]

    assert received[-1]["event"] == "done"
    assert "Pekin duck is raised for its meat" in received[-1]["data"]["answer"]
    assert events[0].WhichOneof("event") == "started"
    assert events[-1].done.answer == received[-1]["data"]["answer"]
    assert events[-1].done.citations[0].document_id == document_id


async def test_openai_client_streams_a_cited_answer_and_lists_the_collection_as_a_model(
    client: Client, stack: Stack
) -> None:
    collection, document_id = await indexed_collection(client)

    async with AsyncOpenAI(base_url=f"{stack.url('chat')}/v1", api_key="unused", max_retries=0) as llm:
        stream = await llm.chat.completions.create(
            model=collection, messages=[{"role": "user", "content": "When do mallards migrate?"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
        models = await eventually(llm.models.list, until=lambda m: collection in {x.id for x in m.data}, within_s=10)

    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "Mallards migrate south when winter comes." in text
    assert (chunks[-1].model_extra or {})["citations"][0]["document_id"] == document_id
    assert collection in {m.id for m in models.data}


async def test_unknown_conversation_is_404_over_http(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{stack.url('chat')}/v1/collections/{new_id('chat')}/chat",
            json={"question": "Why?", "conversation_id": "conv-missing"},
        )

    assert response.status_code == 404
