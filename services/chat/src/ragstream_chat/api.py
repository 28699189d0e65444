"""REST adapter of the chat service: questions (JSON, SSE, WebSocket), conversations, collection settings.

``POST /v1/collections/{c}/chat`` answers with JSON, or streams Server-Sent Events when the body
says ``"stream": true`` or the request accepts ``text/event-stream`` (the convention of the
OpenAI and Anthropic APIs). Events: ``started``, ``citation``, ``delta``, ``sentence``, ``done``,
and ``error`` if generation fails after the stream began. The WebSocket at
``/v1/collections/{c}/chat/ws`` takes one JSON question per message and sends the same events
as JSON objects ``{"event": name, "data": {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, SecretStr, ValidationError

from ragstream_chat.collection_provider import EndpointUpdate
from ragstream_chat.collection_settings import CollectionChat
from ragstream_chat.handlers import (
    ChatEvent,
    Prepared,
    Question,
    answer_question,
    chat_settings,
    configure_collection,
    prepare,
)
from ragstream_chat.openai_api import openai_error_handlers
from ragstream_chat.openai_api import router as openai_router
from ragstream_chat.ports import ChatPorts
from ragstream_chat.retrieval import Filters
from ragstream_core.auth import AuditRefusedChanges, Authenticator, Caller, Principal, RatePolicy, RolePolicy, authorize
from ragstream_core.errors import Forbidden, InvalidInput, RagstreamError
from ragstream_core.runtime import declare_rate_limits, error_handlers

router = APIRouter(prefix="/v1")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ChatRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000, description="What to ask the collection.")
    top_k: int | None = Field(None, gt=0, le=50, description="Passages to retrieve.")
    conversation_id: str | None = Field(None, max_length=100, description="Continue it; omit to start one.")
    stream: bool = Field(False, description="Answer as Server-Sent Events.")
    tags: list[str] | None = Field(
        None, description="Only documents carrying any of these tags (any-of, compared lower-cased)."
    )
    date_from: str | None = Field(
        None, description="Only versions created at or after this ISO 8601 date or date-time (UTC if no offset)."
    )
    date_to: str | None = Field(
        None, description="Only versions created at or before this ISO 8601 date (the whole day) or date-time."
    )


class ConversationRequest(BaseModel):
    title: str = Field("", max_length=200, description="Shown in lists; the first question when empty.")


class ChatSettingsRequest(BaseModel):
    provider: str | None = Field(None, description="Provider name; null for the service default.")
    min_score: float | None = Field(None, ge=-1, le=1, description="Passages below are ignored; null: default.")
    top_k: int | None = Field(None, gt=0, le=50, description="Passages per question; null: default.")
    openai_base_url: str | None = Field(
        None,
        max_length=2000,
        description="The collection's own OpenAI-compatible endpoint (e.g. https://api.example.com/v1), used when its"
        " provider is openai; null: the service's.",
    )
    openai_model: str | None = Field(None, max_length=200, description="Model at that endpoint (needed with it).")
    api_key: SecretStr | None = Field(
        None,
        description="API key of that endpoint; write-only (answers show api_key_set and at most api_key_last4)."
        " Stored encrypted. Omitted: the stored key is kept while openai_base_url stays the same; null or empty:"
        " removed.",
    )

    def endpoint(self) -> EndpointUpdate:
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        return EndpointUpdate(self.openai_base_url, self.openai_model, key, "api_key" in self.model_fields_set)

    def audited(self) -> dict[str, object]:
        """What the audit log records of the request: never the key, only whether one was sent."""
        return self.model_dump(exclude={"api_key"}) | {"api_key_sent": "api_key" in self.model_fields_set}


def ports_of(request: Request) -> ChatPorts:
    ports: ChatPorts = request.app.state.ports
    return ports


Ports = Annotated[ChatPorts, Depends(ports_of)]


def tenant_of(caller: Caller) -> str:
    """The caller's tenant: its API key's (``keys`` mode) or ``X-Tenant-Id`` (``open`` mode)."""
    return caller.tenant_id


Tenant = Annotated[str, Depends(tenant_of)]


async def _audit(request: Request, action: str, *, target: str, detail: dict[str, object] | None = None) -> None:
    """Record a change the caller made in the shared audit log (the gateway's ``audit_log``)."""
    authenticator: Authenticator = request.app.state.authenticator
    await authenticator.record(request.state.principal, action, target=target, detail=detail)


def sse(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def sse_events(prepared: Prepared) -> AsyncIterator[str]:
    """The events of ``prepared`` as SSE; a failure mid-answer becomes an ``error`` event."""
    try:
        async for event in prepared.events():
            yield sse(event.name, event.data())
    except RagstreamError as exc:
        yield sse("error", {"error": type(exc).__name__, "detail": str(exc)})


def _question(tenant: str, collection_id: str, body: ChatRequest) -> Question:
    filters = Filters.of(body.tags, body.date_from, body.date_to)
    return Question(tenant, collection_id, body.question, body.top_k, body.conversation_id or "", filters=filters)


#: a stored secret that cannot be sealed (no RAGSTREAM_SECRET_KEYS) or opened (none of its keys)
SECRET_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    409: {"description": "A secret cannot be stored (no secret key is configured) or the collection's API key"
          " cannot be decrypted (no configured key encrypted it): the detail names the collection and key."}
}  # fmt: skip


#: one Server-Sent Event of a streamed answer: its name (started, citation, delta, sentence, done,
#: error) and its JSON data
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
}


@router.post(
    "/collections/{collection_id}/chat",
    response_model=None,
    responses={
        **SECRET_UNAVAILABLE,
        200: {
            "description": "The answer (JSON), or with stream=true or Accept: text/event-stream its events (SSE).",
            "content": {"application/json": {}, "text/event-stream": {"schema": SSE_EVENT}},
        },
    },
)
async def chat(
    collection_id: str,
    body: ChatRequest,
    ports: Ports,
    tenant: Tenant,
    accept: Annotated[str, Header()] = "",
) -> dict[str, Any] | StreamingResponse:
    """Answer a question from the collection's documents, with citations (JSON, or SSE when streaming)."""
    question = _question(tenant, collection_id, body)
    if body.stream or "text/event-stream" in accept:
        prepared = await prepare(question, ports)
        return StreamingResponse(sse_events(prepared), media_type="text/event-stream", headers=SSE_HEADERS)
    return await answer_question(question, ports)


def _ws_event(event: ChatEvent) -> dict[str, Any]:
    return {"event": event.name, "data": event.data()}


@router.websocket("/collections/{collection_id}/chat/ws")
async def chat_socket(websocket: WebSocket, collection_id: str, caller: Caller) -> None:
    """Questions in, events out, any number per connection; errors are ``error`` events, the socket stays.

    Each question counts against the chat rate limits; a refused one is an ``error`` event
    (``RateLimited`` with ``retry_after_s``)."""
    ports: ChatPorts = websocket.app.state.ports
    authenticator: Authenticator = websocket.app.state.authenticator
    tenant = caller.tenant_id
    await websocket.accept()
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                body = ChatRequest.model_validate_json(raw)
                await authenticator.throttle(caller, "chat")
                prepared = await prepare(_question(tenant, collection_id, body), ports)
                async for event in prepared.events():
                    await websocket.send_json(_ws_event(event))
            except ValidationError as exc:
                error = InvalidInput(f"a question is a JSON object {{'question': '...'}}: {exc.errors()[0]['msg']}")
                await websocket.send_json({"event": "error", "data": {"error": "InvalidInput", "detail": str(error)}})
            except RagstreamError as exc:
                data = {"error": type(exc).__name__, "detail": str(exc), **exc.details}
                await websocket.send_json({"event": "error", "data": data})
    except WebSocketDisconnect:
        return


@router.post("/collections/{collection_id}/conversations", status_code=201)
async def create_conversation(
    request: Request, collection_id: str, body: ConversationRequest, ports: Ports, tenant: Tenant
) -> dict[str, Any]:
    """An empty conversation; ask in it with ``conversation_id``."""
    created = await ports.conversations.create(tenant, collection_id, title=body.title)
    await _audit(request, "conversation.create", target=str(created.get("conversation_id")))
    return created


@router.get("/conversations")
async def list_conversations(
    ports: Ports,
    tenant: Tenant,
    collection_id: Annotated[str | None, Query(description="Only this collection's.")] = None,
    limit: Annotated[int, Query(gt=0, le=500)] = 50,
) -> dict[str, Any]:
    """The tenant's conversations, most recently active first."""
    items = await ports.conversations.list(tenant, collection_id=collection_id, limit=limit)
    return {"conversations": items}


@router.get("/collections/{collection_id}/conversations")
async def list_collection_conversations(
    collection_id: str, ports: Ports, tenant: Tenant, limit: Annotated[int, Query(gt=0, le=500)] = 50
) -> dict[str, Any]:
    """The collection's conversations, most recently active first."""
    return {"conversations": await ports.conversations.list(tenant, collection_id=collection_id, limit=limit)}


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    """The conversation with its messages; answers carry their citations and sentences."""
    return await ports.conversations.get(tenant, conversation_id)


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(request: Request, conversation_id: str, ports: Ports, tenant: Tenant) -> Response:
    await ports.conversations.delete(tenant, conversation_id)
    await _audit(request, "conversation.delete", target=conversation_id)
    return Response(status_code=204)


@router.get("/collections/{collection_id}/chat/settings")
async def get_chat_settings(collection_id: str, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    """How the collection is answered: each value and whether it is the collection's or the default."""
    return await chat_settings(tenant, collection_id, ports)


@router.put("/collections/{collection_id}/chat/settings", responses=SECRET_UNAVAILABLE)
async def put_chat_settings(
    request: Request, collection_id: str, body: ChatSettingsRequest, ports: Ports, tenant: Tenant
) -> dict[str, Any]:
    """Replace the collection's settings; a null value means the service default. The API key is
    stored encrypted and never returned. Changing the endpoint or its key needs an admin: chat
    sends the collection's questions and passages there (an editor may change everything else,
    and resend the endpoint as it is)."""
    chat = CollectionChat(body.provider, body.min_score, body.top_k)
    await _endpoint_change_needs_admin(request.state.principal, tenant, collection_id, body, ports)
    configured = await configure_collection(tenant, collection_id, chat, ports, endpoint=body.endpoint())
    await _audit(request, "chat_settings.update", target=collection_id, detail=body.audited())
    return configured


async def _endpoint_change_needs_admin(
    caller: Principal, tenant: str, collection_id: str, body: ChatSettingsRequest, ports: ChatPorts
) -> None:
    if caller.allows("admin"):
        return
    stored = (await ports.collections.settings(tenant, collection_id)).endpoint
    now = (stored.base_url, stored.model) if stored is not None else (None, None)
    if "api_key" in body.model_fields_set or (body.openai_base_url, body.openai_model) != now:
        raise Forbidden(
            f"changing a collection's OpenAI-compatible endpoint or its API key needs the role admin; the key"
            f" {caller.key_id} has the role {caller.role} (it may change provider, min_score and top_k, sending"
            " openai_base_url and openai_model as they are and no api_key)",
            needed_role="admin",
            role=caller.role,
        )


#: the role of each route where the default (GET: viewer, else editor) is not right: asking, and
#: keeping one's conversations, is a viewer's; a collection's chat settings are an editor's
ROLES: RolePolicy = {
    ("POST", "/v1/collections/{collection_id}/chat"): "viewer",
    ("POST", "/v1/collections/{collection_id}/conversations"): "viewer",
    ("DELETE", "/v1/conversations/{conversation_id}"): "viewer",
    ("POST", "/v1/chat/completions"): "viewer",
}

#: the routes that count against the chat rate limits (``ragstream_core.auth.ratelimit``); a
#: WebSocket is charged per question it carries (``chat_socket``), not for its handshake
RATES: RatePolicy = {
    ("POST", "/v1/collections/{collection_id}/chat"): "chat",
    ("POST", "/v1/chat/completions"): "chat",
}


def create_app(ports: ChatPorts, *, default_tenant: str, authenticator: Authenticator | None = None) -> FastAPI:
    """The chat app; ``authenticator`` decides every /v1 request (default: ``open`` mode, for tests
    of other concerns: ``main`` always passes the configured one)."""
    app = FastAPI(title="ragstream chat", version="0.1.0")
    app.state.ports = ports
    app.state.default_tenant = default_tenant
    authenticator = authenticator or Authenticator(mode="open", default_tenant=default_tenant)
    authenticator.policy = {**ROLES, **authenticator.policy}
    authenticator.rates = {**RATES, **authenticator.rates}
    app.state.authenticator = authenticator
    error_handlers(app)
    app.add_middleware(AuditRefusedChanges)
    openai_error_handlers(app)
    app.include_router(router, dependencies=[Depends(authorize)])
    app.include_router(openai_router, dependencies=[Depends(authorize)])
    declare_rate_limits(app, authenticator.rates)
    return app
