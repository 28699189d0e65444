-- Web sources: crawls and the URLs each one found. A crawl is claimed by one gateway at a time
-- through a lease; a gateway that stops or dies leaves it 'queued' or 'running', and the next
-- claim resumes it from its pending URLs.
CREATE SCHEMA IF NOT EXISTS gateway;

CREATE TABLE gateway.crawls (
    crawl_id         text PRIMARY KEY,
    tenant_id        text NOT NULL,
    collection_id    text NOT NULL,
    seed_url         text NOT NULL,
    seed_kind        text NOT NULL CHECK (seed_kind IN ('page', 'sitemap')),
    max_depth        integer NOT NULL,
    max_pages        integer NOT NULL,
    same_host        boolean NOT NULL,
    include_prefixes text[] NOT NULL DEFAULT '{}',
    exclude_prefixes text[] NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    error            text,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);

CREATE INDEX crawls_unfinished ON gateway.crawls (created_at) WHERE status IN ('queued', 'running');

CREATE TABLE gateway.crawl_pages (
    crawl_id    text NOT NULL REFERENCES gateway.crawls (crawl_id) ON DELETE CASCADE,
    url         text NOT NULL,
    final_url   text,
    kind        text NOT NULL CHECK (kind IN ('page', 'sitemap')),
    depth       integer NOT NULL,
    position    bigint GENERATED ALWAYS AS IDENTITY,
    outcome     text NOT NULL DEFAULT 'pending'
                CHECK (outcome IN ('pending', 'accepted', 'unchanged', 'failed', 'skipped', 'read')),
    http_status integer,
    job_id      text,
    document_id text,
    version     integer,
    file_name   text,
    media_type  text,
    error       text,
    fetched_at  timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (crawl_id, url)
);

CREATE INDEX crawl_pages_pending ON gateway.crawl_pages (crawl_id, depth, position) WHERE outcome = 'pending';
