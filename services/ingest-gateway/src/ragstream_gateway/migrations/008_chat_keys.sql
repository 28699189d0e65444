-- Public chat keys (the chat widget's): a key limited to asking some collections, from pages of
-- some origins. NULL: not limited (every other key).
ALTER TABLE auth.api_keys ADD COLUMN collection_ids text[], ADD COLUMN origins text[];
