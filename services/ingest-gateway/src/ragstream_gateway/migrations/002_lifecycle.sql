-- Document lifecycle: collection settings, lineage, version status, delete, audit.

ALTER TABLE gateway.collections
    ADD COLUMN description     text NOT NULL DEFAULT '',
    ADD COLUMN chunking        text NOT NULL DEFAULT 'structure',
    ADD COLUMN embed_columns   text[] NOT NULL DEFAULT '{}',
    ADD COLUMN context_columns text[] NOT NULL DEFAULT '{}',
    ADD COLUMN created_by      text NOT NULL DEFAULT 'anonymous',
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deleted_at      timestamptz;

-- A deleted document keeps its row (the audit trail and lineage refer to it); its name is free again.
ALTER TABLE gateway.documents
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN deleted_by text,
    ADD COLUMN source_url text,
    ADD COLUMN created_by text NOT NULL DEFAULT 'anonymous',
    DROP CONSTRAINT documents_tenant_id_collection_id_file_name_key;
CREATE UNIQUE INDEX documents_live_name ON gateway.documents (tenant_id, collection_id, file_name)
    WHERE deleted_at IS NULL;

-- status: processing → indexed | failed | cancelled; an indexed version becomes superseded
-- when a newer one is indexed, and deleted with its document.
ALTER TABLE gateway.document_versions
    ADD COLUMN reason      text NOT NULL DEFAULT 'upload',
    ADD COLUMN label       text NOT NULL DEFAULT '',
    ADD COLUMN uploaded_by text NOT NULL DEFAULT 'anonymous',
    ADD COLUMN file_name   text NOT NULL DEFAULT '',
    ADD COLUMN status      text NOT NULL DEFAULT 'processing',
    ADD COLUMN chunk_count integer,
    ADD COLUMN page_count  integer,
    ADD COLUMN warnings    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN error       text,
    ADD COLUMN finished_at timestamptz;
UPDATE gateway.document_versions v SET file_name = d.file_name FROM gateway.documents d
    WHERE d.document_id = v.document_id;
CREATE INDEX document_versions_running ON gateway.document_versions (document_id) WHERE status = 'processing';

-- Deletes are announced through the same outbox pattern as uploads.
CREATE TABLE gateway.deletions (
    job_id            text PRIMARY KEY,
    tenant_id         text NOT NULL,
    collection_id     text NOT NULL,
    document_id       text NOT NULL REFERENCES gateway.documents (document_id),
    version           integer NOT NULL,
    file_name         text NOT NULL,
    actor             text NOT NULL,
    cancelled_job_ids text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz
);

CREATE TABLE gateway.audit_log (
    audit_id      bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    tenant_id     text NOT NULL,
    actor         text NOT NULL,
    action        text NOT NULL,
    collection_id text,
    document_id   text,
    version       integer,
    outcome       text NOT NULL,
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_document ON gateway.audit_log (tenant_id, document_id, audit_id);
CREATE INDEX audit_by_collection ON gateway.audit_log (tenant_id, collection_id, audit_id);
CREATE INDEX audit_by_actor ON gateway.audit_log (tenant_id, actor, audit_id);
CREATE INDEX audit_by_time ON gateway.audit_log (tenant_id, at);
