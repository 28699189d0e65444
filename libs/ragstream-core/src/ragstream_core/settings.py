"""Typed settings shared by every service (prefix ``RAGSTREAM_``).

Services keep their own settings class with their own prefix and hold a ``CoreSettings``
in the field ``core``. Defaults are those of ``make run``: everything under ``./data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragstream_core.secrets import SecretBox


class CoreSettings(BaseSettings):
    """Settings every service needs: the bus, storage, database, logs and retries."""

    # several values are credentials (keys, URLs with passwords): a refusal never echoes the input
    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Field(Path("data"), description="Root of embedded state (objects, index).")
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server with JetStream.")
    nats_user: str = Field(
        "",
        description="This service's NATS user, with its role's subjects only (ragstream_core.nats_users);"
        " empty: none (or the user in RAGSTREAM_NATS_URL).",
    )
    nats_password: str = Field("", description="The password of RAGSTREAM_NATS_USER.")
    postgres_url: str = Field("", description="PostgreSQL URL; empty means the one `make run` starts (see devstack).")
    object_store: Literal["local", "s3"] = Field("local", description="Where uploads live.")
    s3_endpoint: str = Field("127.0.0.1:9000", description="S3/MinIO host:port.")
    s3_access_key: str = Field("", description="S3 access key.")
    s3_secret_key: str = Field("", description="S3 secret key.")
    s3_bucket: str = Field("ragstream", description="Bucket for uploads and parsed chunks.")
    s3_secure: bool = Field(False, description="Use TLS towards S3.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_public_url: str = Field(
        "",
        description="Scheme, host and port clients reach S3 at (e.g. https://objects.example.com), when"
        " RAGSTREAM_S3_ENDPOINT is private (an in-cluster Service): direct-upload URLs are signed for it."
        " Empty: the endpoint.",
    )
    log_format: Literal["console", "json"] = Field("console", description="Log renderer.")
    log_level: str = Field("INFO", description="Minimum log level.")
    max_deliver: int = Field(5, gt=0, description="Deliveries before a job fails and dead-letters.")
    ack_wait_s: float = Field(30.0, gt=0, description="Redelivery delay of an unacked message.")
    retry_delay_s: float = Field(1.0, ge=0, description="First retry delay; doubles per attempt.")
    traces_file: str = Field("", description="Without an OTLP endpoint: append finished spans to this JSONL file.")
    consumer_poll_s: float = Field(5.0, gt=0, description="How often consumer lag is read from JetStream.")
    stream_replicas: int = Field(
        1,
        ge=1,
        le=5,
        description="Replicas of the JetStream streams and KV bucket a service creates (3 on a 3-node cluster;"
        " a single server accepts only 1). An existing stream with fewer replicas is raised to this.",
    )
    cors_origins: str = Field(
        "http://localhost:8080,http://127.0.0.1:8080",
        description="Comma-separated origins whose pages may call the REST APIs from a browser (the gateway's"
        " web page, sites embedding the chat widget); `*` allows any.",
    )

    auth_mode: Literal["open", "keys"] = Field(
        "keys",
        description="keys: every request needs an API key (Authorization: Bearer); open: no check, each request is"
        " an admin of X-Tenant-Id (make run sets it, for one person on localhost).",
    )
    auth_cache_s: float = Field(5.0, ge=0, description="Seconds a valid API key is cached; a revocation takes as long.")
    bootstrap_admin_key: SecretStr = Field(
        SecretStr(""),
        description="An admin key of the default tenant from configuration (at least 32 characters), installed by"
        " the gateway at start: the first key of a new deployment. Changing it replaces the previous one.",
    )

    secret_keys: SecretStr = Field(
        SecretStr(""),
        description="Keys that encrypt tenant secrets at rest (a collection's provider API key): comma-separated,"
        " each 32 random bytes in base64 (`openssl rand -base64 32`); the first encrypts, every one decrypts."
        " Empty: storing a secret is refused (make run and the test stacks keep a generated key in the data dir).",
    )

    @field_validator("secret_keys")
    @classmethod
    def _secret_keys_are_keys(cls, value: SecretStr) -> SecretStr:
        SecretBox.from_config(value.get_secret_value())  # raises naming the position, never the key
        return value

    rate_window_s: float = Field(
        60.0, gt=0, description="The window of every rate limit: a limit of N allows N requests per window (burst N)."
    )
    rate_upload_per_key: int = Field(
        1200,
        ge=0,
        description="Upload calls (REST, batch, direct, gRPC, web crawls) one API key may make per window; 0: off.",
    )
    rate_upload_per_tenant: int = Field(
        2400, ge=0, description="Upload calls of all a tenant's keys per window; 0: off."
    )
    rate_chat_per_key: int = Field(
        3000,
        ge=0,
        description="Questions (REST, SSE, WebSocket, gRPC, OpenAI-compatible) one key may ask per window; 0: off.",
    )
    rate_chat_per_tenant: int = Field(6000, ge=0, description="Questions of all a tenant's keys per window; 0: off.")

    @field_validator("s3_public_url")
    @classmethod
    def _public_url_is_an_origin(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
            raise ValueError(
                f"RAGSTREAM_S3_PUBLIC_URL must be http(s)://host[:port] with no path or query, got {value!r}"
            )
        return value.rstrip("/")

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]
