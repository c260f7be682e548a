"""What the ledger hands back (`Entry`, `Balance`) and the errors it raises.

All amounts are integers of micro-USD (`billing.money`). A refused reservation raises
`billing.preflight.InsufficientCreditsError`, the error every surface already turns into a 402.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from billing.ledger_tables import EntryKind
from foundation.errors import ConflictError, NotFoundError, RequestError


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry as written (or, with `replayed`, as written by the first call with its key)."""

    id: str
    org_id: str
    kind: EntryKind
    amount: int
    idempotency_key: str
    hold_id: str | None
    details: Mapping[str, Any]
    created_at: datetime
    expires_at: datetime | None = None
    replayed: bool = False
    """True when this call's idempotency key had been used already: nothing was written."""

    @property
    def effect(self) -> int:
        """What the entry did to the balance, in micro-USD (holds and releases move `held` only)."""
        if self.kind is EntryKind.SETTLE:
            return -self.amount
        if self.kind in (EntryKind.HOLD, EntryKind.RELEASE):
            return 0
        return self.amount

    @property
    def shortfall(self) -> int:
        """A settle or charge: the part of the requested cost the balance could not cover."""
        return int(self.details.get("shortfall", 0))

    @classmethod
    def from_row(cls, row: Row[Any], *, replayed: bool = False) -> Entry:
        return cls(
            id=row.id,
            org_id=row.org_id,
            kind=EntryKind(row.kind),
            amount=int(row.amount),
            idempotency_key=row.idempotency_key,
            hold_id=row.hold_id,
            details=dict(row.details or {}),
            created_at=row.created_at,
            expires_at=row.expires_at,
            replayed=replayed,
        )


@dataclass(frozen=True, slots=True)
class Balance:
    """An org's credits: `balance` (credited minus charged), `held` (open holds) and what is left."""

    balance: int = 0
    held: int = 0
    open_holds: int = field(default=0, compare=False)
    """How many holds are open (informational; not part of equality)."""

    @property
    def available(self) -> int:
        return self.balance - self.held


class HoldNotFoundError(NotFoundError):
    """No hold with that id (for that org)."""


class HoldClosedError(ConflictError):
    """The hold was settled or released already; a hold is closed exactly once.

    `expired` says the sweeper released it after its TTL: a segment that still has to be paid
    for then charges without a hold (`Ledger.charge`)."""

    def __init__(self, hold_id: str, closed_by: EntryKind, *, expired: bool) -> None:
        how = (
            "released after it expired"
            if expired
            else ("settled" if closed_by is EntryKind.SETTLE else "released")
        )
        super().__init__(f"hold {hold_id} was already {how}")
        self.hold_id = hold_id
        self.closed_by = closed_by
        self.expired = expired


class IdempotencyConflictError(ConflictError):
    """The idempotency key was used before for a different operation or amount."""

    def __init__(self, key: str, first: Entry) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for a {first.kind.value} of {first.amount} micro-USD "
            f"({first.id}); retry with the same arguments, or use a new key for a new operation",
            param="idempotency_key",
        )
        self.first = first


class RequestAlreadyChargedError(ConflictError):
    """The request id was charged by the predecessor's billing (imported by `patchbay migrate
    legacy-billing`): Patchbay refuses to charge it again (a 409 on /v1)."""

    code = "request_already_charged"

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request id {request_id!r} was already charged by the previous billing system; "
            "send the request with a new x-request-id",
            param="x-request-id",
        )
        self.request_id = request_id


EXPIRED_PREFIX = "expire:"
"""The sweeper's idempotency keys (`expire:<hold id>`); callers' keys may not start with it."""
LEGACY_PREFIX = "legacy:"
"""Imported legacy charges' keys (`legacy:<request id>`); callers' keys may not start with it."""


REQUEST_KEY_PREFIX = "pf:"
"""The request path's idempotency keys: `pf:<request id>:<segment>:<attempt id>`, then
`:settle`, `:charge` or `:release` for the entry that closes or replaces the hold."""
_CLOSING_SUFFIXES = (":settle", ":charge", ":release")


def request_id_of(key: str) -> str | None:
    """The request id (as truncated to 64 characters) in a request-path key; None for another key."""
    if not key.startswith(REQUEST_KEY_PREFIX):
        return None
    body = key[len(REQUEST_KEY_PREFIX) :]
    for suffix in _CLOSING_SUFFIXES:
        body = body.removesuffix(suffix)
    parts = body.rsplit(":", 2)
    return parts[0] if len(parts) == 3 and parts[2].startswith("at_") else None


def legacy_key(request_id: str) -> str:
    """The idempotency key of the legacy charge imported for `request_id`."""
    return LEGACY_PREFIX + request_id


def check_key(key: str) -> str:
    """A caller's idempotency key: 1-128 printable ASCII characters, not starting with the
    sweeper's `expire:` or the legacy import's `legacy:`."""
    if not 1 <= len(key) <= 128 or not key.isascii() or not key.isprintable():
        raise RequestError(
            "an idempotency key is 1 to 128 printable ASCII characters", param="idempotency_key"
        )
    for prefix, whose in ((EXPIRED_PREFIX, "the sweeper's"), (LEGACY_PREFIX, "the legacy import's")):
        if key.startswith(prefix):
            raise RequestError(f"idempotency keys starting {prefix!r} are {whose}", param="idempotency_key")
    return key
