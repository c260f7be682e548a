"""The checks and the scoring: each failure reason is produced by the answer it names."""

from __future__ import annotations

from providers.contract import ErrorClass
from providers.types import FinishReason, NamedToolChoice, ToolCall, Usage
from routing.conformance import checks
from routing.conformance.checks import Observation
from routing.conformance.scoring import Outcome, score
from routing.conformance.suite import CLOCK, CORE, WEATHER

SINGLE = next(c for c in CORE.cases if c.id == "tools.single")
NAMED = next(c for c in CORE.cases if c.id == "tools.named")
PARALLEL = next(c for c in CORE.cases if c.id == "tools.parallel")
STRICT = next(c for c in CORE.cases if c.id == "json.strict")


def _call(name: str, arguments: str) -> Observation:
    return Observation(tool_calls=(ToolCall("c1", name, arguments),), finish=FinishReason.TOOL_CALLS)


def test_tool_call_failures_are_named() -> None:
    check = SINGLE.check
    assert check(SINGLE.request, _call("get_weather", '{"city": "Paris", "unit": "celsius"}')) is None
    assert check(SINGLE.request, _call("get_weather", '{"city": "Par')) == "broken_json"
    assert (
        check(SINGLE.request, _call("get_wether", '{"city": "Paris", "unit": "celsius"}')) == "unknown_tool"
    )
    assert check(SINGLE.request, _call("get_weather", '{"city": "Paris", "unit": "kelvin"}')) == "schema"
    assert check(SINGLE.request, Observation(text="It is sunny.")) == "no_tool_call"
    assert check(SINGLE.request, Observation(text="I'm sorry, I can't help with that.")) == "refusal_as_text"


def test_named_and_parallel_choices() -> None:
    assert isinstance(NAMED.request.tool_choice, NamedToolChoice)
    assert (
        NAMED.check(NAMED.request, _call("get_weather", '{"city": "x", "unit": "celsius"}')) == "wrong_tool"
    )
    assert NAMED.check(NAMED.request, _call("get_time", '{"timezone": "Asia/Tokyo"}')) is None
    one = _call(WEATHER.name, '{"city": "Oslo", "unit": "celsius"}')
    assert PARALLEL.check(PARALLEL.request, one) == "missing_calls"
    both = Observation(
        tool_calls=(*one.tool_calls, ToolCall("c2", CLOCK.name, '{"timezone": "Europe/Oslo"}'))
    )
    assert PARALLEL.check(PARALLEL.request, both) is None


def test_strict_schema_refuses_extra_fields() -> None:
    good = '{"name": "Alan", "priority": "low", "address": {"city": "Manchester", "country": "UK"}}'
    assert STRICT.check(STRICT.request, Observation(text=good)) is None
    extra = good[:-1] + ', "note": "x"}'
    assert STRICT.check(STRICT.request, Observation(text=extra)) == "schema"


def test_refusals_must_arrive_classified() -> None:
    check = checks.refusal_classified
    request = SINGLE.request
    assert check(request, Observation(refusal="I can't help with that.")) is None
    assert check(request, Observation(finish=FinishReason.CONTENT_FILTER)) is None
    assert check(request, Observation(text="I'm sorry, I can't help with that.")) == "refusal_as_text"
    # Elsewhere, a classified refusal fails the case, and so does going over the token budget.
    assert checks.common(request, Observation(refusal="no"), 200) == "refused"
    assert checks.common(request, Observation(usage=Usage(output_tokens=201)), 200) == "over_budget"
    assert checks.common(request, Observation(error=ErrorClass.TIMEOUT), 200) == "error:timeout"


def test_scores_count_and_measure() -> None:
    ok = Observation(usage=Usage(output_tokens=50), ttft_ms=100.0, total_ms=600.0)
    outcomes = [
        Outcome("tools.single", "tools", ok, None, cost_micro_usd=7),
        Outcome("tools.single", "tools", ok, "schema", cost_micro_usd=7),
        Outcome("json.enum", "json", Observation(total_ms=300.0), None),
    ]
    tools, json_ = score("m", outcomes)
    assert (tools.capability, tools.cases, tools.passed, tools.rate, tools.failures) == (
        "tools",
        2,
        1,
        0.5,
        {"schema": 1},
    )
    assert (tools.ttft_ms, tools.total_ms, tools.tokens_per_s, tools.cost_micro_usd) == (
        100.0,
        600.0,
        100.0,
        14,
    )
    assert tools.entry(0.95)["gate"] == "fail" and json_.entry(0.98)["gate"] == "pass"
    assert json_.ttft_ms is None
