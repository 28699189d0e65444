-- Job control: versions wait in a queue (released_at NULL) until the scheduler releases them, by
-- lane, fairly across collections and under each collection's concurrency cap.

ALTER TABLE gateway.document_versions
    ADD COLUMN priority         text NOT NULL DEFAULT 'normal',
    ADD COLUMN batch_id         text,
    ADD COLUMN retry            integer NOT NULL DEFAULT 0,
    ADD COLUMN paused           boolean NOT NULL DEFAULT false,
    ADD COLUMN released_at      timestamptz,
    ADD COLUMN last_event_at    timestamptz,
    ADD COLUMN parsed_at        timestamptz,
    ADD COLUMN redrives         integer NOT NULL DEFAULT 0,
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false,
    ADD COLUMN traceparent      text;  -- the upload's trace, continued by the release
-- versions recorded before the scheduler existed were sent to the parser at once
UPDATE gateway.document_versions SET released_at = created_at WHERE published_at IS NOT NULL;
CREATE INDEX document_versions_queued ON gateway.document_versions (created_at)
    WHERE status = 'processing' AND released_at IS NULL;
CREATE INDEX document_versions_released ON gateway.document_versions (released_at)
    WHERE status = 'processing' AND released_at IS NOT NULL;
CREATE INDEX document_versions_batch ON gateway.document_versions (batch_id) WHERE batch_id IS NOT NULL;

ALTER TABLE gateway.collections
    ADD COLUMN paused         boolean NOT NULL DEFAULT false,
    ADD COLUMN max_concurrent integer;

CREATE TABLE gateway.batches (
    tenant_id  text NOT NULL,
    batch_id   text NOT NULL,
    paused     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, batch_id)
);

CREATE TABLE gateway.dead_letter_replays (
    stream_sequence bigint PRIMARY KEY,
    replayed_at     timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    job_id          text
);
