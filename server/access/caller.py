"""Who is calling the admin API, and the random bearer secrets every credential is made of."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from foundation.audit import Acting
from server.access.roles import Permission, Role, may

PREFIX_LENGTH = 14


@dataclass(frozen=True, slots=True)
class Grant:
    org_id: str
    org_name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated admin caller: the operator, an org admin token, or a signed-in user.

    `grants` maps org id to the caller's role there; the operator has none and may do anything.
    """

    kind: str
    """`operator`, `token` or `user`."""
    credential: str
    """`operator`, the admin token's id, or the user's id: what audit rows record."""
    label: str
    """What people read in the audit log: `operator`, `token:<name or id>`, the user's email."""
    address: str | None = None
    grants: Mapping[str, Grant] = field(default_factory=dict)
    session_id: str | None = None
    csrf_token: str | None = None
    """Set for cookie sessions: state-changing requests must echo it in `X-CSRF-Token`."""

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    def grant_for(self, org_ref: str) -> Grant | None:
        """The caller's grant in the org named by id or name, or None (no DB read: a ref the
        caller holds no grant for is treated exactly like an org that does not exist)."""
        grant = self.grants.get(org_ref)
        if grant is not None:
            return grant
        return next((g for g in self.grants.values() if g.org_name == org_ref), None)

    def may(self, org_ref: str | None, permission: Permission) -> bool:
        if self.is_operator:
            return True
        if permission is Permission.OPERATOR or org_ref is None:
            return False
        grant = self.grant_for(org_ref)
        return grant is not None and may(grant.role, permission)

    def acting(self) -> Acting:
        return Acting(actor=self.label[:64], credential=self.credential, address=self.address)


def operator(address: str | None) -> Caller:
    return Caller(kind="operator", credential="operator", label="operator", address=address)


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    plaintext: str
    prefix: str
    digest: str


def issue_secret(kind_prefix: str) -> IssuedSecret:
    """A new bearer secret: `kind_prefix` + 256 random bits, with its lookup prefix and hash."""
    plaintext = kind_prefix + secrets.token_urlsafe(32)
    return IssuedSecret(plaintext=plaintext, prefix=plaintext[:PREFIX_LENGTH], digest=digest_of(plaintext))


def digest_of(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def matches(stored_digest: str, presented: str) -> bool:
    return hmac.compare_digest(stored_digest, digest_of(presented))
