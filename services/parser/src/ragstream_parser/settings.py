"""Settings of the parser (prefix ``RAGSTREAM_PARSER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragstream_core.settings import CoreSettings


class ParserSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_PARSER_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    metrics_host: str = Field("127.0.0.1", description="Listen address of /metrics, /healthz, /readyz.")
    metrics_port: int = Field(9101, description="Port of /metrics, /healthz, /readyz.")
    pull_batch: int = Field(1, gt=0, description="Documents parsed at once (Docling is CPU-bound).")
    max_chunk_tokens: int = Field(
        254, gt=16, description="Chunk size in the embedding model's tokens (its 256 minus [CLS]/[SEP])."
    )
    max_pages: int = Field(2_000, gt=0, description="Longer documents fail with a reason.")
