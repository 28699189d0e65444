-- Identity and access (issue 7): tenants, their accounts (members) with a role, and API keys.
-- Only the SHA-256 of a key is stored; key_id is its visible prefix (rs_live_<12 hex>). Every
-- service reads these tables (ragstream_core.auth.KeyStore); only the gateway writes them.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.tenants (
    tenant_id   text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

CREATE TABLE auth.accounts (
    tenant_id    text NOT NULL REFERENCES auth.tenants (tenant_id),
    account_id   text NOT NULL,
    role         text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    display_name text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    disabled_at  timestamptz,
    PRIMARY KEY (tenant_id, account_id)
);

CREATE TABLE auth.api_keys (
    key_id     text PRIMARY KEY,
    key_hash   bytea NOT NULL UNIQUE,
    tenant_id  text NOT NULL,
    account_id text NOT NULL,
    role       text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    name       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    revoked_by text,
    FOREIGN KEY (tenant_id, account_id) REFERENCES auth.accounts (tenant_id, account_id)
);
CREATE INDEX api_keys_by_tenant ON auth.api_keys (tenant_id, created_at);
