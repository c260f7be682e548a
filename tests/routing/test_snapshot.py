from __future__ import annotations

from dataclasses import dataclass

from billing.prices import Price
from providers.contract import BillingSource, Capability, ModelRef, ProviderId
from routing.intents import Intent
from routing.model import ConnectionStatus
from routing.snapshot import build_org_routing
from routing.tables import Agent, Connection, OrgAISettings
from routing.voice_settings import VoiceSettings


@dataclass
class OrgRow:
    id: str = "org_1"
    tier: str = "pro"


def row(provider: str, name: str, *, position: int = 0, source: str = "org_key", **kw: object) -> Connection:
    return Connection(
        id=f"conn_{name}",
        org_id="org_1",
        provider=provider,
        name=name,
        position=position,
        status=kw.pop("status", "active"),
        credential_kind="api_key",
        credential_source=source,
        **kw,
    )


def test_builds_indexed_snapshot() -> None:
    settings = OrgAISettings(
        org_id="org_1",
        default_model="openai/gpt-4o",
        allowed_models=["openai/gpt-4o", "MyLab/llama"],
        routing={"chat": ["openai/gpt-4o", "mylab/llama"], "vision": ["gemini/gemini-2.5-pro"]},
    )
    connections = [
        row("openai", "b"),
        row("openai", "a"),
        row("anthropic", "two", position=2),
        row("anthropic", "one", position=1, status="revoked"),
        row(
            "openai_compatible",
            "MyLab",
            source="org_private_endpoint",
            base_url="http://10.0.0.5/v1",
            models=[{"id": "llama", "capabilities": ["text", "tools"]}],
            health_models=["llama", "qwen"],
        ),
    ]
    agents = [
        Agent(
            org_id="org_1",
            name="support",
            default_model="anthropic/claude-haiku-4-5",
            chains={"chat": ["anthropic/claude-haiku-4-5"]},
        )
    ]
    org = build_org_routing(
        OrgRow(),
        settings,
        connections,
        agents,
        billing_policy=lambda tier, byok_override=False: frozenset({BillingSource.BYOK}),
        explicit_order={"anthropic", "xai"},
    )

    assert org.default_model == ModelRef("openai", "gpt-4o")
    assert org.allowlist == frozenset({"openai/gpt-4o", "mylab/llama"})
    assert org.matrix[Intent.CHAT] == (ModelRef("openai", "gpt-4o"), ModelRef("mylab", "llama"))
    assert [c.name for c in org.profiles[ProviderId.OPENAI]] == ["a", "b"]
    assert [c.name for c in org.profiles[ProviderId.ANTHROPIC]] == ["one", "two"]
    assert org.explicit_order == frozenset({ProviderId.ANTHROPIC})
    assert org.profiles[ProviderId.ANTHROPIC][0].status is ConnectionStatus.REVOKED
    lab = org.custom["mylab"]
    assert lab.profile_id == "openai_compatible:MyLab"
    assert lab.billing_source is BillingSource.PRIVATE
    assert lab.declared_models[0].capabilities == frozenset({Capability.TEXT, Capability.TOOLS})
    assert lab.reported_models == frozenset({"llama", "qwen"})
    assert org.agents["support"].chains[Intent.CHAT] == (ModelRef("anthropic", "claude-haiku-4-5"),)
    assert org.allowed_billing == frozenset({BillingSource.BYOK})
    assert org.warnings == ()


def test_bad_configuration_becomes_warnings_not_errors() -> None:
    settings = OrgAISettings(
        org_id="org_1", routing={"chat": ["not a ref", "openai/gpt-4o"], "dance": ["openai/x"]}
    )
    connections = [
        row("nosuch", "x"),
        row(
            "openai_compatible",
            "openai",
            source="org_private_endpoint",
            models=[{"capabilities": ["text"]}, {"id": "m", "capabilities": ["telepathy"]}],
        ),
    ]
    org = build_org_routing(OrgRow(), settings, connections, [])
    assert org.matrix[Intent.CHAT] == (ModelRef("openai", "gpt-4o"),)
    assert len(org.warnings) == 6
    joined = " | ".join(org.warnings)
    for fragment in ("not a ref", "dance", "nosuch", "without an id", "telepathy", "cannot be used"):
        assert fragment in joined


def test_no_settings_row() -> None:
    org = build_org_routing(OrgRow(), None, [], [])
    assert org.default_model is None and org.allowlist is None and dict(org.matrix) == {}


def test_agent_voice_settings_are_in_the_snapshot() -> None:
    agents = [
        Agent(
            org_id="org_1",
            name="ada",
            chains={},
            settings={"voice": "nova", "instructions": "Be Ada.", "language": "en-GB"},
        ),
        Agent(org_id="org_1", name="bob", chains={}, settings={"output_format": "flac"}),
        Agent(org_id="org_1", name="cy", chains={}, settings={}),
    ]
    org = build_org_routing(OrgRow(), None, [], agents)
    assert org.agents["ada"].voice_settings == VoiceSettings("nova", "Be Ada.", "en-GB", None)
    assert org.agents["bob"].voice_settings.empty and org.agents["cy"].voice_settings.empty
    assert org.warnings == ("agent bob: voice setting output_format is not valid and is ignored",)


def test_declared_prices_reach_the_snapshot_and_a_bad_stored_one_is_a_warning() -> None:
    lab = row(
        "openai_compatible",
        "lab",
        source="org_private_endpoint",
        base_url="http://10.0.0.5/v1",
        models=[
            {"id": "llama", "capabilities": ["text"], "price": {"input": "0.59", "output": "0.79"}},
            {"id": "whisper", "capabilities": ["stt"], "price": {"per_minute": "0.006"}},
            {"id": "broken", "capabilities": ["text"], "price": {"input": "-1"}},
            {"id": "float", "capabilities": ["text"], "price": {"input": 0.5}},
            {"id": "odd", "capabilities": ["text"], "price": "cheap"},
            {"id": "plain", "capabilities": ["text"]},
        ],
    )
    org = build_org_routing(OrgRow(), None, [lab], [])
    declared = {d.id: d.price for d in org.custom["lab"].declared_models}
    assert declared == {
        "llama": Price(input=590_000, output=790_000),
        "whisper": Price(per_minute=6_000),
        "broken": None,
        "float": None,
        "odd": None,
        "plain": None,
    }
    assert [w for w in org.warnings if "unusable price" in w] == [
        f"connection openai_compatible:lab model {m}: unusable price ({why})"
        for m, why in [
            ("broken", "price.input must not be negative"),
            ("float", "amounts are exact decimals, not floats"),
            ("odd", "a price is an object of USD amounts"),
        ]
    ]
