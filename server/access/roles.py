"""Roles and what they may do: a pure table, no I/O.

An org member holds one role in that org. The operator (the server's own token) is not a role:
it may do everything, in every org, including what no org role may (create orgs, platform
connections, env-referenced keys). `docs/security.md` renders this table for people.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    BILLING = "billing"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ = "read"
    """See the org: connections (never their keys), agents, routing, keys, usage, activity, audit."""
    CONFIGURE = "configure"
    """Change connections, routing, agents and voice settings; test connections."""
    KEYS = "keys"
    """Create and revoke the org's server API keys."""
    BILLING = "billing"
    """See the balance, holds, ledger and costs; buy credits, change the payment method, see invoices.
    (Granting credits is the operator's alone.)"""
    MEMBERS = "members"
    """Invite and remove people, create and revoke org admin tokens, change org-wide logging."""
    OPERATOR = "operator"
    """Only the server's operator: orgs, platform connections, flags, env-referenced keys."""


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(
        {Permission.READ, Permission.CONFIGURE, Permission.KEYS, Permission.BILLING, Permission.MEMBERS}
    ),
    Role.ADMIN: frozenset({Permission.READ, Permission.CONFIGURE, Permission.KEYS}),
    Role.BILLING: frozenset({Permission.READ, Permission.BILLING}),
    Role.VIEWER: frozenset({Permission.READ}),
}


def may(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def permissions_of(role: Role) -> list[str]:
    """What the role may do, in the table's order (for `/auth/me` and the UI)."""
    return [p.value for p in Permission if p in ROLE_PERMISSIONS[role]]
