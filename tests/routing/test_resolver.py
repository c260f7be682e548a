from __future__ import annotations

import pytest

from providers.contract import BillingSource, Capability, ErrorClass, ModelRef
from routing.catalog import default_catalog
from routing.cooldown import FRESH, Failure, ProfileState, apply_failure
from routing.errors import ModelNotAllowedError, NoRouteError
from routing.intents import Intent
from routing.model import AgentRouting, ConnectionStatus, DeclaredModel
from routing.resolver import Plan, PlannedAttempt, Resolver, RouteRequest
from routing.trace import TraceEntry
from tests.routing.fakes import OrgBuilder, conn

T0 = 1_000_000.0
resolver = Resolver(default_catalog())


def labels(plan: Plan) -> list[str]:
    out = []
    for item in plan.items:
        if isinstance(item, PlannedAttempt):
            out.append(f"{item.connection.profile_id}/{item.model}=try")
        else:
            assert isinstance(item, TraceEntry)
            out.append(f"{item.target}={item.label}")
    return out


def base_org() -> OrgBuilder:
    return OrgBuilder(
        connections=[conn("openai", "main"), conn("anthropic", "default"), conn("gemini", "default")],
        matrix={
            Intent.CHAT: ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"),
            Intent.TTS: ("openai/tts-1",),
        },
    )


def test_org_chain_in_order() -> None:
    plan = resolver.plan(base_org().build(), RouteRequest(), {}, T0)
    assert plan.source == "org:chat" and not plan.strict
    assert labels(plan) == ["openai:main/gpt-4o-mini=try", "anthropic:default/claude-haiku-4-5=try"]


def test_text_intents_fall_back_to_the_chat_chain() -> None:
    plan = resolver.plan(base_org().build(), RouteRequest(intent=Intent.SUMMARIZE), {}, T0)
    assert plan.source == "org:chat"


def test_capability_skip_is_reported() -> None:
    b = base_org()
    b.matrix[Intent.CHAT] = ("openai/gpt-4o-mini", "mistral/mistral-large-latest", "gemini/gemini-2.5-flash")
    b.connections.append(conn("mistral"))
    plan = resolver.plan(b.build(), RouteRequest(needs=frozenset({Capability.VISION})), {}, T0)
    assert labels(plan) == [
        "openai:main/gpt-4o-mini=try",
        "mistral:default/mistral-large-latest=skipped:capability:vision",
        "gemini:default/gemini-2.5-flash=try",
    ]


def test_cooldown_skip_without_a_call() -> None:
    states = {"openai:main": apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "gpt-4o-mini", 30), T0)}
    plan = resolver.plan(base_org().build(), RouteRequest(), states, T0 + 1)
    assert labels(plan) == [
        "openai:main/gpt-4o-mini=skipped:cooldown:rate_limit",
        "anthropic:default/claude-haiku-4-5=try",
    ]
    assert plan.skipped[0].retry_after == 29.0, "the seconds the cooldown had left at plan time"
    assert (
        labels(resolver.plan(base_org().build(), RouteRequest(), states, T0 + 30))[0]
        == "openai:main/gpt-4o-mini=try"
    )


def test_disabled_and_revoked_connections_are_skipped() -> None:
    b = base_org()
    b.connections[0] = conn("openai", "main", status=ConnectionStatus.REVOKED)
    b.connections.append(conn("openai", "spare", status=ConnectionStatus.DISABLED))
    plan = resolver.plan(b.build(), RouteRequest(), {}, T0)
    assert labels(plan)[:2] == [
        "openai:main/gpt-4o-mini=skipped:status:revoked",
        "openai:spare/gpt-4o-mini=skipped:status:disabled",
    ]


def test_missing_connection_is_a_skip() -> None:
    b = base_org()
    b.matrix[Intent.CHAT] = ("xai/grok-4", "openai/gpt-4o")
    assert labels(resolver.plan(b.build(), RouteRequest(), {}, T0)) == [
        "xai/grok-4=skipped:no_connection",
        "openai:main/gpt-4o=try",
    ]


def test_profiles_rotate_least_recently_used_first() -> None:
    b = base_org()
    b.connections.append(conn("openai", "second"))
    org = b.build()
    states = {"openai:main": ProfileState(last_used=T0 - 1)}
    first = resolver.plan(org, RouteRequest(), states, T0).attempts[0]
    assert first.connection.name == "second"
    states = {"openai:main": ProfileState(last_used=T0 - 1), "openai:second": ProfileState(last_used=T0)}
    assert resolver.plan(org, RouteRequest(), states, T0).attempts[0].connection.name == "main"


def test_explicit_order_ignores_recency() -> None:
    b = base_org()
    b.connections = [conn("openai", "main", position=2), conn("openai", "second", position=1)]
    states = {"openai:second": ProfileState(last_used=T0)}
    attempts = resolver.plan(b.build(), RouteRequest(), states, T0).attempts
    assert [a.connection.name for a in attempts[:2]] == ["second", "main"]


def test_pinned_model_is_strict_and_allowlisted() -> None:
    b = base_org()
    b.allowlist = frozenset({"openai/gpt-4o"})
    org = b.build()
    plan = resolver.plan(org, RouteRequest(model="openai/gpt-4o"), {}, T0)
    assert plan.strict and plan.source == "pinned"
    assert labels(plan) == ["openai:main/gpt-4o=try"]
    assert resolver.select(org, RouteRequest(model="openai:main/gpt-4o")).strict
    with pytest.raises(ModelNotAllowedError):
        resolver.select(org, RouteRequest(model="anthropic/claude-sonnet-4-5"))
    with pytest.raises(ModelNotAllowedError):
        resolver.select(org, RouteRequest(model="haiku"))


def test_bare_model_ids_and_aliases() -> None:
    org = base_org().build()
    assert resolver.select(org, RouteRequest(model="gpt-4o")).chain == (ModelRef("openai", "gpt-4o"),)
    assert resolver.select(org, RouteRequest(model="haiku")).chain == (
        ModelRef("anthropic", "claude-haiku-4-5"),
    )
    with pytest.raises(NoRouteError):
        resolver.select(org, RouteRequest(model="no-such-model"))
    with pytest.raises(NoRouteError, match="xai"):
        resolver.select(org, RouteRequest(model="xai/grok-4"))
    with pytest.raises(NoRouteError):
        resolver.select(org, RouteRequest(model="grok-4"))


def test_default_means_configured_routing() -> None:
    assert resolver.select(base_org().build(), RouteRequest(model="default")).source == "org:chat"


def test_custom_connection_name_is_the_provider_part() -> None:
    b = base_org()
    lab = conn(
        "openai_compatible",
        "mylab",
        base_url="http://10.0.0.5:8000/v1",
        models=[DeclaredModel("llama-3-70b", frozenset({Capability.TEXT, Capability.TOOLS}))],
    )
    b.connections.append(lab)
    b.matrix[Intent.TOOLS] = ("mylab/llama-3-70b", "mylab/unknown", "openai/gpt-4o")
    org = b.build()
    plan = resolver.plan(org, RouteRequest(intent=Intent.TOOLS), {}, T0)
    assert labels(plan) == [
        "openai_compatible:mylab/llama-3-70b=try",
        "openai_compatible:mylab/unknown=skipped:model_not_offered",
        "openai:main/gpt-4o=try",
    ]
    assert plan.attempts[0].billing_source is BillingSource.PRIVATE
    vision = resolver.plan(
        org, RouteRequest(model="mylab/llama-3-70b", needs=frozenset({Capability.VISION})), {}, T0
    )
    assert labels(vision) == ["openai_compatible:mylab/llama-3-70b=skipped:capability:vision"]
    assert resolver.select(org, RouteRequest(model="llama-3-70b")).chain == (
        ModelRef("mylab", "llama-3-70b"),
    )


def test_profile_pin() -> None:
    b = base_org()
    b.connections.append(conn("openai", "Second"))
    plan = resolver.plan(b.build(), RouteRequest(model="openai:Second/gpt-4o"), {}, T0)
    assert labels(plan) == ["openai:Second/gpt-4o=try"]


def test_agents() -> None:
    b = base_org()
    b.agents = {
        "support": AgentRouting(
            "support", chains={Intent.CHAT: (ModelRef.parse("anthropic/claude-sonnet-4-5"),)}
        ),
        "writer": AgentRouting("writer", default_model=ModelRef.parse("gemini/gemini-2.5-pro")),
    }
    org = b.build()
    by_name = resolver.plan(org, RouteRequest(model="agent:support"), {}, T0)
    assert by_name.source == "agent:support" and not by_name.strict
    assert labels(by_name) == ["anthropic:default/claude-sonnet-4-5=try"]
    bound = resolver.plan(org, RouteRequest(agent="writer"), {}, T0)
    assert labels(bound) == [
        "gemini:default/gemini-2.5-pro=try",
        "openai:main/gpt-4o-mini=try",
        "anthropic:default/claude-haiku-4-5=try",
    ]
    # A speech intent does not inherit a chat model as primary.
    assert resolver.select(org, RouteRequest(agent="writer", intent=Intent.TTS)).source == "org:tts"
    with pytest.raises(NoRouteError):
        resolver.select(org, RouteRequest(model="agent:nobody"))


def test_nothing_configured_is_no_route() -> None:
    with pytest.raises(NoRouteError):
        resolver.select(OrgBuilder().build(), RouteRequest(intent=Intent.STT))


def test_tier_gate() -> None:
    from dataclasses import replace

    org = replace(base_org().build(), allowed_billing=frozenset({BillingSource.PLATFORM}))
    assert (
        labels(resolver.plan(org, RouteRequest(), {}, T0))[0] == "openai:main/gpt-4o-mini=skipped:tier:byok"
    )


def test_profiles_for_covers_every_candidate_once() -> None:
    b = base_org()
    b.connections.append(conn("openai", "second"))
    org = b.build()
    chain = (
        ModelRef.parse("openai/gpt-4o"),
        ModelRef.parse("openai/gpt-4o-mini"),
        ModelRef.parse("anthropic/x"),
    )
    assert sorted(resolver.profiles_for(org, chain)) == ["anthropic:default", "openai:main", "openai:second"]


def test_plan_is_deterministic() -> None:
    org = base_org().build()
    states = {"anthropic:default": apply_failure(FRESH, Failure(ErrorClass.AUTH, "m"), T0)}
    assert labels(resolver.plan(org, RouteRequest(), states, T0 + 1)) == labels(
        resolver.plan(org, RouteRequest(), states, T0 + 1)
    )
    assert labels(resolver.plan(org, RouteRequest(), states, T0 + 1))[-1] == (
        "anthropic:default/claude-haiku-4-5=skipped:disabled:auth"
    )


def test_a_known_model_whose_provider_is_not_connected_says_so() -> None:
    org = OrgBuilder(connections=[conn("anthropic", "default")], matrix={}).build()
    with pytest.raises(NoRouteError) as missing:
        resolver.select(org, RouteRequest(model="gpt-4o"))
    assert "model 'gpt-4o' is served by openai" in str(missing.value)
    assert "not connected; add a connection (`patchbay connection add --provider openai`)" in str(
        missing.value
    )
    with pytest.raises(NoRouteError, match="is unknown; use provider/model"):
        resolver.select(org, RouteRequest(model="no-such-model"))
    with pytest.raises(NoRouteError, match="no connection serves 'openai'; add one"):
        resolver.select(org, RouteRequest(model="openai/gpt-4o"))
