"""Who asks: a ``Principal`` (tenant, actor, role, key) and the ordered roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "editor", "admin"]
#: every role, weakest first: each role may do everything of the ones before it
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")


def role_rank(role: str) -> int:
    """The position of ``role`` in ``ROLES``; raises ``ValueError`` for an unknown role."""
    return ROLES.index(role)


def weaker_role(first: Role, second: Role) -> Role:
    """The weaker of two roles (a key never has more rights than its account)."""
    return first if role_rank(first) <= role_rank(second) else second


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request.

    ``key_id`` is the key's visible prefix (``rs_live_…``), ``None`` in ``open`` mode; ``actor``
    is the key's account (what the audit log records). A public chat key (the widget's) has
    ``collection_ids`` (it may only ask those) and ``origins`` (only pages of those may use it).
    """

    tenant_id: str
    actor: str
    role: Role
    key_id: str | None = None
    collection_ids: tuple[str, ...] | None = None
    origins: tuple[str, ...] | None = None

    def allows(self, needed: Role) -> bool:
        return role_rank(self.role) >= role_rank(needed)
