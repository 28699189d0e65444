"""Settings of the chat service (prefix ``RAGSTREAM_CHAT_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
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
    top_k: int = Field(5, gt=0, le=50, description="Passages retrieved per question.")
    min_score: float = Field(0.2, ge=-1, le=1, description="Passages scoring below are not cited.")
    search_timeout_s: float = Field(10.0, gt=0, description="How long to wait for the embedder's search.")
    provider: Literal["extractive", "openai"] = Field("extractive", description="How answers are written.")
    openai_base_url: str = Field("", description="OpenAI-compatible API base URL, e.g. http://host:8000/v1.")
    openai_api_key: str = Field("", description="API key of that endpoint.")
    openai_model: str = Field("", description="Model name at that endpoint.")
    openai_timeout_s: float = Field(60.0, gt=0, description="Generation timeout.")
    cache_entries: int = Field(1024, ge=0, description="Retrieval results kept until the collection changes.")
