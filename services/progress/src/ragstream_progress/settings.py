"""Settings of the progress service (prefix ``RAGSTREAM_PROGRESS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragstream_core.settings import CoreSettings


class ProgressSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_PROGRESS_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    http_host: str = Field("127.0.0.1", description="REST listen address.")
    http_port: int = Field(8081, description="REST port.")
    grpc_host: str = Field("127.0.0.1", description="gRPC listen address.")
    grpc_port: int = Field(50052, description="gRPC port.")
    pull_batch: int = Field(64, gt=0, description="Events applied per pull.")
    default_tenant: str = Field("default", description="Tenant of requests without X-Tenant-Id.")
    watch_interval_s: float = Field(0.25, gt=0, description="How often WatchJob looks for changes.")
