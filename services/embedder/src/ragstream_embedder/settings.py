"""Settings of the embedder (prefix ``RAGSTREAM_EMBEDDER_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragstream_core.settings import CoreSettings


class EmbedderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_EMBEDDER_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    metrics_host: str = Field("127.0.0.1", description="Listen address of /metrics, /healthz, /readyz.")
    metrics_port: int = Field(9102, description="Port of /metrics, /healthz, /readyz.")
    qdrant_url: str = Field("", description="Qdrant server URL; empty means the embedded engine under the data dir.")
    engine: Literal["edge", "qdrant-local"] = Field(
        "edge",
        description=(
            "Embedded engine when no Qdrant URL is set: 'edge' (Qdrant Edge, HNSW, '<data dir>/edge/<name>'; "
            "a 'qdrant-local' store found on disk is migrated into it) or 'qdrant-local' "
            "(qdrant-client local mode, '<data dir>/qdrant', brute force)."
        ),
    )
    edge_optimize_idle_s: float = Field(
        5.0, ge=0, description="Edge engine: seconds without writes before the background HNSW build starts."
    )
    edge_build_tail_points: int = Field(
        20_000,
        ge=0,
        description=(
            "Edge engine: points written since the last HNSW build that start the next one even while writes"
            " go on (a long ingest keeps at most about this many points to exact search); 0: only when idle."
        ),
    )
    edge_indexing_threads: int = Field(
        1, ge=0, description="Edge engine: threads building HNSW in the background (0 = all cores)."
    )
    qdrant_api_key: str = Field("", description="Qdrant API key (server mode).")
    qdrant_shard_number: int = Field(
        0, ge=0, description="Shards of the collections the embedder creates on a Qdrant server; 0 = server default."
    )
    qdrant_replication_factor: int = Field(
        0,
        ge=0,
        description="Copies of each shard on distinct Qdrant peers (2+ survives a lost peer); 0 = server default."
        " Applied when a collection is created.",
    )
    qdrant_write_consistency_factor: int = Field(
        0,
        ge=0,
        description="Replicas that must acknowledge a write before it succeeds (at most the replication factor);"
        " 0 = server default (1).",
    )

    @model_validator(mode="after")
    def _consistency_within_replication(self) -> EmbedderSettings:
        if self.qdrant_replication_factor and self.qdrant_write_consistency_factor > self.qdrant_replication_factor:
            raise ValueError(
                f"RAGSTREAM_EMBEDDER_QDRANT_WRITE_CONSISTENCY_FACTOR ({self.qdrant_write_consistency_factor}) must"
                f" not exceed RAGSTREAM_EMBEDDER_QDRANT_REPLICATION_FACTOR ({self.qdrant_replication_factor})"
            )
        return self

    qdrant_collection: str = Field(
        "ragstream_chunks",
        description=(
            "Name of the chunk index: with qdrant-client, points live in collection '<name>_v2' (dense + sparse), "
            "the registry of active versions in '<name>_documents' (a '<name>' of the first schema is migrated); "
            "with edge, in '<data dir>/edge/<name>'."
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
