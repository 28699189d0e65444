"""The OpenAI-compatible answerer against a real HTTP server speaking ``/v1/chat/completions``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pytest
import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from ragstream_chat.answers import OpenAICompatibleAnswerer, Turn
from ragstream_chat.handlers import Question, answer_question
from ragstream_chat.retrieval import Retriever
from ragstream_core.errors import DependencyUnavailable
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit
from ragstream_devstack.servers import free_port, wait_for_port
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

API_KEY = "sk-test-4f1c"
MODEL = "test-model-7b"
MALLARDS = "Mallards migrate south when winter comes."
PEKIN = "The Pekin duck is raised for its meat."


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(BaseModel):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


@dataclass
class CompletionServer:
    """An OpenAI-compatible endpoint whose model replies ``reply`` and records every accepted request."""

    base_url: str
    reply: str = ""
    rewrite_reply: str = ""  # the reply to a request whose instructions ask for a rewritten query
    fail_mid_stream: bool = False  # send an error object after the first chunk, as OpenAI does
    received: list[ChatCompletionRequest] = field(default_factory=list)

    def reply_to(self, body: ChatCompletionRequest) -> str:
        return self.rewrite_reply if body.messages[0].content.startswith("Rewrite") else self.reply


def openai_error(status: int, message: str, code: str) -> JSONResponse:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


async def completion_chunks(server: CompletionServer, model: str, reply: str) -> AsyncIterator[str]:
    """``reply`` as OpenAI streams it: ``chat.completion.chunk`` objects, a few characters each, then [DONE]."""
    completion_id, created = f"chatcmpl-{new_id()}", int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_test", "choices": [choice]}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for start in range(0, len(reply), 7):
        yield chunk({"content": reply[start : start + 7]})
        if server.fail_mid_stream:
            error = {"message": "The server had an error while processing your request.", "type": "server_error"}
            yield f"data: {json.dumps({'error': error})}\n\n"
            return
    yield chunk({}, finish_reason="stop")
    yield "data: [DONE]\n\n"


def completion_app(server: CompletionServer) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def completions(
        body: ChatCompletionRequest, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any] | JSONResponse | StreamingResponse:
        if authorization != f"Bearer {API_KEY}":
            # quoting the key sent, as a careless provider might (OpenAI masks it): errors must not show it
            sent = (authorization or "").removeprefix("Bearer ")
            return openai_error(401, f"Incorrect API key provided: {sent}.", "invalid_api_key")
        if body.model != MODEL:
            return openai_error(404, f"The model `{body.model}` does not exist.", "model_not_found")
        server.received.append(body)
        reply = server.reply_to(body)
        if body.stream:
            return StreamingResponse(completion_chunks(server, body.model, reply), media_type="text/event-stream")
        prompt_tokens = sum(len(m.content.split()) for m in body.messages)
        completion_tokens = len(reply.split())
        return {
            "id": f"chatcmpl-{new_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @app.post("/ui/v1/chat/completions")
    async def web_page() -> HTMLResponse:
        """What a base URL pointing at a web UI instead of the API gets: a page, with 200."""
        return HTMLResponse("<!doctype html><html><body>Sign in</body></html>")

    return app


@pytest.fixture(scope="module")
def completion_server() -> Iterator[CompletionServer]:
    """The endpoint under uvicorn, in a thread of its own, on a free port."""
    port = free_port()
    server = CompletionServer(base_url=f"http://127.0.0.1:{port}/v1")
    config = uvicorn.Config(completion_app(server), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, name="completion-server", daemon=True)
    thread.start()
    wait_for_port(port)
    yield server
    uvicorn_server.should_exit = True
    thread.join(10)


@pytest.fixture
async def answerer(completion_server: CompletionServer) -> AsyncIterator[OpenAICompatibleAnswerer]:
    answerer = OpenAICompatibleAnswerer(base_url=completion_server.base_url, api_key=API_KEY, model=MODEL, timeout_s=5)
    yield answerer
    await answerer.client.aclose()


async def test_answer_text_and_citations_come_from_the_completion(
    completion_server: CompletionServer, answerer: OpenAICompatibleAnswerer
) -> None:
    completion_server.reply = "  Mallards migrate south in winter [1]. Pekin ducks are raised for meat [2][1].\n"

    answer = await answerer.answer("What do we know about ducks?", [SearchHit(text=MALLARDS), SearchHit(text=PEKIN)])

    assert answer.text == "Mallards migrate south in winter [1]. Pekin ducks are raised for meat [2][1]."
    assert answer.cited == [1, 2]
    assert answer.mode == "openai"


async def test_citation_numbers_naming_no_passage_are_ignored(
    completion_server: CompletionServer, answerer: OpenAICompatibleAnswerer
) -> None:
    completion_server.reply = "Mallards migrate [1], as [0] and [3] claim."

    answer = await answerer.answer("When do mallards migrate?", [SearchHit(text=MALLARDS), SearchHit(text=PEKIN)])

    assert answer.cited == [1]


async def test_request_sends_the_model_instructions_numbered_passages_and_question(
    completion_server: CompletionServer, answerer: OpenAICompatibleAnswerer
) -> None:
    completion_server.reply = "They migrate in winter [1]."

    await answerer.answer("When do mallards migrate?", [SearchHit(text=MALLARDS), SearchHit(text=PEKIN)])

    request = completion_server.received[-1]
    assert request.model == MODEL
    assert [m.role for m in request.messages] == ["system", "user"]
    assert "Cite them as [n]" in request.messages[0].content
    assert request.messages[1].content == (
        f"Passages:\n[1] {MALLARDS}\n\n[2] {PEKIN}\n\nQuestion: When do mallards migrate?"
    )


async def test_wrong_api_key_is_dependency_unavailable(completion_server: CompletionServer) -> None:
    answerer = OpenAICompatibleAnswerer(
        base_url=completion_server.base_url, api_key="sk-wrong", model=MODEL, timeout_s=5
    )

    with pytest.raises(DependencyUnavailable, match="401 Unauthorized"):
        await answerer.answer("When do mallards migrate?", [SearchHit(text=MALLARDS)])
    await answerer.client.aclose()


async def test_unknown_model_is_dependency_unavailable(completion_server: CompletionServer) -> None:
    answerer = OpenAICompatibleAnswerer(
        base_url=completion_server.base_url, api_key=API_KEY, model="no-such-model", timeout_s=5
    )

    with pytest.raises(DependencyUnavailable, match="404 Not Found"):
        await answerer.answer("When do mallards migrate?", [SearchHit(text=MALLARDS)])
    await answerer.client.aclose()


async def test_endpoint_answering_a_web_page_is_dependency_unavailable(completion_server: CompletionServer) -> None:
    answerer = OpenAICompatibleAnswerer(
        base_url=completion_server.base_url.replace("/v1", "/ui/v1"), api_key=API_KEY, model=MODEL, timeout_s=5
    )

    with pytest.raises(DependencyUnavailable, match="answered without a chat completion"):
        await answerer.answer("When do mallards migrate?", [SearchHit(text=MALLARDS)])
    await answerer.client.aclose()


async def test_unreachable_endpoint_is_dependency_unavailable() -> None:
    answerer = OpenAICompatibleAnswerer(
        base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=API_KEY, model=MODEL, timeout_s=5
    )

    with pytest.raises(DependencyUnavailable, match="the generation endpoint failed"):
        await answerer.answer("When do mallards migrate?", [SearchHit(text=MALLARDS)])
    await answerer.client.aclose()


async def test_chat_answers_with_the_model_and_cites_retrieved_passages(
    completion_server: CompletionServer,
    answerer: OpenAICompatibleAnswerer,
    responder: SearchResponder,
    retriever: Retriever,
    ports: Ports,
) -> None:
    responder.add_hit(MALLARDS, score=0.9, page=2)
    responder.add_hit(PEKIN, score=0.5, document_id="doc-2")
    completion_server.reply = "Mallards migrate south when winter comes [1]."
    ports.answerers["openai"] = answerer
    ports.provider = "openai"

    result = await answer_question(Question("default", new_id("col"), "When do mallards migrate?"), ports)

    assert result["answer"] == "Mallards migrate south when winter comes [1]."
    assert result["mode"] == "openai"
    assert [(c["number"], c["document_id"], c["page"]) for c in result["citations"]] == [
        (1, "doc-1", 2),
        (2, "doc-2", 1),
    ]
    assert f"[1] {MALLARDS}" in completion_server.received[-1].messages[1].content


async def test_stream_yields_the_completion_chunk_by_chunk(
    completion_server: CompletionServer, answerer: OpenAICompatibleAnswerer
) -> None:
    completion_server.reply = "Mallards migrate south in winter [1]. Pekin ducks are raised for meat [2]."

    deltas = [d async for d in answerer.stream("Ducks?", [SearchHit(text=MALLARDS), SearchHit(text=PEKIN)])]

    assert len(deltas) > 5
    assert "".join(deltas) == completion_server.reply
    assert completion_server.received[-1].stream is True


async def test_stream_sends_the_conversation_before_the_question(
    completion_server: CompletionServer, answerer: OpenAICompatibleAnswerer
) -> None:
    completion_server.reply = "In winter [1]."
    history = [Turn("user", "Where do mallards live?"), Turn("assistant", "In wetlands [1].")]

    _ = [d async for d in answerer.stream("When do they migrate?", [SearchHit(text=MALLARDS)], history=history)]

    request = completion_server.received[-1]
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[2].content == "In wetlands [1]."
    assert request.messages[3].content.endswith("Question: When do they migrate?")


async def test_error_in_the_middle_of_the_stream_is_dependency_unavailable(
    completion_server: CompletionServer, answerer: OpenAICompatibleAnswerer
) -> None:
    completion_server.reply = "Mallards migrate south in winter [1]."
    completion_server.fail_mid_stream = True
    try:
        with pytest.raises(DependencyUnavailable, match="failed mid-stream"):
            _ = [d async for d in answerer.stream("When?", [SearchHit(text=MALLARDS)])]
    finally:
        completion_server.fail_mid_stream = False


async def test_stream_from_an_endpoint_answering_a_web_page_is_dependency_unavailable(
    completion_server: CompletionServer,
) -> None:
    answerer = OpenAICompatibleAnswerer(
        base_url=completion_server.base_url.replace("/v1", "/ui/v1"), api_key=API_KEY, model=MODEL, timeout_s=5
    )

    with pytest.raises(DependencyUnavailable, match="without a chat completion stream"):
        _ = [d async for d in answerer.stream("When?", [SearchHit(text=MALLARDS)])]
    await answerer.client.aclose()


async def test_stream_with_a_wrong_key_is_dependency_unavailable(completion_server: CompletionServer) -> None:
    answerer = OpenAICompatibleAnswerer(
        base_url=completion_server.base_url, api_key="sk-wrong", model=MODEL, timeout_s=5
    )

    with pytest.raises(DependencyUnavailable, match=r"401 Unauthorized: .*Incorrect API key"):
        _ = [d async for d in answerer.stream("When?", [SearchHit(text=MALLARDS)])]
    await answerer.client.aclose()


async def test_a_provider_error_quoting_the_key_never_shows_it(completion_server: CompletionServer) -> None:
    secret = "sk-wrong-" + new_id("secret")
    answerer = OpenAICompatibleAnswerer(base_url=completion_server.base_url, api_key=secret, model=MODEL, timeout_s=5)

    with pytest.raises(DependencyUnavailable) as streamed:
        _ = [d async for d in answerer.stream("When?", [SearchHit(text=MALLARDS)])]
    await answerer.client.aclose()

    assert "Incorrect API key provided: ***" in str(streamed.value)
    assert secret not in str(streamed.value)


async def test_a_password_in_the_base_url_never_shows_in_errors(completion_server: CompletionServer) -> None:
    password = "pw-" + new_id("secret")
    base_url = completion_server.base_url.replace("http://", f"http://ana:{password}@")
    answerer = OpenAICompatibleAnswerer(base_url=base_url, api_key=API_KEY, model="no-such-model", timeout_s=5)

    with pytest.raises(DependencyUnavailable) as failed:
        await answerer.answer("When?", [SearchHit(text=MALLARDS)])
    await answerer.client.aclose()

    assert "the generation endpoint failed" in str(failed.value)
    assert password not in str(failed.value)


async def test_rewrite_asks_the_model_with_the_conversation(
    completion_server: CompletionServer, answerer: OpenAICompatibleAnswerer
) -> None:
    completion_server.rewrite_reply = '"When do mallards migrate?"'
    history = [Turn("user", "Where do mallards live?"), Turn("assistant", "In wetlands [1].")]

    query = await answerer.rewrite("When do they migrate?", history)

    assert query == "When do mallards migrate?"
    request = completion_server.received[-1]
    assert "user: Where do mallards live?" in request.messages[1].content
    assert request.messages[1].content.endswith("Last question: When do they migrate?")


async def test_first_question_is_not_sent_for_rewriting(
    completion_server: CompletionServer, answerer: OpenAICompatibleAnswerer
) -> None:
    before = len(completion_server.received)

    assert await answerer.rewrite("When do mallards migrate?", []) == "When do mallards migrate?"
    assert len(completion_server.received) == before


async def test_follow_up_in_a_conversation_is_searched_as_the_model_rewrote_it(
    completion_server: CompletionServer,
    answerer: OpenAICompatibleAnswerer,
    responder: SearchResponder,
    ports: Ports,
) -> None:
    responder.add_hit(MALLARDS, score=0.9)
    completion_server.reply = "In winter [1]."
    completion_server.rewrite_reply = "mallard migration season"
    ports.answerers["openai"] = answerer
    ports.provider = "openai"
    collection = new_id("col")
    first = await answer_question(Question("default", collection, "Tell me about mallards"), ports)

    follow_up = await answer_question(
        Question("default", collection, "When do they go?", conversation_id=first["conversation_id"]), ports
    )

    assert follow_up["query"] == "mallard migration season"
    assert responder.requests[-1].query == "mallard migration season"
    assert follow_up["sentences"] == [{"index": 0, "text": "In winter [1].", "citations": [1]}]
