"""Settings of the embedder (prefix ``RAGSTREAM_EMBEDDER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragstream_core.settings import CoreSettings


class EmbedderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_EMBEDDER_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    metrics_host: str = Field("127.0.0.1", description="Listen address of /metrics, /healthz, /readyz.")
    metrics_port: int = Field(9102, description="Port of /metrics, /healthz, /readyz.")
    qdrant_url: str = Field("", description="Qdrant server URL; empty means embedded under the data dir.")
    qdrant_api_key: str = Field("", description="Qdrant API key (server mode).")
    qdrant_collection: str = Field(
        "ragstream_chunks",
        description=(
            "Name of the chunk index: points live in Qdrant collection '<name>_v2' (dense + sparse), "
            "the registry of active versions in '<name>_documents'; a '<name>' of the first schema is migrated."
        ),
    )
    sparse_idf_per_collection: bool = Field(
        True,
        description=(
            "Sparse IDF over the searched collection's active chunks (true) "
            "or over every point (false: cheaper in embedded mode)."
        ),
    )
    batch_size: int = Field(32, gt=0, description="Chunks per model call.")
    pull_batch: int = Field(16, gt=0, description="Documents in flight at once; their chunks share batches.")
    pool_round: int = Field(512, gt=0, description="Chunks sorted by length together before batching.")
    threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads; 0 = all cores.")
