"""The pure core: the sample files, and malformed or hostile inputs, planned without I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.contract import CredentialKind, ProviderId
from server.openclaw.items import Outcome, Plan, Status
from server.openclaw.options import Inputs, Options
from server.openclaw.plan import build_plan
from server.openclaw.source import FileError, load_document
from tests.server.openclaw.fixtures import CANARIES, T0_MS, load

ENV = {"ACME_LLM_API_KEY": "env-test-CANARY-0009", "ACME_PROXY_KEY": "env-test-CANARY-0010"}


def plan_of(profiles: dict[str, Any], config: dict[str, Any] | None = None, **options: Any) -> Plan:
    opts = Options(**({"now_ms": T0_MS} | options))
    return build_plan(Inputs(profiles=profiles, config=config), opts)


def fixture_plan(**options: Any) -> Plan:
    return plan_of(load("auth-profiles.json"), load("openclaw.json"), **options)


def by_item(plan: Plan) -> dict[str, Outcome]:
    return {o.item: o for o in plan.left_out}


def text_of(plan: Plan) -> str:
    """Everything a report could print from the plan."""
    parts = [o.as_text() for o in plan.left_out]
    parts += [f"{c.item} {c.notes} {c.key!r} {c.key}" for c in plan.connections]
    parts += [f"{o.item} {o.notes}" for o in plan.orders] + [
        f"{c.item} {c.notes} {c.chains}" for c in plan.chains
    ]
    parts += [f"{c.item} {c.notes} {c.state}" for c in plan.cooldowns]
    return "\n".join(parts)


def test_the_samples_plan_connections_models_chain_order_and_cooldowns() -> None:
    plan = fixture_plan(resolve_env=True, environ=ENV)
    conns = {c.profile_id: c for c in plan.connections}
    assert set(conns) == {
        "openai:default",
        "openai:backup",
        "anthropic:default",
        "anthropic:setup-token",
        "openrouter:default",
        "openai_compatible:acme-llm",
        "anthropic:acme-claude-proxy",
    }
    assert conns["anthropic:setup-token"].kind is CredentialKind.BEARER_TOKEN
    acme = conns["openai_compatible:acme-llm"]
    assert acme.base_url == "https://llm.internal.acme.example/v1"
    assert acme.models == (
        {"id": "acme-chat-70b", "capabilities": ["text", "tools"]},
        {"id": "acme-vision-8b", "capabilities": ["text", "tools", "vision"]},
    )
    # The profile's key wins over the provider's ${ACME_LLM_API_KEY}, as in OpenClaw.
    assert acme.key is not None and acme.key.expose() == "acme-test-CANARY-0006"
    proxy = conns["anthropic:acme-claude-proxy"]
    assert proxy.provider is ProviderId.ANTHROPIC and proxy.key is not None
    assert proxy.key.expose() == ENV["ACME_PROXY_KEY"]

    [chain] = plan.chains
    assert chain.agent == "main" and chain.default_model == "anthropic/claude-sonnet-4-6"
    assert chain.chains == {
        "chat": [
            "anthropic/claude-sonnet-4-6",
            "openai/gpt-5.2",
            "openrouter/moonshotai/kimi-k2",
            "acme-llm/acme-chat-70b",
        ],
        "vision": ["openai/gpt-5.2", "acme-llm/acme-vision-8b"],
    }
    orders = {o.provider: o.profiles for o in plan.orders}
    assert orders == {
        ProviderId.OPENAI: ("openai:default", "openai:backup"),
        ProviderId.ANTHROPIC: ("anthropic:setup-token", "anthropic:default"),
    }
    cooldowns = {c.profile_id: c.state for c in plan.cooldowns}
    assert set(cooldowns) == {"openai:default", "anthropic:default"}
    assert cooldowns["openai:default"].cooldown_until == 1_767_225_660.0
    assert (cooldowns["openai:default"].cooldown_reason, cooldowns["openai:default"].cooldown_model) == (
        "rate_limit",
        "gpt-5.2",
    )
    assert cooldowns["openai:default"].failure_counts == {"rate_limit": 2}
    assert (
        cooldowns["anthropic:default"].disabled_until,
        cooldowns["anthropic:default"].disabled_reason,
    ) == (1_767_226_200.0, "billing")
    left = by_item(plan)
    assert left["usageStats of profile openrouter:default"].status is Status.SKIPPED
    assert left["plugins.entries.voice-call"].status is Status.SKIPPED
    assert not [o for o in plan.left_out if o.status is Status.REFUSED]
    assert not any(c in text_of(plan) for c in (*CANARIES, "CANARY-0009", "CANARY-0010"))


def test_the_clock_is_injected_not_read() -> None:
    """Later, every window has ended and the token has expired; earlier, all three windows are active."""
    later = fixture_plan(resolve_env=True, environ=ENV, now_ms=1_798_761_600_000)
    assert later.cooldowns == []
    assert "expired" in (by_item(later)["profile anthropic:setup-token"].reason or "")
    earlier = fixture_plan(resolve_env=True, environ=ENV, now_ms=1_767_223_995_000)
    assert {c.profile_id for c in earlier.cooldowns} == {
        "openai:default",
        "anthropic:default",
        "openrouter:default",
    }


def test_env_references_are_read_only_when_asked() -> None:
    plan = fixture_plan(environ=ENV)
    refusal = by_item(plan)["models.providers.acme-claude-proxy"]
    assert (
        refusal.status is Status.REFUSED
        and "--resolve-env" in (refusal.reason or "")
        and "ACME_PROXY_KEY" in (refusal.reason or "")
    )
    unset = by_item(fixture_plan(resolve_env=True, environ={}))["models.providers.acme-claude-proxy"]
    assert unset.status is Status.REFUSED and "not set" in (unset.reason or "")


def test_the_allowlist_is_strict() -> None:
    plan = fixture_plan(allow=frozenset({"openai"}), resolve_env=True, environ=ENV)
    assert {c.profile_id for c in plan.connections} == {"openai:default", "openai:backup"}
    left = by_item(plan)
    assert left["profile anthropic:default"].status is Status.SKIPPED
    assert "allowlist" in (left["models.providers.acme-llm"].reason or "")
    [chain] = plan.chains
    assert chain.chains == {"chat": ["openai/gpt-5.2"], "vision": ["openai/gpt-5.2"]}
    assert any("anthropic" in n and "allowlist" in n for n in chain.notes)


def test_a_custom_provider_can_be_allowed_by_its_own_id() -> None:
    plan = fixture_plan(allow=frozenset({"acme-llm"}), resolve_env=True, environ=ENV)
    assert [c.profile_id for c in plan.connections] == ["openai_compatible:acme-llm"]


HOSTILE_KEY = "sk-test-CANARY-hostile-77"


def hostile_store() -> dict[str, Any]:
    return {
        "version": 1,
        "profiles": {
            "OpenAI:Main": {"type": "api_key", "provider": "OPENAI", "key": "sk-test-CANARY-mixed-11"},
            "openai:blank": {"type": "api_key", "provider": "openai", "key": "   "},
            "openai:empty": {"type": "api_key", "provider": "openai", "key": ""},
            "openai:liar": {"type": "api_key", "provider": "anthropic", "key": HOSTILE_KEY},
            "openrouter:pat": {"type": "token", "provider": "openrouter", "token": "sk-test-CANARY-token-22"},
            "openai:weird": {"type": HOSTILE_KEY, "provider": "openai", "key": HOSTILE_KEY},
            "openai:user@example.com": {
                "type": "oauth",
                "provider": "openai",
                "access": "sk-test-CANARY-access-33",
                "refresh": "r",
            },
            "anthropic:ok": {"type": "api_key", "provider": "anthropic", "key": "sk-ant-test-CANARY-ok-44"},
            "mistral:nonstr": {"type": "api_key", "provider": "mistral", "key": 12345678901234},
        },
        "order": {
            "OpenAI": ["openai:main", "openai:ghost", "OpenAI:Main", "anthropic:ok", 7],
            "anthropic": "anthropic:ok",
        },
        "usageStats": {
            "anthropic:ok": {"cooldownUntil": "1767225660000", "errorCount": 1},
            "openai:main": {"cooldownUntil": T0_MS + 60_000, "errorCount": -3},
            "openai:blank": {"cooldownUntil": T0_MS + 60_000},
        },
    }


def test_hostile_profiles_each_get_a_clear_report_and_no_secret_is_echoed() -> None:
    plan = plan_of(hostile_store())
    left = by_item(plan)
    assert [c.profile_id for c in plan.connections] == ["openai:main", "anthropic:ok"]
    mixed = plan.connections[0]
    assert any("normalised" in n for n in mixed.notes) and any("lower-cased" in n for n in mixed.notes)
    expectations = {
        "profile openai:blank": "empty",
        "profile openai:empty": "empty",
        "profile openai:liar": "provider field",
        "profile openrouter:pat": "API keys only",
        "profile openai:weird": "unknown credential type",
        "profile openai:user@example.com": "OAuth",
        "profile mistral:nonstr": "expected a string",
    }
    for item, words in expectations.items():
        assert left[item].status is Status.REFUSED, item
        assert words in (left[item].reason or ""), (item, left[item].reason)
    [order] = plan.orders
    assert order.profiles == ("openai:main",)
    assert sum("dropped" in n for n in order.notes) == 4  # ghost, the duplicate, anthropic's, the number
    assert left["order.anthropic"].status is Status.REFUSED
    assert "a string" in (left["usageStats of profile anthropic:ok"].reason or "")
    assert "non-negative" in (left["usageStats of profile openai:main"].reason or "")
    assert left["usageStats of profile openai:blank"].status is Status.SKIPPED
    text = text_of(plan)
    for secret in (
        HOSTILE_KEY,
        "CANARY-mixed-11",
        "CANARY-token-22",
        "CANARY-access-33",
        "CANARY-ok-44",
        "12345678901234",
    ):
        assert secret not in text


def test_config_mode_must_agree_with_the_stored_type() -> None:
    store = {
        "profiles": {"openai:a": {"type": "api_key", "provider": "openai", "key": "sk-test-CANARY-aaaa"}}
    }
    config = {"auth": {"profiles": {"openai:a": {"provider": "openai", "mode": "token"}}}}
    assert by_item(plan_of(store, config))["profile openai:a"].status is Status.REFUSED


def test_the_split_store_takes_order_and_stats_from_the_state_file() -> None:
    full = load("auth-profiles.json")
    secrets_only = {"version": 1, "profiles": full["profiles"]}
    state = {
        "version": 1,
        "order": {"openai": ["openai:backup", "openai:default"]},
        "usageStats": full["usageStats"],
    }
    plan = build_plan(Inputs(profiles=secrets_only, state=state), Options(now_ms=T0_MS))
    assert [o.profiles for o in plan.orders] == [("openai:backup", "openai:default")]
    assert {c.profile_id for c in plan.cooldowns} == {"openai:default", "anthropic:default"}


def test_planning_twice_gives_the_same_plan() -> None:
    first, second = fixture_plan(resolve_env=True, environ=ENV), fixture_plan(resolve_env=True, environ=ENV)
    assert text_of(first) == text_of(second)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"profiles": ', ""])
def test_a_file_that_is_not_a_json_object_is_a_file_error(text: str) -> None:
    with pytest.raises(FileError) as err:
        load_document(text, name="auth-profiles.json")
    assert "auth-profiles.json" in str(err.value)


def test_a_profiles_file_without_profiles_is_refused() -> None:
    plan = plan_of({"version": 1, "profiles": json.loads("[]")})
    assert by_item(plan)["profiles"].status is Status.REFUSED


def test_chain_refs_are_rewritten_to_patchbay_names_or_dropped_with_a_note() -> None:
    config = load("openclaw.json")
    config["agents"]["defaults"]["model"] = {
        "primary": "acme-claude-proxy/claude-sonnet-4-6",
        "fallbacks": ["Google/gemini-2.5-pro", "zai/glm-4.6", "openai/gpt-5.2", "OpenAI/gpt-5.2", "no-slash"],
    }
    plan = plan_of(load("auth-profiles.json"), config, resolve_env=True, environ=ENV)
    [chain] = plan.chains
    assert chain.chains["chat"] == [
        "anthropic:acme-claude-proxy/claude-sonnet-4-6",
        "gemini/gemini-2.5-pro",
        "openai/gpt-5.2",
    ]
    notes = " | ".join(chain.notes)
    assert "zai/glm-4.6 dropped" in notes and "listed twice" in notes and "provider/model" in notes


def test_profile_key_references_follow_the_same_rule() -> None:
    store = {
        "profiles": {
            "openai:ref": {
                "type": "api_key",
                "provider": "openai",
                "keyRef": {"source": "env", "provider": "default", "id": "OPENAI_KEY"},
            },
            "openai:dollar": {"type": "api_key", "provider": "openai", "key": "${OPENAI_KEY}"},
            "openai:file": {
                "type": "api_key",
                "provider": "openai",
                "keyRef": {"source": "file", "provider": "p", "id": "/etc/key"},
            },
        }
    }
    environ = {"OPENAI_KEY": "sk-test-CANARY-env-55"}
    resolved = plan_of(store, resolve_env=True, environ=environ)
    assert [(c.profile_id, c.key.expose() if c.key else None) for c in resolved.connections] == [
        ("openai:ref", environ["OPENAI_KEY"]),
        ("openai:dollar", environ["OPENAI_KEY"]),
    ]
    assert "file SecretRef" in (by_item(resolved)["profile openai:file"].reason or "")
    unresolved = plan_of(store, environ=environ)
    assert unresolved.connections == []
    assert all(
        "--resolve-env" in (o.reason or "") for o in unresolved.left_out if o.item != "profile openai:file"
    )
