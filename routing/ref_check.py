"""Check the model refs a routing change names against what the org's connections serve.

A chain, a default model or an allowlist naming a ref no connection serves, a model its
connection does not declare, or a model lacking a capability its intent needs would only fail
later, on a request, as a skip. The admin API refuses such a change (400 naming the field); the
CLI saves it and warns. The check asks the resolver itself, with no cooldowns and every billing
source allowed, so it agrees with routing by construction: a connection switched off or a plan
that excludes it is a passing state, not a mistake in the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.errors import RequestError
from foundation.orgs import Org
from providers.contract import ModelRef
from routing.catalog import Catalog
from routing.intents import Intent
from routing.model import OrgRouting
from routing.resolver import ChainChoice, Resolver, RouteRequest
from routing.snapshot import build_org_routing
from routing.tables import Agent, Connection, OrgAISettings
from routing.trace import TraceEntry

_MISTAKES = ("no_connection", "model_not_offered", "capability")
"""Skip families a saved ref must not have; the others (status, tier) change on their own."""


@dataclass(frozen=True, slots=True)
class RefProblem:
    param: str
    """The field at fault: `chains.tools`, `default_model`, `allowed_models`."""
    ref: str
    message: str


async def load_org_routing(session: AsyncSession, org_id: str) -> OrgRouting:
    """The org's routing snapshot from its rows (what the registry builds, every source allowed)."""
    org = await session.get(Org, org_id)
    if org is None:
        raise RequestError(f"no org {org_id!r}", param="org")
    ai = await session.get(OrgAISettings, org_id)
    conns = list(await session.scalars(select(Connection).where(Connection.org_id == org_id)))
    platform = list(await session.scalars(select(Connection).where(Connection.org_id.is_(None))))
    agents = list(await session.scalars(select(Agent).where(Agent.org_id == org_id)))
    return build_org_routing(org, ai, conns, agents, platform=platform)


def check_refs(
    org: OrgRouting,
    catalog: Catalog,
    *,
    chains: Mapping[str, Sequence[str]] | None = None,
    default_model: str | None = None,
    allowed_models: Sequence[str] | None = None,
) -> list[RefProblem]:
    """Every problem with the refs given, in the order given (refs already validated as refs)."""
    resolver = Resolver(catalog)
    problems: list[RefProblem] = []
    for intent_name, refs in (chains or {}).items():
        try:
            intent = Intent(intent_name.strip().lower())
        except ValueError:
            continue  # the save names a bad intent itself
        for ref in refs:
            problems += _check(resolver, org, ref, intent, f"chains.{intent.value}", capabilities=True)
    if default_model:
        problems += _check(resolver, org, default_model, Intent.CHAT, "default_model", capabilities=True)
    for ref in allowed_models or ():
        problems += _check(resolver, org, ref, Intent.CHAT, "allowed_models", capabilities=False)
    return problems


def refuse(problems: Sequence[RefProblem]) -> None:
    """Raise the first problem as a 400 naming its field (the admin API's answer)."""
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RequestError(first.message + more, param=first.param)


def _check(
    resolver: Resolver, org: OrgRouting, text: str, intent: Intent, param: str, *, capabilities: bool
) -> list[RefProblem]:
    try:
        ref = ModelRef.parse(text)
    except ValueError:
        return []  # the save names a malformed ref itself
    choice = ChainChoice(chain=(ref,), source="check", strict=False)
    plan = resolver.plan(org, RouteRequest(intent=intent), {}, 0.0, choice)
    if plan.attempts:
        return []
    skips = [s for s in plan.skipped if s.reason.partition(":")[0] in _MISTAKES]
    if not capabilities:
        skips = [s for s in skips if not s.reason.startswith("capability:")]
    if not skips or len(skips) < len(plan.skipped):
        return []
    return [RefProblem(param, str(ref), _say(skips[0], ref, intent, param))]


def _say(skip: TraceEntry, ref: ModelRef, intent: Intent, param: str) -> str:
    family, _, detail = skip.reason.partition(":")
    if family == "no_connection":
        provider = ref.provider.partition(":")[0]
        return (
            f"{param}: no connection serves {ref}; add one for {provider!r} (`patchbay connection add "
            f"--provider {provider}`, or the AI Connections page) or name a model of a connected provider"
        )
    if family == "model_not_offered":
        return (
            f"{param}: {skip.profile_id} does not declare model {ref.model!r}; name a model it declares, or "
            f"declare this one (`patchbay connection update {skip.profile_id} --model {ref.model}`, with "
            f"a --model for each model it already declares)"
        )
    return (
        f"{param}: {ref} lacks the `{detail}` capability the {intent.value} intent needs; name a model "
        f"that has it, or declare it on {skip.profile_id} (`--model {ref.model}:text,{detail}`)"
    )
