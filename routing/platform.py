"""The operator's scope: where platform connections (rows with no org) keep their keys and changes.

A platform connection has `org_id` NULL. Its vault record and its config-version counter still
need an owner key: `PLATFORM_SCOPE`, which no org id can equal (org ids never contain `:`).
A bump of it means "every org's snapshot is stale" (routing/registry.py).
"""

from __future__ import annotations

PLATFORM_SCOPE = ":platform"


def scope_of(org_id: str | None) -> str:
    """The vault and config-version owner of a connection owned by `org_id` (None: the operator)."""
    return PLATFORM_SCOPE if org_id is None else org_id
