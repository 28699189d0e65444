-- Document tags (retrieval filters, issue 5). A document's tags are replaced as a whole; every
-- change bumps tags_revision and is announced (DocTagged) so that the index updates its points in
-- place. tags_published_revision is the outbox mark: a change not yet announced (NATS away, a
-- crash in between) is sent again by the republish loop.
ALTER TABLE gateway.documents
    ADD COLUMN tags                    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN tags_revision           bigint NOT NULL DEFAULT 0,
    ADD COLUMN tags_published_revision bigint NOT NULL DEFAULT 0,
    ADD COLUMN tags_changed_at         timestamptz;
CREATE INDEX documents_tags_unpublished ON gateway.documents (tags_changed_at)
    WHERE tags_published_revision < tags_revision;

-- the tags a direct upload announced (NULL: none given), applied at finalize
ALTER TABLE gateway.uploads ADD COLUMN tags text[];
