"""REST adapter of the chat service."""

from __future__ import annotations

from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from pydantic import BaseModel, Field

from ragstream_chat.handlers import ChatPorts, Question, answer_question
from ragstream_core.grpc_server import tenant_from
from ragstream_core.proto.ragstream.v1 import chat_pb2, chat_pb2_grpc
from ragstream_core.runtime import error_handlers

router = APIRouter(prefix="/v1")


class ChatRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000, description="What to ask the collection.")
    top_k: int | None = Field(None, gt=0, le=50, description="Passages to retrieve.")


def ports_of(request: Request) -> ChatPorts:
    ports: ChatPorts = request.app.state.ports
    return ports


Ports = Annotated[ChatPorts, Depends(ports_of)]


def tenant_of(request: Request, x_tenant_id: Annotated[str | None, Header()] = None) -> str:
    return x_tenant_id or str(request.app.state.default_tenant)


Tenant = Annotated[str, Depends(tenant_of)]


@router.post("/collections/{collection_id}/chat")
async def chat(collection_id: str, body: ChatRequest, ports: Ports, tenant: Tenant) -> dict[str, Any]:
    """Answer a question from the collection's documents, with citations."""
    return await answer_question(Question(tenant, collection_id, body.question, body.top_k), ports)


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    """gRPC ``ChatService``; the tenant comes from the ``x-tenant-id`` metadata."""

    def __init__(self, ports: ChatPorts, *, default_tenant: str) -> None:
        self.ports = ports
        self.default_tenant = default_tenant

    async def Ask(
        self,
        request: chat_pb2.AskRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> chat_pb2.AskResponse:
        tenant = request.tenant_id or tenant_from(context, self.default_tenant)
        question = Question(tenant, request.collection_id, request.question, request.top_k or None)
        answer = await answer_question(question, self.ports)
        return chat_pb2.AskResponse(
            answer=answer["answer"],
            mode=answer["mode"],
            citations=[
                chat_pb2.Citation(
                    number=c["number"],
                    document_id=c["document_id"],
                    version=c["version"],
                    file_name=c["file_name"],
                    heading_path=c["heading_path"],
                    page=c["page"] or 0,
                    text=c["text"],
                    score=c["score"],
                )
                for c in answer["citations"]
            ],
        )


def create_app(ports: ChatPorts, *, default_tenant: str) -> FastAPI:
    app = FastAPI(title="ragstream chat", version="0.1.0")
    app.state.ports = ports
    app.state.default_tenant = default_tenant
    error_handlers(app)
    app.include_router(router)
    return app
