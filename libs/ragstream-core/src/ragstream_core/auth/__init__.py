"""Identity and access: API keys, roles, and the one place every request is checked.

- ``Principal`` / ``Role``: who asks (tenant, actor, role, key id); roles viewer < editor < admin.
- ``KeyStore``: presented key → principal (SHA-256 lookup in ``auth.api_keys``, briefly cached).
- ``Authenticator``: mode (``open`` / ``keys``), the role each route needs, refusals audited.
- ``OriginPolicy``: which browser origins may call, globally and per tenant (``auth.tenant_origins``).
- ``RateLimiter``: upload and chat rate limits per key and per tenant, in PostgreSQL (GCRA).
- ``authorize`` / ``Caller``: the FastAPI dependency; ``AuthInterceptor``: the gRPC interceptor.
- ``AuditRefusedChanges``: refused and failed mutating requests, in the audit log too.
"""

from ragstream_core.auth.audit import AuditRefusedChanges
from ragstream_core.auth.authenticator import (
    PUBLIC,
    Authenticator,
    AuthMode,
    RolePolicy,
    authenticator_from,
    default_role,
)
from ragstream_core.auth.grpc_calls import AuthInterceptor, current_principal
from ragstream_core.auth.keys import BOOTSTRAP_ACCOUNT, BOOTSTRAP_KEY_ID, KeyStore, key_hash, new_key
from ragstream_core.auth.origins import OriginPolicy, normal_origin
from ragstream_core.auth.principal import ROLES, Principal, Role, role_rank
from ragstream_core.auth.ratelimit import Action, RateLimiter, RateLimits, RatePolicy
from ragstream_core.auth.rest import Caller, authorize

__all__ = [
    "BOOTSTRAP_ACCOUNT",
    "BOOTSTRAP_KEY_ID",
    "PUBLIC",
    "ROLES",
    "Action",
    "AuditRefusedChanges",
    "AuthInterceptor",
    "AuthMode",
    "Authenticator",
    "Caller",
    "KeyStore",
    "OriginPolicy",
    "Principal",
    "RateLimiter",
    "RateLimits",
    "RatePolicy",
    "Role",
    "RolePolicy",
    "authenticator_from",
    "authorize",
    "current_principal",
    "default_role",
    "key_hash",
    "new_key",
    "normal_origin",
    "role_rank",
]
