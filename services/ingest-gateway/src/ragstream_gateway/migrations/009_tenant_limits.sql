-- Rate limits and upload quotas (issue 7). Every service reads these tables (the rate limiter of
-- ragstream_core.auth); only the gateway's admin API writes auth.tenant_limits.

-- A tenant's own limits; NULL: the configured default (RAGSTREAM_RATE_*, RAGSTREAM_GATEWAY_QUOTA_*),
-- 0: no limit. Rates are requests per RAGSTREAM_RATE_WINDOW_S. No foreign key to auth.tenants:
-- in open mode a tenant is only a header.
CREATE TABLE auth.tenant_limits (
    tenant_id         text PRIMARY KEY,
    upload_per_key    integer CHECK (upload_per_key >= 0),
    upload_per_tenant integer CHECK (upload_per_tenant >= 0),
    chat_per_key      integer CHECK (chat_per_key >= 0),
    chat_per_tenant   integer CHECK (chat_per_tenant >= 0),
    quota_bytes       bigint CHECK (quota_bytes >= 0),
    quota_documents   integer CHECK (quota_documents >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text NOT NULL
);

-- One GCRA bucket per (scope: key | tenant, subject: key id | tenant id, action: upload | chat):
-- tat is the theoretical arrival time (epoch seconds, the database's clock). UNLOGGED: a crash of
-- the database forgets the buckets, which only resets the limits; every write stays cheap.
CREATE UNLOGGED TABLE auth.rate_buckets (
    scope      text NOT NULL CHECK (scope IN ('key', 'tenant')),
    subject    text NOT NULL,
    action     text NOT NULL,
    tat        double precision NOT NULL,
    checked_at double precision NOT NULL,
    interval_s double precision NOT NULL,
    per_window integer NOT NULL,
    allowed    boolean NOT NULL,
    PRIMARY KEY (scope, subject, action)
);

-- Usage per tenant (quotas): live documents of a tenant.
CREATE INDEX documents_live_by_tenant ON gateway.documents (tenant_id) WHERE deleted_at IS NULL;
