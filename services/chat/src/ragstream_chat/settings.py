"""Settings of the chat service (prefix ``RAGSTREAM_CHAT_``).

``provider``, ``min_score`` and ``top_k`` are the defaults of collections that have no chat
settings of their own (``PUT /v1/collections/{c}/chat/settings``). The database is the core
setting ``RAGSTREAM_POSTGRES_URL``.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragstream_core.settings import CoreSettings


class ChatSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_CHAT_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    http_host: str = Field("127.0.0.1", description="REST listen address.")
    http_port: int = Field(8082, description="REST port.")
    grpc_host: str = Field("127.0.0.1", description="gRPC listen address.")
    grpc_port: int = Field(50053, description="gRPC port (ChatService).")
    default_tenant: str = Field("default", description="Tenant of requests without X-Tenant-Id.")
    top_k: int = Field(5, gt=0, le=50, description="Passages retrieved per question (default of collections).")
    min_score: float = Field(
        0.2, ge=-1, le=1, description="Passages scoring below are not cited; none left: I don't know (default)."
    )
    search_timeout_s: float = Field(10.0, gt=0, description="How long to wait for the embedder's search.")
    provider: Literal["extractive", "openai"] = Field(
        "extractive", description="How answers are written (default of collections)."
    )
    openai_base_url: str = Field(
        "", description="OpenAI-compatible API base URL, e.g. http://host:8000/v1; set, the 'openai' provider exists."
    )
    openai_api_key: str = Field("", description="API key of that endpoint.")
    openai_model: str = Field("", description="Model name at that endpoint.")
    openai_timeout_s: float = Field(60.0, gt=0, description="Generation timeout.")
    cache_entries: int = Field(1024, ge=0, description="Retrieval results kept until the collection changes.")
    history_turns: int = Field(6, ge=0, le=100, description="Messages of a conversation used to rewrite a follow-up.")

    @model_validator(mode="after")
    def _openai_needs_an_endpoint(self) -> Self:
        if self.provider == "openai" and not (self.openai_base_url and self.openai_model):
            raise ValueError(
                "RAGSTREAM_CHAT_PROVIDER=openai needs RAGSTREAM_CHAT_OPENAI_BASE_URL and RAGSTREAM_CHAT_OPENAI_MODEL"
            )
        return self
