"""The explain core: per ref of a chain, usable or the resolver's reason in plain words."""

from __future__ import annotations

from dataclasses import replace

from billing.tiers import default_table
from providers.contract import BillingSource, Capability, ErrorClass, ModelRef
from routing.catalog import default_catalog
from routing.cooldown import FRESH, Failure, apply_failure
from routing.explain import EDITED, RefState, explain_chain, explain_route, first_tier_allowing, reachable
from routing.intents import Intent
from routing.model import AgentRouting, ConnectionStatus, DeclaredModel
from routing.reasons import Context, reason_text
from routing.resolver import Resolver
from tests.routing.fakes import OrgBuilder, conn

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
catalog = default_catalog()
resolver = Resolver(catalog)
TEXT_ONLY = DeclaredModel("plain", frozenset({Capability.TEXT}))
SEEING = DeclaredModel("seer", frozenset({Capability.TEXT, Capability.VISION}))


def org_builder() -> OrgBuilder:
    return OrgBuilder(
        connections=[
            conn("openai", "main", models=[TEXT_ONLY, SEEING]),
            conn("openai_compatible", "mylab", base_url="https://lab.example/v1", models=[TEXT_ONLY]),
        ],
        matrix={Intent.CHAT: ("openai/plain", "mylab/plain")},
        agents={
            "support": AgentRouting(name="support", chains={Intent.CHAT: (ModelRef.parse("mylab/plain"),)})
        },
    )


def test_a_usable_chain_names_its_profiles_and_source() -> None:
    out = explain_route(resolver, org_builder().build(), Intent.CHAT, None, {}, T0)
    assert out.source == "org:chat" and out.error is None
    assert [(r.ref, r.state, r.profiles) for r in out.refs] == [
        ("openai/plain", RefState.USABLE, ("openai:main",)),
        ("mylab/plain", RefState.USABLE, ("openai_compatible:mylab",)),
    ]
    assert out.first == "openai/plain"
    assert (
        explain_route(resolver, org_builder().build(), Intent.CHAT, "support", {}, T0).first == "mylab/plain"
    )


def test_missing_capability_says_which_and_for_what() -> None:
    out = explain_chain(
        resolver, org_builder().build(), Intent.VISION, ["openai/plain", "openai/seer"], {}, T0
    )
    plain, seer = out.refs
    assert out.source == EDITED
    assert plain.state is RefState.UNUSABLE and seer.state is RefState.USABLE
    [reason] = plain.reasons
    assert reason.code == "skipped:capability:vision" and reason.profile == "openai:main"
    assert reason.text == "missing capability: plain cannot read images (vision), which vision needs"


def test_no_connection_and_a_switched_off_one() -> None:
    b = org_builder()
    b.connections[0] = conn("openai", "main", models=[TEXT_ONLY], status=ConnectionStatus.DISABLED)
    out = explain_chain(resolver, b.build(), Intent.CHAT, ["xai/grok-4", "openai/plain"], {}, T0)
    assert [r.state for r in out.refs] == [RefState.UNUSABLE, RefState.UNUSABLE]
    assert out.refs[0].reasons[0].code == "skipped:no_connection"
    assert "no connection that serves 'xai'" in out.refs[0].text
    assert out.refs[1].reasons[0].code == "skipped:status:disabled"
    assert (
        out.refs[1].text == "no connection: openai:main is switched off; enable it on the AI Connections page"
    )
    assert out.first is None


def test_a_tier_refusal_names_the_tier_that_allows_it() -> None:
    org = replace(
        org_builder().build(),
        tier="starter",
        allowed_billing=frozenset({BillingSource.PLATFORM, BillingSource.BYOK}),
    )
    out = explain_chain(resolver, org, Intent.CHAT, ["mylab/plain", "openai/plain"], {}, T0)
    lab, own = out.refs
    assert own.state is RefState.USABLE
    [reason] = lab.reasons
    assert (reason.code, reason.allowed_on_tier) == ("skipped:tier:private", "pro")
    assert (
        reason.text
        == "not allowed on the starter tier: private endpoints (openai_compatible:mylab) need the pro tier or above"
    )
    assert first_tier_allowing(BillingSource.BYOK, default_table()) == "starter"
    assert first_tier_allowing(BillingSource.PLATFORM, default_table()) == "free"


def test_a_cooldown_is_waiting_until_its_window_ends() -> None:
    states = {"openai:main": apply_failure(FRESH, Failure(ErrorClass.RATE_LIMIT, "plain", 90), T0)}
    out = explain_chain(
        resolver, org_builder().build(), Intent.CHAT, ["openai/plain", "openai/seer"], states, T0 + 1
    )
    plain, seer = out.refs
    assert plain.state is RefState.WAITING and seer.state is RefState.USABLE  # the cooldown is model-scoped
    [reason] = plain.reasons
    assert (reason.code, reason.until) == ("skipped:cooldown:rate_limit", T0 + 90)
    assert reason.text == "cooling down until 2027-01-15 08:01:30 UTC after a rate limit on openai:main"
    later = explain_chain(resolver, org_builder().build(), Intent.CHAT, ["openai/plain"], states, T0 + 90)
    assert later.refs[0].state is RefState.USABLE


def test_a_disable_reads_as_paused() -> None:
    states = {"openai:main": apply_failure(FRESH, Failure(ErrorClass.AUTH, "plain"), T0)}
    [ref] = explain_chain(resolver, org_builder().build(), Intent.CHAT, ["openai/seer"], states, T0).refs
    assert ref.state is RefState.WAITING
    assert ref.text == "openai:main is paused until 2027-01-15 08:10:00 UTC: the provider refused the key"


def test_an_undeclared_model_and_a_bad_ref() -> None:
    out = explain_chain(
        resolver, org_builder().build(), Intent.CHAT, ["mylab/seer", "nonsense", "mylab/seer"], {}, T0
    )
    assert [r.ref for r in out.refs] == ["mylab/seer", "nonsense"]
    assert out.refs[0].reasons[0].code == "skipped:model_not_offered"
    assert out.refs[1].reasons[0].code == "invalid_ref"
    assert "provider/model" in out.refs[1].text


def test_words_for_reasons_the_resolver_adds_elsewhere() -> None:
    ctx = Context(ModelRef.parse("openai/plain"), "openai:main", Intent.TOOLS, "pro", None, None)
    assert (
        reason_text("skipped:gate:tools", ctx)
        == "blocked by a conformance gate: openai/plain has not passed the tools conformance check on openai:main"
    )
    assert reason_text("skipped:brand_new:thing", ctx) == "cannot be used (skipped:brand_new:thing)"


def test_no_chain_is_an_error_not_an_exception() -> None:
    b = org_builder()
    b.matrix.clear()
    out = explain_route(resolver, b.build(), Intent.CHAT, None, {}, T0)
    assert out.source is None and out.refs == () and out.error is not None and "chat" in out.error


def test_reachable_lists_declared_models_by_ref() -> None:
    assert reachable(catalog, org_builder().build()) == ["mylab/plain", "openai/plain", "openai/seer"]
