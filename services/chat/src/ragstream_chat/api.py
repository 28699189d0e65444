"""REST adapter of the chat service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from pydantic import BaseModel, Field

from ragstream_chat.handlers import ChatPorts, Question, answer_question
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


def create_app(ports: ChatPorts, *, default_tenant: str) -> FastAPI:
    app = FastAPI(title="ragstream chat", version="0.1.0")
    app.state.ports = ports
    app.state.default_tenant = default_tenant
    error_handlers(app)
    app.include_router(router)
    return app
