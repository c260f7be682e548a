"""Decrypt audits, coalesced so that a busy key does not write a row per request.

`VaultCredential.reveal` runs while an adapter builds a request; it must not wait on a write.
It hands a `foundation.audit.AuditEntry` to an `AuditSink`, whose `record` is synchronous and
O(1). In the server that sink is a `DecryptAuditWriter`: the buffered audit writer of
`foundation.audit` with one vault-specific rule.

Trade-off (documented in docs/security.md): entries recorded in the last flush interval
before a hard crash are lost, and while the database is unreachable at most `max_pending`
entries are kept (the rest are counted as dropped and logged by count). Entries never hold a
secret: only org, actor, action, target and a purpose string.

Successful decrypts are coalesced per batch: every `secret.decrypt` entry with the same org,
actor, target and details (purpose, secret id, field, key version) becomes one row whose
`details` add `count` (how many reveals), and `last_at` (the last one's time) when more than
one; the row's `created_at` is the first reveal's. A busy connection therefore writes about
one decrypt row per purpose per second instead of one per request. Every other action,
`secret.decrypt_failed` included, is written one row per entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.audit import AuditEntry, BufferedAuditWriter
from foundation.buffered import RowValues

COALESCED_ACTION = "secret.decrypt"


def coalesce(batch: list[AuditEntry]) -> list[RowValues]:
    """One row per distinct `secret.decrypt` (org, actor, target, details) with a count; others as they are."""
    rows: list[RowValues] = []
    groups: dict[tuple[Any, ...], list[AuditEntry]] = {}
    for entry in batch:
        if entry.action != COALESCED_ACTION:
            rows.append(entry.row_values())
            continue
        key = (
            entry.org_id,
            entry.actor,
            entry.target_type,
            entry.target_id,
            tuple(sorted(entry.details.items())),
        )
        groups.setdefault(key, []).append(entry)
    for entries in groups.values():
        extra: dict[str, Any] = {"count": len(entries)}
        if len(entries) > 1:
            extra["last_at"] = max(e.at for e in entries).isoformat()
        first = min(entries, key=lambda e: e.at)
        rows.append(first.row_values(extra))
    return rows


class DecryptAuditWriter(BufferedAuditWriter):
    """The vault's audit sink: buffered like any audit writer, coalescing successful decrypts
    (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 1.0,
        batch_size: int = 200,
        max_pending: int = 10_000,
        on_flush: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            sessions,
            name="vault-audit",
            flush_interval=flush_interval,
            batch_size=batch_size,
            max_pending=max_pending,
            on_flush=on_flush,
        )

    def _rows(self, batch: list[AuditEntry]) -> list[RowValues]:
        return coalesce(batch)
