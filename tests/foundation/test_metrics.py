"""The metric hooks: closed label sets, and values that follow what is recorded."""

from __future__ import annotations

from prometheus_client import REGISTRY

from foundation import metrics


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_skip_is_counted_by_its_reason_family_only() -> None:
    before = sample("patchbay_skips_total", reason="capability")
    metrics.observe_skip("capability:vision")
    metrics.observe_skip("capability:tools")
    assert sample("patchbay_skips_total", reason="capability") == before + 2
    assert REGISTRY.get_sample_value("patchbay_skips_total", {"reason": "capability:vision"}) is None


def test_turn_steps_are_observed_and_missing_ones_left_out() -> None:
    name = "patchbay_voice_turn_since_speech_end_ms_count"
    before = {step: sample(name, step=step) for step in ("transcript", "first_audio")}
    metrics.observe_turn({"transcript": 400.0, "first_audio": None})
    assert sample(name, step="transcript") == before["transcript"] + 1
    assert sample(name, step="first_audio") == before["first_audio"]
    assert sample("patchbay_voice_turn_since_speech_end_ms_bucket", step="transcript", le="500.0") >= 1


def test_usage_counts_tokens_and_cost_by_billing_source() -> None:
    labels = {"billing_source": "platform", "segment": "tts"}
    before = [
        sample("patchbay_tokens_total", **labels, direction="output"),
        sample("patchbay_cost_micro_usd_total", **labels),
    ]
    metrics.observe_usage("platform", "tts", 0, 7, 1500)
    after = [
        sample("patchbay_tokens_total", **labels, direction="output"),
        sample("patchbay_cost_micro_usd_total", **labels),
    ]
    assert after == [before[0] + 7, before[1] + 1500]
