"""An OpenAI-compatible API over the collections: ``POST /v1/chat/completions`` and ``GET /v1/models``.

``model`` names a collection; the last message is the question and the messages before it are
the history that rewrites the retrieval query (stateless, as the OpenAI API is: nothing is
stored). Citations and linked sentences travel in the non-standard fields ``citations`` and
``sentences`` of the completion (streaming: of the last chunk, the one with ``finish_reason``).
Errors have OpenAI's shape ``{"error": {"message", "type", "code", "param"}}`` with the status of
``ERROR_TABLE``. The API key is the caller's ragstream key (``ragstream_core.auth``): it names the tenant.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import psycopg
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ragstream_chat.handlers import Delta, Done, Prepared, Question, answer_question, prepare
from ragstream_chat.ports import ChatPorts
from ragstream_chat.retrieval import Filters
from ragstream_chat.rewrite import Turn
from ragstream_core.auth import Caller
from ragstream_core.errors import InvalidInput, RagstreamError, UnprocessableInput, mapping_for, retry_after_s
from ragstream_core.runtime import error_response, invalid_data
from ragstream_core.tags import clean_tags

router = APIRouter(prefix="/v1")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str = ""


class CompletionMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class CompletionRequest(BaseModel):
    """What we read of a chat completion request; other OpenAI parameters are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, description="The collection to answer from.")
    messages: list[CompletionMessage] = Field(min_length=1)
    stream: bool = False
    metadata: dict[str, Any] | None = Field(
        None,
        description="OpenAI's request metadata; read here: tags (comma-separated, any-of), date_from and"
        " date_to (ISO 8601), the chat's retrieval filters.",
    )

    def filters(self) -> Filters:
        meta = self.metadata or {}
        tags = meta.get("tags") or []
        if not isinstance(tags, list | str) or (isinstance(tags, list) and not all(isinstance(t, str) for t in tags)):
            raise UnprocessableInput(
                "metadata.tags must be a comma-separated string (OpenAI metadata values are strings)"
                " or a list of strings"
            )
        return Filters.of(
            clean_tags([tags] if isinstance(tags, str) else tags, split_commas=True),
            _text(meta, "date_from"),
            _text(meta, "date_to"),
        )


def _text(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is not None and not isinstance(value, str):
        raise UnprocessableInput(f"metadata.{key} must be an ISO 8601 date or date-time string")
    return value


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """OpenAI's error object, the body of every refusal of these routes."""

    error: OpenAIErrorDetail


class BodyNotParsed(BaseModel):
    """FastAPI's answer to a body it cannot parse, given before the route runs."""

    detail: Any


#: the refusals of the OpenAI-compatible routes, in OpenAI's error shape (a 422 of request
#: validation keeps FastAPI's body, documented by ``document_errors``)
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": OpenAIError | BodyNotParsed,
        "description": "The request is refused (e.g. the last message is not the user's; the message says why), "
        "or its body could not be parsed (FastAPI's detail).",
    },
    401: {
        "model": OpenAIError,
        "description": "No API key, or one unknown, expired or revoked (code invalid_api_key).",
    },
    403: {"model": OpenAIError, "description": "The key may not make this request (code insufficient_permissions)."},
    404: {"model": OpenAIError, "description": "The model (collection) is not known."},
    422: {
        "model": OpenAIError,
        "description": "A field has the wrong type or shape (param names it), or a value is out of range.",
    },
    409: {
        "model": OpenAIError,
        "description": "The collection's own API key cannot be decrypted (the message says which key it needs).",
    },
    429: {
        "model": OpenAIError,
        "description": "A rate limit of the key or tenant is reached (type rate_limit_exceeded); see Retry-After.",
    },
    503: {"model": OpenAIError, "description": "Retrieval or generation is unavailable; retry later."},
}
#: the OpenAI-compatible routes: their refusals, also those before the route runs, are OpenAI's
OPENAI_ROUTES = frozenset({"/v1/chat/completions", "/v1/models"})
#: OpenAI's type and code of the statuses that OpenAI clients turn into their own exceptions
_OPENAI_KINDS: dict[int, tuple[str, str]] = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "insufficient_permissions"),
}


def openai_error(error: Exception) -> JSONResponse:
    status = mapping_for(error).http_status
    kind, code = _OPENAI_KINDS.get(status, ("invalid_request_error" if status < 500 else "api_error", ""))
    code = code or type(error).__name__
    headers = {"WWW-Authenticate": 'Bearer realm="ragstream"'} if status == 401 else {}
    if (wait := retry_after_s(error)) is not None:  # OpenAI's own 429: type and code rate_limit_exceeded
        kind = code = "rate_limit_exceeded"
        headers["Retry-After"] = str(wait)
    body = {"error": {"message": str(error), "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid_body(error: RequestValidationError) -> JSONResponse:
    """FastAPI's request validation as OpenAI's 422: each field and what is wrong with it."""
    problems = [(".".join(str(part) for part in e["loc"][1:]), e["msg"]) for e in error.errors()]
    message = "; ".join(f"{field or 'body'}: {msg}" for field, msg in problems)
    body = {"error": {"message": message, "type": "invalid_request_error", "param": problems[0][0] or None,
                      "code": "invalid_value"}}  # fmt: skip
    return JSONResponse(body, status_code=422)


def openai_error_handlers(app: FastAPI) -> None:
    """Answer what is refused on an OpenAI-compatible route before it runs (401 and 403 of
    ``authorize``, 422 of request validation) in OpenAI's shape, which OpenAI clients parse
    (``AuthenticationError``, ``PermissionDeniedError``, ``UnprocessableEntityError``); every
    other route keeps ``runtime.error_response`` and FastAPI's 422."""

    def on_openai_route(request: Request) -> bool:
        return getattr(request.scope.get("route"), "path", request.url.path) in OPENAI_ROUTES

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return openai_error(exc) if on_openai_route(request) else error_response(exc)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if on_openai_route(request):
            return _invalid_body(exc)
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RagstreamError, on_error)
    app.add_exception_handler(RequestValidationError, on_invalid)


def _question(tenant: str, body: CompletionRequest) -> Question:
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise InvalidInput("the last message must be the user's question, with text")
    history = [Turn(m.role, m.text()) for m in body.messages[:-1] if m.role in ("user", "assistant")]
    return Question(tenant, body.model, last.text(), history=history, filters=body.filters())


def _usage(prompt: str, answer: str) -> dict[str, int]:
    """Word counts: the answer is not generated by a tokenizer we could count with."""
    prompt_tokens, completion_tokens = len(prompt.split()), len(answer.split())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _chunk(completion_id: str, model: str, created: int, delta: dict[str, Any], **extra: Any) -> str:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": extra.pop("finish_reason", None)}
    chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
             "system_fingerprint": None, "choices": [choice], **extra}  # fmt: skip
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


async def _chunks(prepared: Prepared, model: str) -> AsyncIterator[str]:
    completion_id, created = f"chatcmpl-{prepared.message_id}", int(time.time())
    yield _chunk(completion_id, model, created, {"role": "assistant", "content": ""})
    try:
        async for event in prepared.events():
            if isinstance(event, Delta):
                yield _chunk(completion_id, model, created, {"content": event.text})
            elif isinstance(event, Done):
                yield _chunk(
                    completion_id, model, created, {}, finish_reason="stop",
                    citations=event.result["citations"], sentences=event.result["sentences"],
                    usage=_usage(prepared.question.text, event.result["answer"]),
                )  # fmt: skip
    except RagstreamError as exc:  # after the 200: OpenAI's way, an error object in the stream
        body = {"error": {"message": str(exc), "type": "api_error", "param": None, "code": type(exc).__name__}}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


@router.post("/chat/completions", response_model=None, responses=OPENAI_ERRORS)
async def chat_completions(
    request: Request, body: CompletionRequest, caller: Caller
) -> JSONResponse | StreamingResponse:
    """A chat completion answered from the collection ``model``, cited."""
    ports: ChatPorts = request.app.state.ports
    tenant = caller.tenant_id
    try:
        question = _question(tenant, body)
        if body.stream:
            prepared = await prepare(question, ports)
            return StreamingResponse(
                _chunks(prepared, body.model), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        result = await answer_question(question, ports)
    except RagstreamError as exc:
        return openai_error(exc)
    except psycopg.DataError as exc:
        return openai_error(invalid_data(exc))
    return JSONResponse(
        {
            "id": f"chatcmpl-{result['message_id']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result["answer"], "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(question.text, result["answer"]),
            "citations": result["citations"],
            "sentences": result["sentences"],
            "query": result["query"],
        }
    )


@router.get("/models", responses=OPENAI_ERRORS)
async def list_models(request: Request, caller: Caller) -> dict[str, Any]:
    """The collections chat knows (seen indexed, configured or chatted in) as models; any collection id
    works as ``model`` even when not listed."""
    ports: ChatPorts = request.app.state.ports
    tenant = caller.tenant_id
    known = await ports.collections.known(tenant)
    return {
        "object": "list",
        "data": [
            {"id": c["collection_id"], "object": "model", "created": int(c["since"].timestamp()), "owned_by": tenant}
            for c in known
        ],
    }
