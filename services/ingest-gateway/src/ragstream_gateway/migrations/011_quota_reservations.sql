-- Exact upload quotas (issue 7). An upload checks the tenant's quota and reserves its share in one
-- transaction under a per-tenant lock, before its bytes are stored; the transaction that records
-- the version deletes the reservation, so two uploads racing in one tenant cannot both pass on
-- the same free space. A reservation left by a gateway that died mid-upload stops counting at
-- expires_at.
CREATE TABLE gateway.quota_reservations (
    reservation_id uuid PRIMARY KEY,
    tenant_id      text NOT NULL,
    bytes          bigint NOT NULL CHECK (bytes >= 0),
    documents      integer NOT NULL CHECK (documents IN (0, 1)),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX quota_reservations_by_tenant ON gateway.quota_reservations (tenant_id, expires_at);
