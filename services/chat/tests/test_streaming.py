"""Streamed answers over a real server: SSE (stream flag or Accept header), WebSocket and gRPC AskStream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from websockets.asyncio.client import connect

from ragstream_chat.answers import Answer, Turn
from ragstream_chat.grpc_api import ChatServicer
from ragstream_core.errors import DependencyUnavailable
from ragstream_core.grpc_server import start_grpc_server
from ragstream_core.proto.ragstream.v1 import chat_pb2, chat_pb2_grpc
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit
from ragstream_devstack.servers import free_port
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."
PEKIN = "The Pekin duck is raised for its meat. It was bred in China."


class BrokenAnswerer:
    """A provider whose endpoint dies after its first words."""

    mode = "broken"

    async def stream(
        self, question: str, passages: list[SearchHit], *, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str]:
        yield "Mallards "
        raise DependencyUnavailable("the generation endpoint failed mid-stream: connection reset")

    async def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        return question

    async def answer(self, question: str, passages: list[SearchHit]) -> Answer:
        raise DependencyUnavailable("the generation endpoint failed")


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def read_sse(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http, http.stream("POST", url, json=payload, headers=headers) as r:
        await r.aread()
        return r


async def test_stream_flag_streams_started_citations_deltas_sentences_then_done(
    responder: SearchResponder, chat_url: str
) -> None:
    responder.add_hit(MALLARDS, score=0.9, page=3, heading_path=["Ducks", "Migration"])
    responder.add_hit(PEKIN, score=0.6, document_id="doc-2", file_name="breeds.md")
    url = f"{chat_url}/v1/collections/{new_id('col')}/chat"

    response = await read_sse(url, {"question": "When do mallards migrate, and what is the Pekin for?", "stream": True})

    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    # a sentence is complete once the next one starts: a citation marker may still follow its full stop
    assert names == ["started", "citation", "citation", "delta", "delta", "sentence", "sentence", "done"]
    started, first_citation = events[0][1], events[1][1]
    assert started["mode"] == "extractive"
    assert (first_citation["number"], first_citation["file_name"], first_citation["page"]) == (1, "duck.md", 3)
    assert first_citation["heading_path"] == ["Ducks", "Migration"]
    assert [data["citations"] for name, data in events if name == "sentence"] == [[1], [2]]
    done = events[-1][1]
    assert done["answer"] == "".join(data["text"] for name, data in events if name == "delta")
    assert done["conversation_id"] == started["conversation_id"]


async def test_accept_event_stream_header_streams_too(responder: SearchResponder, chat_url: str) -> None:
    responder.add_hit(MALLARDS)

    response = await read_sse(
        f"{chat_url}/v1/collections/{new_id('col')}/chat",
        {"question": "When do mallards migrate?"},
        headers={"Accept": "text/event-stream"},
    )

    assert [name for name, _ in sse_events(response.text)][-1] == "done"


async def test_streamed_i_dont_know_has_no_citations(responder: SearchResponder, chat_url: str) -> None:
    responder.add_hit(PEKIN, score=0.05)

    response = await read_sse(
        f"{chat_url}/v1/collections/{new_id('col')}/chat", {"question": "Capital of France?", "stream": True}
    )

    events = sse_events(response.text)
    assert [name for name, _ in events] == ["started", "delta", "sentence", "done"]
    assert events[-1][1]["answer"].startswith("I don't know")


async def test_refused_stream_keeps_its_http_status(chat_url: str) -> None:
    response = await read_sse(f"{chat_url}/v1/collections/{new_id('col')}/chat", {"question": "Why?", "stream": True})

    assert response.status_code == 503
    assert response.json()["error"] == "DependencyUnavailable"


async def test_generation_failing_mid_stream_ends_with_an_error_event_and_stores_nothing(
    responder: SearchResponder, ports: Ports, chat_url: str
) -> None:
    responder.add_hit(MALLARDS)
    ports.answerers["broken"] = BrokenAnswerer()
    ports.provider = "broken"
    tenant = new_id("tenant")

    response = await read_sse(
        f"{chat_url}/v1/collections/{new_id('col')}/chat",
        {"question": "When do mallards migrate?", "stream": True},
        headers={"X-Tenant-Id": tenant},
    )

    events = sse_events(response.text)
    assert [name for name, _ in events][-2:] == ["delta", "error"]
    assert events[-1][1] == {
        "error": "DependencyUnavailable",
        "detail": "the generation endpoint failed mid-stream: connection reset",
    }
    assert await ports.conversations.list(tenant) == []


async def test_a_question_postgresql_cannot_store_ends_the_stream_with_an_error_event(
    responder: SearchResponder, chat_url: str
) -> None:
    """A NUL in the question is found when the turn is stored, after the answer streamed (fuzzing
    found it breaking the connection): the stream ends with the invalid-input error instead."""
    responder.add_hit(MALLARDS)

    response = await read_sse(
        f"{chat_url}/v1/collections/{new_id('col')}/chat", {"question": "When do mallards\x00 migrate?", "stream": True}
    )

    events = sse_events(response.text)
    assert events[-1][0] == "error"
    assert events[-1][1]["error"] == "InvalidInput"
    assert "NUL" in events[-1][1]["detail"]


async def test_websocket_answers_each_question_as_events_in_one_conversation(
    responder: SearchResponder, chat_url: str
) -> None:
    responder.add_hit(MALLARDS)
    url = chat_url.replace("http://", "ws://") + f"/v1/collections/{new_id('col')}/chat/ws"

    async with connect(url) as socket:
        await socket.send(json.dumps({"question": "Where do mallards live?"}))
        first = [json.loads(await socket.recv())]
        while first[-1]["event"] != "done":
            first.append(json.loads(await socket.recv()))
        conversation_id = first[-1]["data"]["conversation_id"]
        await socket.send(json.dumps({"question": "When do they migrate?", "conversation_id": conversation_id}))
        second = [json.loads(await socket.recv())]
        while second[-1]["event"] != "done":
            second.append(json.loads(await socket.recv()))

    assert [e["event"] for e in first] == ["started", "citation", "delta", "sentence", "done"]
    assert second[-1]["data"]["conversation_id"] == conversation_id
    assert second[0]["data"]["query"] == "When do they migrate? mallards live"


async def test_websocket_reports_a_bad_question_and_keeps_the_connection(
    responder: SearchResponder, chat_url: str
) -> None:
    responder.add_hit(MALLARDS)
    url = chat_url.replace("http://", "ws://") + f"/v1/collections/{new_id('col')}/chat/ws"

    async with connect(url) as socket:
        await socket.send("not json")
        refused = json.loads(await socket.recv())
        await socket.send(json.dumps({"question": "   "}))
        blank = json.loads(await socket.recv())
        await socket.send(json.dumps({"question": "When do mallards migrate?"}))
        answered = json.loads(await socket.recv())

    assert (refused["event"], refused["data"]["error"]) == ("error", "InvalidInput")
    assert (blank["event"], blank["data"]["error"]) == ("error", "InvalidInput")
    assert answered["event"] == "started"


@pytest.fixture
async def chat_stub(ports: Ports) -> AsyncIterator[chat_pb2_grpc.ChatServiceStub]:
    """``ChatService`` as the service starts it (error mapping, health, reflection), on a free port."""
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
    await server.stop(grace=1)


async def test_grpc_ask_stream_sends_events_ending_with_the_whole_answer(
    responder: SearchResponder, chat_stub: chat_pb2_grpc.ChatServiceStub
) -> None:
    responder.add_hit(MALLARDS, score=0.9, page=3, chunk_index=7)
    request = chat_pb2.AskRequest(collection_id=new_id("col"), question="When do mallards migrate?")

    events = [event async for event in chat_stub.AskStream(request)]

    assert [e.WhichOneof("event") for e in events] == ["started", "citation", "delta", "sentence", "done"]
    assert (events[1].citation.page, events[1].citation.chunk_index, events[1].citation.text) == (3, 7, MALLARDS)
    assert list(events[3].sentence.citations) == [1]
    done = events[-1].done
    assert done.answer == "Mallards migrate south when winter comes. [1]"
    assert done.conversation_id == events[0].started.conversation_id


async def test_grpc_ask_continues_a_conversation(
    responder: SearchResponder, chat_stub: chat_pb2_grpc.ChatServiceStub
) -> None:
    responder.add_hit(MALLARDS)
    collection = new_id("col")
    first = await chat_stub.Ask(chat_pb2.AskRequest(collection_id=collection, question="Where do mallards live?"))

    follow_up = await chat_stub.Ask(
        chat_pb2.AskRequest(collection_id=collection, question="Why?", conversation_id=first.conversation_id)
    )

    assert follow_up.conversation_id == first.conversation_id
    assert follow_up.query == "Why? mallards live"
    assert [list(s.citations) for s in follow_up.sentences] == [[1]]


async def test_grpc_stream_in_unknown_conversation_is_not_found(
    responder: SearchResponder, chat_stub: chat_pb2_grpc.ChatServiceStub
) -> None:
    request = chat_pb2.AskRequest(collection_id=new_id("col"), question="Why?", conversation_id="conv-nope")

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _ = [event async for event in chat_stub.AskStream(request)]

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
