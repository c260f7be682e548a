"""Who must act when every candidate was skipped: one rule per skip family of the vocabulary."""

from __future__ import annotations

import pytest

from routing.skip_reasons import SKIP_RULES, SkipKind, refusal, rule_for
from routing.trace import Outcome, TraceEntry


def skip(reason: str, retry_after: float | None = None, ref: str = "openai/gpt-4o") -> TraceEntry:
    return TraceEntry(
        ref=ref, profile_id="openai:main", outcome=Outcome.SKIPPED, reason=reason, retry_after=retry_after
    )


@pytest.mark.parametrize(
    ("reason", "kind", "code"),
    [
        ("capability:tools", SkipKind.CONFIG, "model_lacks_capability"),
        ("gate:tools", SkipKind.CONFIG, "conformance_gate_failed"),
        ("no_connection", SkipKind.CONFIG, "no_connection"),
        ("status:disabled", SkipKind.CONFIG, "connection_disabled"),
        ("status:revoked", SkipKind.CONFIG, "connection_disabled"),
        ("model_not_offered", SkipKind.CONFIG, "model_not_offered"),
        ("no_adapter:elevenlabs", SkipKind.CONFIG, "no_adapter"),
        ("tier:byok", SkipKind.TIER, "tier_not_allowed"),
        ("cooldown:rate_limit", SkipKind.TRANSIENT, "no_available_model"),
        ("disabled:auth", SkipKind.TRANSIENT, "no_available_model"),
        ("something_new:x", SkipKind.TRANSIENT, "no_available_model"),
    ],
)
def test_each_family_has_its_kind_and_code(reason: str, kind: SkipKind, code: str) -> None:
    found = refusal([skip(reason, retry_after=5.0)])
    assert (found.kind, found.code) == (kind, code)


def test_every_documented_family_is_in_the_table() -> None:
    assert set(SKIP_RULES) == {
        "capability", "gate", "no_connection", "status", "model_not_offered", "no_adapter", "tier", "cooldown",
        "disabled", "flag",
    }  # fmt: skip


def test_the_message_names_the_model_the_reason_and_the_fix() -> None:
    found = refusal([skip("gate:tools", ref="mylab/llama-3")])
    assert found.message.startswith("no candidate can serve this request: ")
    assert "openai:main/llama-3 has not passed the conformance gate for `tools`" in found.message
    assert "To fix:" in found.message


def test_a_config_skip_beside_a_tier_skip_is_config() -> None:
    found = refusal([skip("tier:private"), skip("capability:vision", ref="mistral/x")])
    assert found.kind is SkipKind.CONFIG and found.code == "model_lacks_capability"
    assert "`private`" in found.message and "`vision`" in found.message


def test_a_flag_skip_is_a_config_refusal_naming_the_feature() -> None:
    found = refusal([skip("flag:byok")])
    assert found.kind is SkipKind.CONFIG and found.code == "feature_disabled"
    assert "`byok` connections are switched off" in found.message and "patchbay flags" in found.message


def test_any_transient_skip_makes_it_transient_with_the_soonest_wait() -> None:
    found = refusal([skip("capability:tools"), skip("cooldown:timeout", 40.0), skip("disabled:auth", 12.5)])
    assert found.kind is SkipKind.TRANSIENT and found.retry_after == 12.5
    assert "capability" not in found.message, "only what waiting fixes is named"


def test_a_transient_skip_of_unknown_length_gives_no_wait() -> None:
    assert refusal([skip("cooldown:timeout", 40.0), skip("cooldown:network")]).retry_after is None


def test_failed_entries_are_not_skip_reasons_and_nothing_skipped_is_transient() -> None:
    failed = TraceEntry(
        ref="openai/gpt-4o", profile_id="openai:main", outcome=Outcome.FAILED, reason="guard:plain_http"
    )
    assert refusal([failed]).kind is SkipKind.TRANSIENT


def test_rule_for_splits_family_and_detail() -> None:
    rule, detail = rule_for("gate:json")
    assert rule is SKIP_RULES["gate"] and detail == "json"
    assert rule_for("model_not_offered")[1] == ""
