-- The scheduler's "released" (rank 1) sits between uploaded and parsing: the running statuses
-- move up one. Progress can be rebuilt from the event stream, so rewriting ranks is safe.
UPDATE progress.jobs SET stage_rank = stage_rank + 1 WHERE status IN ('parsing', 'parsed', 'embedding');

ALTER TABLE progress.jobs
    ADD COLUMN stage        text NOT NULL DEFAULT '',
    ADD COLUMN pages_parsed integer NOT NULL DEFAULT 0,
    ADD COLUMN error_hint   text,
    ADD COLUMN batch_id     text NOT NULL DEFAULT '',
    ADD COLUMN priority     text NOT NULL DEFAULT 'normal',
    ADD COLUMN priority_seq bigint NOT NULL DEFAULT 0,   -- stream position of the event that set it
    ADD COLUMN retry        integer NOT NULL DEFAULT 0,  -- the current run
    ADD COLUMN paused       boolean NOT NULL DEFAULT false,
    ADD COLUMN paused_seq   bigint NOT NULL DEFAULT 0;

UPDATE progress.jobs SET
    stage = CASE
        WHEN status IN ('uploaded', 'released') THEN 'queued'
        WHEN status IN ('parsed', 'embedding') THEN 'embedding'
        WHEN status IN ('failed', 'cancelled') THEN COALESCE(error_stage, '')
        ELSE status END,
    pages_parsed = CASE WHEN status IN ('parsed', 'embedding', 'indexed') THEN pages ELSE 0 END;

ALTER TABLE progress.job_events ADD COLUMN retry integer NOT NULL DEFAULT 0;

-- the list's order (newest first) and the filters clients page through
CREATE INDEX jobs_newest ON progress.jobs (tenant_id, created_at DESC, job_id DESC);
CREATE INDEX jobs_by_batch ON progress.jobs (tenant_id, batch_id, created_at DESC) WHERE batch_id <> '';
CREATE INDEX jobs_by_document ON progress.jobs (tenant_id, document_id, created_at DESC);

-- Exponentially weighted means of observed rates, per tenant and for all tenants ('*').
CREATE TABLE progress.rates (
    tenant_id  text NOT NULL,
    metric     text NOT NULL,   -- parse_pages_per_s, chunks_per_page, embed_chunks_per_s
    value      double precision NOT NULL,
    samples    integer NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, metric)
);
