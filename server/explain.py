"""The routing preview: what `routing.explain` needs, read at the edge, and its wire form.

One read of the org's snapshot (memory) and one batched read of its profiles' cooldown states
(Redis when configured), then the pure explain core. The admin API's
`GET /admin/v1/orgs/{org}/routing/preview` and `patchbay agent explain` answer with the same
`PreviewOut`, so the words a script reads are the ones the AI settings page shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from foundation.errors import NotFoundError, RequestError
from routing.explain import Explanation, RefExplanation, explain_chain, explain_route, reachable
from routing.intents import Intent
from server.v1.gateway import Gateway


class ReasonOut(BaseModel):
    code: str = Field(
        description="The resolver's reason, `skipped:<why>[:<detail>]` (docs/routing.md#reasons-vocabulary)."
    )
    text: str = Field(description="The same in plain words.")
    profile: str | None = None
    until: datetime | None = Field(default=None, description="When a cooldown or pause ends.")
    allowed_on_tier: str | None = Field(
        default=None, description="For `skipped:tier:*`: the first tier that allows it."
    )


class RefOut(BaseModel):
    ref: str
    state: str = Field(description="`usable` now, `waiting` for a cooldown to end, or `unusable`.")
    usable: bool
    profiles: list[str] = Field(description="The connections that would be tried now, in order.")
    text: str
    reasons: list[ReasonOut]

    @classmethod
    def of(cls, r: RefExplanation) -> RefOut:
        reasons = [
            ReasonOut(
                code=x.code,
                text=x.text,
                profile=x.profile,
                until=datetime.fromtimestamp(x.until, UTC) if x.until is not None else None,
                allowed_on_tier=x.allowed_on_tier,
            )
            for x in r.reasons
        ]
        return cls(
            ref=r.ref,
            state=r.state.value,
            usable=r.state.value == "usable",
            profiles=list(r.profiles),
            text=r.text,
            reasons=reasons,
        )


class PreviewOut(BaseModel):
    org: str
    tier: str
    intent: str
    agent: str | None
    source: str | None = Field(
        description="Where the chain comes from: `org:<intent>`, `org:default`, `agent:<name>`, or `edited`."
    )
    needs: list[str]
    error: str | None = Field(description="Why no chain applies (nothing configured for the intent).")
    first: str | None = Field(description="The model a request would try first; None: none can be used now.")
    chain: list[RefOut]
    reachable: list[RefOut] = Field(
        description="Every model the org's connections offer, explained for this intent."
    )

    @classmethod
    def of(
        cls, org_id: str, tier: str, agent: str | None, main: Explanation, offered: Explanation
    ) -> PreviewOut:
        return cls(
            org=org_id,
            tier=tier,
            intent=main.intent.value,
            agent=agent,
            source=main.source,
            needs=sorted(c.value for c in main.needs),
            error=main.error,
            first=main.first,
            chain=[RefOut.of(r) for r in main.refs],
            reachable=[RefOut.of(r) for r in offered.refs],
        )


def parse_intent(value: str) -> Intent:
    try:
        return Intent(value.strip().lower())
    except ValueError:
        valid = ", ".join(i.value for i in Intent)
        raise RequestError(f"unknown intent {value!r}; use one of {valid}", param="intent") from None


async def preview(
    gateway: Gateway, org_id: str, intent: Intent, agent: str | None, chain: Sequence[str] | None
) -> PreviewOut:
    """Explain `chain` (one being edited) or, when None, the chain a request for `intent` (with
    a key bound to `agent`) follows now; and every model the org can reach, for `intent`."""
    org = (await gateway.registry.get(org_id)).routing
    if agent is not None and agent not in org.agents:
        raise NotFoundError(f"agent {agent!r} does not exist", param="agent")
    views = [*org.all_connections(), *(v for vs in org.platform.values() for v in vs)]
    states = await gateway.cooldowns.get_many(org.org_id, list(dict.fromkeys(v.profile_id for v in views)))
    resolver = gateway.router.resolver
    now = gateway.router.executor.runner.clock.time()
    if chain is None:
        main = explain_route(resolver, org, intent, agent, states, now)
    else:
        main = explain_chain(resolver, org, intent, chain, states, now)
    offered = explain_chain(resolver, org, intent, reachable(gateway.catalog, org), states, now)
    return PreviewOut.of(org.org_id, org.tier, agent, main, offered)
