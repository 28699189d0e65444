"""Who a test's request says it is: the one place the tests build identity headers.

Today the services take the tenant from ``X-Tenant-Id`` and check no key. When requests carry
API keys instead, this function is the only one that changes: every hostile, fuzzing and secrets
test sends its identity through it.
"""

from __future__ import annotations

__all__ = ["identity_headers"]


def identity_headers(tenant: str) -> dict[str, str]:
    """The headers that make a request act as ``tenant`` (fresh dict; callers may add to it)."""
    return {"X-Tenant-Id": tenant}
