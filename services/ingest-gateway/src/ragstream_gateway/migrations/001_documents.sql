CREATE SCHEMA IF NOT EXISTS gateway;

CREATE TABLE gateway.collections (
    tenant_id       text NOT NULL,
    collection_id   text NOT NULL,
    embedding_model text NOT NULL,
    dimensions      integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, collection_id)
);

CREATE TABLE gateway.documents (
    document_id   text PRIMARY KEY,
    tenant_id     text NOT NULL,
    collection_id text NOT NULL,
    file_name     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, collection_id, file_name),
    FOREIGN KEY (tenant_id, collection_id) REFERENCES gateway.collections (tenant_id, collection_id)
);

CREATE TABLE gateway.document_versions (
    document_id  text NOT NULL REFERENCES gateway.documents (document_id),
    version      integer NOT NULL,
    job_id       text NOT NULL UNIQUE,
    sha256       text NOT NULL,
    object_key   text NOT NULL,
    media_type   text NOT NULL,
    size_bytes   bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (document_id, version)
);

CREATE INDEX document_versions_sha ON gateway.document_versions (sha256);
CREATE INDEX document_versions_unpublished ON gateway.document_versions (created_at) WHERE published_at IS NULL;
