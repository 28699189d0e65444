CREATE SCHEMA IF NOT EXISTS chat;

CREATE TABLE chat.conversations (
    conversation_id text PRIMARY KEY,
    tenant_id       text NOT NULL,
    collection_id   text NOT NULL,
    title           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_by_tenant ON chat.conversations (tenant_id, updated_at DESC, conversation_id);
CREATE INDEX conversations_by_collection ON chat.conversations (tenant_id, collection_id, updated_at DESC);

-- A question and its answer, in order; the answer keeps its citations and linked sentences.
CREATE TABLE chat.messages (
    message_id      text PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES chat.conversations ON DELETE CASCADE,
    seq             integer NOT NULL,
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL,
    query           text NOT NULL DEFAULT '',
    mode            text NOT NULL DEFAULT '',
    citations       jsonb NOT NULL DEFAULT '[]'::jsonb,
    sentences       jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, seq)
);

-- How chat answers in one collection; NULL columns fall back to the service's settings.
CREATE TABLE chat.collection_settings (
    tenant_id       text NOT NULL,
    collection_id   text NOT NULL,
    provider        text,
    min_score       real,
    top_k           integer,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, collection_id)
);

-- Collections chat has seen indexed (index.updated): the models of /v1/models.
CREATE TABLE chat.collections_seen (
    tenant_id       text NOT NULL,
    collection_id   text NOT NULL,
    last_indexed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, collection_id)
);
