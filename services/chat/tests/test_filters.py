"""Retrieval filters (tags, date range) on every way of asking: REST, SSE, WebSocket, gRPC and the
OpenAI-compatible endpoint; each reaches the search request, bad values are a clear 422."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from openai import AsyncOpenAI, UnprocessableEntityError
from websockets.asyncio.client import connect

from ragstream_chat.grpc_api import ChatServicer
from ragstream_chat.retrieval import Filters, Retriever
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import chat_pb2, chat_pb2_grpc
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchRequest
from ragstream_devstack.servers import free_port

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."
QUESTION = "Where do mallards migrate?"


def filters_of(request: SearchRequest) -> tuple[list[str], str | None, str | None]:
    def when(field: str) -> str | None:
        if not request.HasField(field):
            return None
        stamp: Timestamp = getattr(request, field)
        return stamp.ToDatetime(tzinfo=UTC).isoformat()

    return list(request.tags), when("date_from"), when("date_to")


async def test_rest_filters_reach_the_search_normalised(responder: SearchResponder, client: httpx.AsyncClient) -> None:
    responder.add_hit(MALLARDS, score=0.9)

    response = await client.post(
        "/v1/collections/birds/chat",
        json={"question": QUESTION, "tags": [" Legal", "finance"], "date_from": "2026-01-01", "date_to": "2026-01-31"},
    )

    assert response.status_code == 200, response.text
    assert filters_of(responder.requests[-1]) == (
        ["finance", "legal"],
        "2026-01-01T00:00:00+00:00",
        "2026-01-31T23:59:59.999999+00:00",  # a date alone as date_to includes that whole day
    )


async def test_a_request_without_filters_sends_none(responder: SearchResponder, client: httpx.AsyncClient) -> None:
    responder.add_hit(MALLARDS, score=0.9)

    await client.post("/v1/collections/birds/chat", json={"question": QUESTION})

    assert filters_of(responder.requests[-1]) == ([], None, None)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"tags": ["ok", "no,commas"]}, "tag 'no,commas' is not accepted"),
        ({"tags": ["x" * 65]}, "1-64 characters"),
        ({"tags": [f"t{i}" for i in range(33)]}, "33 tags given"),
        ({"date_from": "last tuesday"}, "date_from 'last tuesday' is not an ISO 8601 date"),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "is before date_from"),
    ],
)
async def test_bad_filters_are_a_422_saying_what_is_accepted(
    responder: SearchResponder, client: httpx.AsyncClient, body: dict[str, object], says: str
) -> None:
    response = await client.post("/v1/collections/birds/chat", json={"question": QUESTION, **body})

    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
    assert "accepted" in response.json()
    assert responder.requests == []


async def test_streamed_answers_take_the_filters_too(responder: SearchResponder, client: httpx.AsyncClient) -> None:
    responder.add_hit(MALLARDS, score=0.9)

    async with client.stream(
        "POST", "/v1/collections/birds/chat", json={"question": QUESTION, "stream": True, "tags": ["birds"]}
    ) as response:
        body = await response.aread()

    assert b"event: done" in body
    assert filters_of(responder.requests[-1])[0] == ["birds"]


async def test_websocket_questions_carry_filters_and_a_bad_one_is_an_error_event(
    responder: SearchResponder, chat_url: str
) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    url = chat_url.replace("http://", "ws://") + "/v1/collections/birds/chat/ws"

    async with connect(url) as socket:
        await socket.send(json.dumps({"question": QUESTION, "tags": ["birds"], "date_to": "2026-03-01T12:00:00Z"}))
        events = []
        while not events or events[-1]["event"] != "done":
            events.append(json.loads(await socket.recv()))
        await socket.send(json.dumps({"question": QUESTION, "date_to": "soon"}))
        error = json.loads(await socket.recv())

    assert filters_of(responder.requests[-1]) == (["birds"], None, "2026-03-01T12:00:00+00:00")
    assert error["event"] == "error"
    assert error["data"]["error"] == "UnprocessableInput"
    assert "ISO 8601" in error["data"]["detail"]


@pytest.fixture
async def chat_stub(ports: Ports) -> AsyncIterator[chat_pb2_grpc.ChatServiceStub]:
    port = free_port()
    servicer = ChatServicer(ports, default_tenant="default")
    server = await start_grpc_server(
        [lambda s: chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, s)],  # type: ignore[no-untyped-call]
        service_names=["ragstream.v1.ChatService"],
        host="127.0.0.1",
        port=port,
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield chat_pb2_grpc.ChatServiceStub(channel)  # type: ignore[no-untyped-call]
    await server.stop(grace=None)


async def test_grpc_ask_and_ask_stream_carry_filters(
    responder: SearchResponder, chat_stub: chat_pb2_grpc.ChatServiceStub
) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    start = Timestamp()
    start.FromDatetime(datetime(2026, 1, 2, tzinfo=UTC))
    request = chat_pb2.AskRequest(collection_id="birds", question=QUESTION, tags=["Birds"], date_from=start)

    answer = await chat_stub.Ask(request)
    asked = filters_of(responder.requests[-1])
    events = [event async for event in chat_stub.AskStream(request)]
    streamed = filters_of(responder.requests[-1]) if len(responder.requests) > 1 else None
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await chat_stub.Ask(chat_pb2.AskRequest(collection_id="birds", question=QUESTION, tags=["bad,tag"]))

    assert answer.citations
    assert asked == (["birds"], "2026-01-02T00:00:00+00:00", None)
    assert events[-1].WhichOneof("event") == "done"
    # the same question and filters may come from the cache: then only one search was made
    assert streamed in (None, asked)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not accepted" in (raised.value.details() or "")


async def test_openai_endpoint_reads_the_filters_from_metadata(responder: SearchResponder, chat_url: str) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    async with AsyncOpenAI(base_url=f"{chat_url}/v1", api_key="any", max_retries=0) as llm:
        completion = await llm.chat.completions.create(
            model="birds",
            messages=[{"role": "user", "content": QUESTION}],
            metadata={"tags": "birds, Water", "date_from": "2026-01-01", "date_to": "2026-06-30"},
        )
        with pytest.raises(UnprocessableEntityError) as raised:
            await llm.chat.completions.create(
                model="birds", messages=[{"role": "user", "content": QUESTION}], metadata={"date_from": "yesterday"}
            )

    assert completion.choices[0].message.content
    assert filters_of(responder.requests[-1]) == (
        ["birds", "water"],
        "2026-01-01T00:00:00+00:00",
        "2026-06-30T23:59:59.999999+00:00",
    )
    assert "ISO 8601" in str(raised.value)


async def test_the_cache_keeps_filtered_and_unfiltered_results_apart(
    responder: SearchResponder, retriever: Retriever
) -> None:
    responder.add_hit(MALLARDS, score=0.9)

    await retriever.search("t", "birds", "mallards", top_k=3)
    await retriever.search("t", "birds", "mallards", top_k=3, filters=Filters.of(["birds"]))
    await retriever.search("t", "birds", "mallards", top_k=3, filters=Filters.of(["birds"]))
    await retriever.search("t", "birds", "mallards", top_k=3, filters=Filters.of(["birds"], "2026-01-01"))

    assert responder.asked("mallards") == 3
