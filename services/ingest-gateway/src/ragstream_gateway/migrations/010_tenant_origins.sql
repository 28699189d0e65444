-- Browser origins per tenant (issue 7: CORS allow-list per tenant). A page of one of these
-- origins may call the APIs from a browser with a key of this tenant; the global list
-- (RAGSTREAM_CORS_ORIGINS) applies to every tenant. Set by a tenant admin with
-- PUT /v1/tenant/origins; read by every service (ragstream_core.auth.origins.OriginPolicy).
CREATE TABLE auth.tenant_origins (
    tenant_id  text NOT NULL REFERENCES auth.tenants (tenant_id),
    origin     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    PRIMARY KEY (tenant_id, origin)
);
-- a preflight asks whether any tenant allows an origin
CREATE INDEX tenant_origins_by_origin ON auth.tenant_origins (origin);
