-- Direct uploads: the client PUTs the bytes to a staging object (presigned S3 URL, or a
-- one-time gateway URL), then finalizes; unfinalized uploads expire.
-- status: pending → receiving (one-time URL in use) → received → finalizing → finalized | rejected;
-- pending/receiving/received → expired (the sweeper deletes the staging object).
CREATE TABLE gateway.uploads (
    upload_id       text PRIMARY KEY,
    tenant_id       text NOT NULL,
    collection_id   text NOT NULL,
    file_name       text NOT NULL,
    declared_size   bigint,
    declared_sha256 text,
    force           boolean NOT NULL DEFAULT false,
    staging_key     text NOT NULL,
    token_sha256    text,               -- one-time gateway URL only; NULL once used
    status          text NOT NULL DEFAULT 'pending',
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,        -- when the current receive or finalize began
    finished_at     timestamptz,
    document_id     text,               -- set when finalized: the version it made or found
    version         integer,
    unchanged       boolean,
    error           jsonb               -- set when rejected: the error answered to every finalize
);

CREATE INDEX uploads_open ON gateway.uploads (expires_at)
    WHERE status IN ('pending', 'receiving', 'received', 'finalizing');
