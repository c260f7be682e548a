"""`billing.turn_costs`: a voice session's charges per turn, as `response.done` reports them."""

from __future__ import annotations

from billing.turn_costs import TurnCosts, cost_metadata


def test_a_turns_charges_add_up_by_segment_and_are_taken_once() -> None:
    costs = TurnCosts()
    costs.add("turn_1", "stt", 350)
    costs.add("turn_1", "llm", 0)
    costs.add("turn_1", "tts", 12_420)
    costs.add("turn_1", "tts", 1_034)  # a second sentence
    costs.add("turn_2", "stt", 1)
    assert costs.take("turn_1") == {"stt": 350, "llm": 0, "tts": 13_454}
    assert costs.take("turn_1") is None
    assert costs.take("turn_2") == {"stt": 1}


def test_only_the_latest_turns_are_kept() -> None:
    costs = TurnCosts(max_turns=2)
    for n in range(3):
        costs.add(f"turn_{n}", "tts", n + 1)
    assert costs.take("turn_0") is None
    assert (costs.take("turn_1"), costs.take("turn_2")) == ({"tts": 2}, {"tts": 3})


def test_the_metadata_is_exact_usd_as_the_cost_header_writes_it() -> None:
    assert cost_metadata({"stt": 350, "llm": 0, "tts": 13_454}) == {
        "cost": "0.013804",
        "cost_by_segment": {"llm": "0.00", "stt": "0.00035", "tts": "0.013454"},
    }
    assert cost_metadata({}) == {"cost": "0.00", "cost_by_segment": {}}


def test_the_metadata_says_who_paid_for_each_segment_kind() -> None:
    costs = TurnCosts()
    costs.add("turn_1", "stt", 350, source="platform")
    costs.add("turn_1", "llm", 0, source="byok")
    costs.add("turn_1", "tts", 1_000, source="byok")
    costs.add("turn_1", "tts", 2_000, source="platform")  # a sentence after a fallback
    assert costs.metadata("turn_1") == {
        "cost": "0.00335",
        "cost_by_segment": {"llm": "0.00", "stt": "0.00035", "tts": "0.003"},
        "billing_source_by_segment": {"llm": "byok", "stt": "platform", "tts": "byok+platform"},
    }
    assert costs.metadata("turn_1") == {
        "cost": "0.00",
        "cost_by_segment": {},
        "billing_source_by_segment": {},
    }
