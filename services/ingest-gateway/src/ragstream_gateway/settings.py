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
    chat_url: str = Field("http://127.0.0.1:8082", description="Chat service URL the web page and widget call.")
    max_upload_bytes: int = Field(100 * 1024 * 1024, gt=0, description="Larger uploads get 413.")
    max_tabular_bytes: int = Field(
        50 * 1024 * 1024,
        gt=0,
        description="Larger tabular uploads (CSV, XLSX/XLSM, ODS, Parquet) get 413; never above max_upload_bytes.",
    )
    max_batch_files: int = Field(100, gt=0, description="Files per batch upload request; more get 413.")
    max_batch_bytes: int = Field(1024 * 1024 * 1024, gt=0, description="Batch requests announcing more get 413.")
    quota_bytes: int = Field(
        0, ge=0, description="Bytes a tenant may store (each stored object of its live documents once); 0: no quota."
    )
    quota_documents: int = Field(0, ge=0, description="Live documents a tenant may have; 0: no quota.")
    upload_ttl_s: float = Field(3600.0, gt=0, description="Unfinalized direct uploads expire after this.")
    upload_sweep_s: float = Field(60.0, gt=0, description="How often expired direct uploads are cleaned up.")
    default_tenant: str = Field("default", description="Tenant of requests without X-Tenant-Id.")
    session_ttl_s: float = Field(
        900.0, gt=0, le=86_400, description="Lifetime of a session (POST /v1/sessions): a short-lived key for a page."
    )
    embedding_model: str = Field("all-MiniLM-L6-v2", description="Recorded with each new collection.")
    embedding_dimensions: int = Field(384, gt=0, description="Recorded with each new collection.")
    republish_after_s: float = Field(10.0, gt=0, description="Unpublished uploads older than this are re-sent.")
    web_max_crawls: int = Field(2, gt=0, description="Crawls one gateway runs at once; more wait queued.")
    web_max_fetches: int = Field(4, gt=0, description="Pages one gateway fetches and takes in at once.")
    web_fetch_timeout_s: float = Field(30.0, gt=0, description="Time a crawled page has to answer completely.")
    web_lease_s: float = Field(30.0, gt=0, description="A crawl whose gateway stopped this long ago is resumed.")
    web_allow_private_addresses: bool = Field(
        False, description="Let crawls fetch loopback and private-network hosts (tests, intranet sites)."
    )
    collection_concurrency: int = Field(
        3, gt=0, description="Jobs one collection may have in flight while other collections' work waits."
    )
    strict_caps: bool = Field(
        False, description="Hold a collection at its cap even when nothing else waits (default: use idle capacity)."
    )
    max_released_jobs: int = Field(16, gt=0, description="Jobs released to the pipeline and unfinished, in all.")
    schedule_interval_s: float = Field(1.0, gt=0, description="The scheduler releases work at least this often.")
    stall_after_s: float = Field(600.0, gt=0, description="A released job with no event this long is re-driven.")
    stall_check_s: float = Field(30.0, gt=0, description="How often the scheduler looks for stalled jobs.")
    max_redrives: int = Field(2, ge=0, description="Re-drives of a stalled job before it fails with the reason.")
    consistency_min_age_s: float = Field(
        300.0,
        ge=0,
        description="The consistency check leaves objects younger than this, and points of documents deleted"
        " more recently, alone (an upload or a delete may still be under way).",
    )
    index_timeout_s: float = Field(60.0, gt=0, description="Time the embedder has to answer an index request.")
