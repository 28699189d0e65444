"""The OpenAI-compatible answerer against a real HTTP server speaking ``/v1/chat/completions``."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pytest
import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from ragstream_chat.answers import OpenAICompatibleAnswerer
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


@dataclass
class CompletionServer:
    """An OpenAI-compatible endpoint whose model replies ``reply`` and records every accepted request."""

    base_url: str
    reply: str = ""
    received: list[ChatCompletionRequest] = field(default_factory=list)


def openai_error(status: int, message: str, code: str) -> JSONResponse:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


def completion_app(server: CompletionServer) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def completions(
        body: ChatCompletionRequest, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any] | JSONResponse:
        if authorization != f"Bearer {API_KEY}":
            return openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        if body.model != MODEL:
            return openai_error(404, f"The model `{body.model}` does not exist.", "model_not_found")
        server.received.append(body)
        prompt_tokens = sum(len(m.content.split()) for m in body.messages)
        completion_tokens = len(server.reply.split())
        return {
            "id": f"chatcmpl-{new_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": server.reply, "refusal": None},
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
    ports.answerer = answerer

    result = await answer_question(Question("default", new_id("col"), "When do mallards migrate?"), ports)

    assert result["answer"] == "Mallards migrate south when winter comes [1]."
    assert result["mode"] == "openai"
    assert [(c["number"], c["document_id"], c["page"]) for c in result["citations"]] == [
        (1, "doc-1", 2),
        (2, "doc-2", 1),
    ]
    assert f"[1] {MALLARDS}" in completion_server.received[-1].messages[1].content
