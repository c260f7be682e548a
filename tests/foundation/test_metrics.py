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


def test_a_request_is_counted_and_timed_as_the_public_api_would() -> None:
    """The hot hooks add to the children's values directly (`metrics._adder`): the count, the
    sum and each bucket (a value on a bound falls in that bound's bucket) move as `inc` and
    `observe` would move them."""
    route = "/test/direct-path"
    count = "patchbay_http_requests_total"
    labels = {"method": "POST", "route": route, "status": "200"}
    before = sample(count, **labels)
    for seconds in (0.001, 0.003, 0.0025, 120.0):
        metrics.observe_http("POST", route, 200, seconds)
    assert sample(count, **labels) == before + 4
    timing = "patchbay_http_request_duration_seconds"
    assert sample(f"{timing}_count", route=route) == 4
    assert abs(sample(f"{timing}_sum", route=route) - 120.0065) < 1e-9
    buckets = {
        le: sample(f"{timing}_bucket", route=route, le=le)
        for le in ("0.001", "0.0025", "0.005", "60.0", "+Inf")
    }
    assert buckets == {"0.001": 1, "0.0025": 2, "0.005": 3, "60.0": 3, "+Inf": 4}


def test_an_attempt_and_cache_lookups_are_counted() -> None:
    attempts = {"provider": "openai", "protocol": "openai_chat", "outcome": "served", "error_class": ""}
    before = sample("patchbay_upstream_attempts_total", **attempts)
    metrics.observe_attempt("openai", "openai_chat", "served")
    assert sample("patchbay_upstream_attempts_total", **attempts) == before + 1
    counters = metrics.cache_counters("test_direct")
    counters.hit()
    counters.hit()
    counters.miss()
    counters.evicted()
    assert sample("patchbay_cache_hits_total", cache="test_direct") == 2
    assert sample("patchbay_cache_misses_total", cache="test_direct") == 1
    assert sample("patchbay_cache_evictions_total", cache="test_direct") == 1
