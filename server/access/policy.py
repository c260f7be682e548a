"""The one table of who may call which admin route, and the one check that applies it.

Every `/admin/` route is listed here with the permission it needs; a route that is missing is
the operator's alone (fail closed), and a test keeps the table equal to the app's routes. The
check runs in `server.access.gate` before the request's body is read. It needs no database:
an org the caller holds no grant in is answered exactly as an org that does not exist (same
status, same wording, same work), so nobody learns which org ids or names exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.routing import compile_path

from server.access.caller import Caller
from server.access.roles import Permission

ANY_CALLER = "any"
"""Any authenticated caller; the route scopes what it returns to the caller's orgs."""

_O = "/admin/v1/orgs/{org}"
READ, CONFIGURE, KEYS, BILLING, MEMBERS, OPERATOR = (
    Permission.READ,
    Permission.CONFIGURE,
    Permission.KEYS,
    Permission.BILLING,
    Permission.MEMBERS,
    Permission.OPERATOR,
)

ROUTE_PERMISSIONS: dict[tuple[str, str], Permission | str] = {
    ("GET", "/admin/v1/orgs"): ANY_CALLER,
    ("POST", "/admin/v1/orgs"): OPERATOR,
    ("GET", "/admin/v1/catalog"): ANY_CALLER,
    ("GET", "/admin/v1/me"): ANY_CALLER,
    ("GET", "/admin/v1/plans"): ANY_CALLER,
    ("GET", "/admin/voice/metrics"): OPERATOR,
    ("PATCH", _O): BILLING,
    ("GET", f"{_O}/budget"): READ,
    ("GET", f"{_O}/usage"): READ,
    ("GET", f"{_O}/api-keys"): READ,
    ("GET", f"{_O}/api-keys/{{key_id}}"): READ,
    ("POST", f"{_O}/api-keys"): KEYS,
    ("PATCH", f"{_O}/api-keys/{{key_id}}"): KEYS,
    ("DELETE", f"{_O}/api-keys/{{key_id}}"): KEYS,
    ("GET", f"{_O}/connections"): READ,
    ("GET", f"{_O}/connections/{{ref}}"): READ,
    ("POST", f"{_O}/connections"): CONFIGURE,
    ("PATCH", f"{_O}/connections/{{ref}}"): CONFIGURE,
    ("PUT", f"{_O}/connections/{{ref}}/key"): CONFIGURE,
    ("POST", f"{_O}/connections/{{ref}}/revoke"): CONFIGURE,
    ("DELETE", f"{_O}/connections/{{ref}}"): CONFIGURE,
    ("POST", f"{_O}/connections/{{ref}}/test"): CONFIGURE,
    ("PUT", f"{_O}/connections-order"): CONFIGURE,
    ("GET", f"{_O}/platform-connections"): READ,
    ("GET", "/admin/v1/platform/connections"): OPERATOR,
    ("POST", "/admin/v1/platform/connections"): OPERATOR,
    ("GET", "/admin/v1/platform/connections/{ref}"): OPERATOR,
    ("PATCH", "/admin/v1/platform/connections/{ref}"): OPERATOR,
    ("PUT", "/admin/v1/platform/connections/{ref}/key"): OPERATOR,
    ("POST", "/admin/v1/platform/connections/{ref}/revoke"): OPERATOR,
    ("DELETE", "/admin/v1/platform/connections/{ref}"): OPERATOR,
    ("GET", f"{_O}/agents"): READ,
    ("POST", f"{_O}/agents"): CONFIGURE,
    ("PATCH", f"{_O}/agents/{{name}}"): CONFIGURE,
    ("DELETE", f"{_O}/agents/{{name}}"): CONFIGURE,
    ("GET", f"{_O}/routing"): READ,
    ("PUT", f"{_O}/routing"): CONFIGURE,
    ("GET", f"{_O}/routing/preview"): READ,
    ("GET", f"{_O}/config/history"): READ,
    ("POST", f"{_O}/config/rollback"): CONFIGURE,
    ("GET", f"{_O}/audit"): READ,
    ("GET", f"{_O}/requests"): READ,
    ("GET", f"{_O}/request-log/settings"): READ,
    ("PUT", f"{_O}/request-log/settings"): MEMBERS,
    ("GET", f"{_O}/admin-tokens"): MEMBERS,
    ("POST", f"{_O}/admin-tokens"): MEMBERS,
    ("DELETE", f"{_O}/admin-tokens/{{token_id}}"): MEMBERS,
    ("GET", f"{_O}/members"): READ,
    ("DELETE", f"{_O}/members/{{user_id}}"): MEMBERS,
    ("POST", f"{_O}/invites"): MEMBERS,
    ("GET", f"{_O}/billing/balance"): BILLING,
    ("GET", f"{_O}/billing/ledger"): BILLING,
    ("GET", f"{_O}/billing/costs"): BILLING,
    # Granting credits gives money away: the operator's alone, never an org role's.
    ("POST", f"{_O}/billing/grants"): OPERATOR,
    ("POST", f"{_O}/billing/checkout"): BILLING,
    ("GET", f"{_O}/conformance"): READ,
    ("POST", f"{_O}/conformance/runs"): CONFIGURE,
    # Letting a model past a gate it failed is the operator's call, audited with a reason.
    ("PUT", f"{_O}/conformance/overrides"): OPERATOR,
    # Feature flags change every org's behaviour: the operator's alone (docs/flags.md).
    ("GET", "/admin/v1/flags"): OPERATOR,
    ("PUT", "/admin/v1/flags/{name}"): OPERATOR,
    ("POST", "/admin/v1/flags/{name}/canary"): OPERATOR,
    ("POST", "/admin/v1/flags/{name}/kill"): OPERATOR,
    ("GET", "/admin/v1/platform/config/history"): OPERATOR,
    ("POST", "/admin/v1/platform/config/rollback"): OPERATOR,
}

FIELD_PERMISSIONS: dict[tuple[str, str, str], Permission] = {
    # Changing a tier or the BYOK override changes what the org may route to and what it pays:
    # the operator's alone. An org changes its tier by paying (Stripe checkout, server.payments).
    ("PATCH", _O, "tier"): OPERATOR,
    ("PATCH", _O, "byok_override"): OPERATOR,
    # Gates decide what the org may route to: a routing setting, not a billing one.
    ("PATCH", _O, "conformance_gates"): CONFIGURE,
    ("PATCH", _O, "conformance_thresholds"): CONFIGURE,
}
"""Body fields that need more than their route's permission; the route calls `authorize_fields`."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    method: str
    template: str
    regex: re.Pattern[str]
    permission: Permission | str


_COMPILED = [_Compiled(m, t, compile_path(t)[0], p) for (m, t), p in ROUTE_PERMISSIONS.items()]


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    type: str
    message: str


def match(method: str, path: str) -> tuple[_Compiled | None, dict[str, str]]:
    """The table's entry for a request (HEAD is checked as GET) and its path parameters."""
    wanted = "GET" if method == "HEAD" else method
    for entry in _COMPILED:
        if entry.method != wanted:
            continue
        found = entry.regex.match(path)
        if found:
            return entry, found.groupdict()
    return None, {}


def authorize_fields(
    caller: Caller, method: str, template: str, org_ref: str, fields: Iterable[str]
) -> Refusal | None:
    """Why the caller may not set these body fields of a route it may call, or None when it may."""
    for name in sorted(fields):
        permission = FIELD_PERMISSIONS.get((method, template, name))
        if permission is None or caller.may(org_ref, permission):
            continue
        if permission is OPERATOR:
            return Refusal(
                403,
                "forbidden",
                f"only the server's operator may change {name!r}; an org changes its plan through checkout (Billing page)",
            )
        return Refusal(
            403,
            "forbidden",
            f"changing {name!r} needs the {permission.value!r} permission; ask an owner of the org",
        )
    return None


def not_found_org(org_ref: str) -> Refusal:
    """Exactly what `server.accounts.get_org` answers for an org that does not exist."""
    return Refusal(404, "not_found", f"no org {org_ref!r}")


def authorize(caller: Caller, method: str, path: str) -> Refusal | None:
    """Why the caller may not make this request, or None when it may."""
    if caller.is_operator:
        return None
    entry, params = match(method, path)
    if entry is None or entry.permission is OPERATOR:
        return Refusal(
            403, "forbidden", "only the server's operator may do this (it needs the operator token)"
        )
    if entry.permission == ANY_CALLER:
        return None
    permission = Permission(entry.permission)
    org_ref = params.get("org")
    grant = caller.grant_for(org_ref) if org_ref is not None else None
    if grant is None:
        return not_found_org(org_ref or "")
    if not caller.may(org_ref, permission):
        return Refusal(
            403,
            "forbidden",
            f"your role in this org ({grant.role.value}) cannot do this: it needs the {permission.value!r} permission; "
            "ask an owner of the org",
        )
    return None
