CREATE SCHEMA IF NOT EXISTS progress;

CREATE TABLE progress.jobs (
    job_id          text PRIMARY KEY,
    tenant_id       text NOT NULL,
    collection_id   text NOT NULL,
    document_id     text NOT NULL,
    version         integer NOT NULL,
    file_name       text NOT NULL,
    status          text NOT NULL,
    stage_rank      integer NOT NULL,
    percent         integer NOT NULL DEFAULT 0,
    pages           integer NOT NULL DEFAULT 0,
    chunks          integer NOT NULL DEFAULT 0,
    chunks_embedded integer NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 1,
    error_stage     text,
    error_reason    text,
    trace_id        text NOT NULL DEFAULT '',
    timestamps      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX jobs_by_collection ON progress.jobs (tenant_id, collection_id, created_at DESC);
CREATE INDEX jobs_by_status ON progress.jobs (tenant_id, status, created_at DESC);

-- Every applied event, once: the projection's idempotency key and each job's history.
CREATE TABLE progress.job_events (
    event_id        text PRIMARY KEY,
    job_id          text NOT NULL,
    status          text NOT NULL,
    stream_sequence bigint NOT NULL,
    trace_id        text NOT NULL DEFAULT '',
    occurred_at     timestamptz NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX job_events_by_job ON progress.job_events (job_id, stream_sequence);
