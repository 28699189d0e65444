-- A collection's own OpenAI-compatible provider. The API key is stored only sealed
-- (ragstream_core.secrets: AES-GCM under a key of RAGSTREAM_SECRET_KEYS, bound to the tenant,
-- collection and base URL); api_key_key_id names the key that sealed it (rotation, reports);
-- api_key_hint is at most its last 4 characters, what the API shows.
ALTER TABLE chat.collection_settings
    ADD COLUMN openai_base_url text,
    ADD COLUMN openai_model    text,
    ADD COLUMN api_key_sealed  text,
    ADD COLUMN api_key_key_id  text,
    ADD COLUMN api_key_hint    text;

CREATE INDEX collection_settings_by_key_id ON chat.collection_settings (api_key_key_id)
    WHERE api_key_sealed IS NOT NULL;
