"""Settings of the ingest gateway (prefix ``RAGSTREAM_GATEWAY_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragstream_core.settings import CoreSettings


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_GATEWAY_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    http_host: str = Field("127.0.0.1", description="REST listen address.")
    http_port: int = Field(8080, description="REST port.")
    grpc_host: str = Field("127.0.0.1", description="gRPC listen address.")
    grpc_port: int = Field(50051, description="gRPC port (IngestService).")
    progress_url: str = Field("http://127.0.0.1:8081", description="Progress service URL given in job links.")
    max_upload_bytes: int = Field(100 * 1024 * 1024, gt=0, description="Larger uploads get 413.")
    default_tenant: str = Field("default", description="Tenant of requests without X-Tenant-Id.")
    embedding_model: str = Field("all-MiniLM-L6-v2", description="Recorded with each new collection.")
    embedding_dimensions: int = Field(384, gt=0, description="Recorded with each new collection.")
    republish_after_s: float = Field(10.0, gt=0, description="Unpublished uploads older than this are re-sent.")
