"""The tier's `max_connections`: how many of its own connections an org may add.

Checked when a connection is added (`Connections.create`, so the CLI, the admin API and the web
UI all refuse the same way): an org at its tier's limit gets `ConnectionLimitError` (403
`connection_limit`) naming the tier, the limit and the first tier that allows more. Platform
connections are the operator's and do not count. A downgrade below the count an org has deletes
nothing and skips nothing: existing connections keep working, and adding one waits until the
org is under the new limit (docs/billing.md#tiers-and-what-they-charge says why). The count
is read in the adding transaction without a lock, so two adds racing at the edge may both pass
(one over); the next add is refused all the same.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.tiers import default_table, policy_for, tier_allowing_more
from foundation.errors import RequestError
from foundation.orgs import Org
from routing.tables import Connection


class ConnectionLimitError(RequestError):
    code = "connection_limit"


async def check_connection_limit(session: AsyncSession, org_id: str) -> None:
    """Refuse a new connection for `org_id` when its tier's limit is reached."""
    org = await session.get(Org, org_id)
    if org is None:
        return  # the caller's own lookup says the org does not exist
    policy = policy_for(org.tier)
    limit = policy.max_connections
    if limit is None:
        return
    have = int(
        await session.scalar(select(func.count()).select_from(Connection).where(Connection.org_id == org_id))
        or 0
    )
    if have < limit:
        return
    more = tier_allowing_more(default_table(), have)
    upgrade = (
        f", or move to tier {more.tier.value} ("
        + ("no limit" if more.max_connections is None else f"{more.max_connections} connections")
        + ")"
        if more is not None
        else ""
    )
    raise ConnectionLimitError(
        f"tier {policy.tier.value} allows {limit} connections and this org has {have}: "
        f"delete one (`patchbay connection delete`){upgrade}; docs/billing.md#tiers-and-what-they-charge"
    )
