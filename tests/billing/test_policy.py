"""`billing.policy`: each tier x billing source x segment charges what docs/billing.md says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.money import format_usd, parse_usd
from billing.policy import Charge, allowed, billing_policy, charge, max_charge, voice_fee
from billing.prices import FREE, Price, cost, max_cost
from billing.tiers import default_table, policy_for
from billing.usage import Segment
from foundation.tiers import Tier
from providers.contract import BillingSource
from providers.types import Usage

DOC = (Path(__file__).resolve().parents[2] / "docs" / "billing.md").read_text()
SECTION = DOC.split("\n## What a segment is charged\n", 1)[1].split("\n## ", 1)[0]
PLATFORM, BYOK, PRIVATE = BillingSource.PLATFORM, BillingSource.BYOK, BillingSource.PRIVATE
ONE_USD = 1_000_000


def matrix_rows() -> list[list[str]]:
    """The rows of the section's table for a 1.00 USD segment: tier, source, may route, llm, stt, tts."""
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in SECTION.splitlines()
        if line.startswith("| `")
    ]
    return [row for row in rows if len(row) == 6]


def test_the_matrix_covers_every_tier_and_source_once() -> None:
    assert sorted((r[0], r[1]) for r in matrix_rows()) == sorted(
        (t.value, s.value) for t in Tier for s in BillingSource
    )


@pytest.mark.parametrize("row", matrix_rows(), ids=lambda r: f"{r[0]}-{r[1]}")
def test_each_tier_source_and_segment_charges_what_the_doc_says(row: list[str]) -> None:
    tier, source, may_route, *by_segment = row
    policy, src = policy_for(tier), BillingSource(source)
    assert (allowed(policy, src) or "yes") == may_route
    for segment, usd in zip(Segment, by_segment, strict=True):
        audio = 0.0 if segment is Segment.LLM else 60.0
        assert charge(policy, src, segment, ONE_USD, audio_seconds=audio).credits == parse_usd(usd), (
            tier,
            source,
            segment,
        )


def bold_numbers(row_start: str) -> list[int]:
    """The bold figures (micro-USD) of the worked example whose row starts with `row_start`."""
    (line,) = [line for line in SECTION.splitlines() if line.startswith(f"| {row_start}")]
    return [int(n.replace(",", "")) for n in re.findall(r"\*\*([\d,]+)\*\*", line)]


MINI = Price(input=150_000, output=600_000, cached_input=75_000)
SONNET = Price(input=3_000_000, output=15_000_000, cached_input=300_000, cache_write=3_750_000)
FLASH_TTS = Price(per_1m_chars=60_000_000)


def test_worked_example_platform_chat() -> None:
    listed = cost(MINI, tokens=Usage(input_tokens=1_200, cached_input_tokens=200, output_tokens=350))
    assert (
        bold_numbers("`pro`, chat on")
        == [charge(policy_for("pro"), PLATFORM, Segment.LLM, listed).credits]
        == [432]
    )


def test_worked_example_hold() -> None:
    most = max_cost(MINI, 1_000, 1_200)
    assert most is not None
    assert bold_numbers("`pro`, the hold") == [max_charge(policy_for("pro"), Segment.LLM, most)] == [897]


def test_worked_example_byok_surcharge() -> None:
    used = Usage(input_tokens=10_000, cached_input_tokens=8_000, cache_write_tokens=1_000, output_tokens=500)
    got = charge(policy_for("starter"), BYOK, Segment.LLM, cost(SONNET, tokens=used))
    assert got == Charge(credits=1_665, usage=1_665, voice_fee=0, reason="byok:surcharge")
    assert bold_numbers("`starter`, the org's own key") == [got.credits]


def voice_turn(tier: str) -> list[Charge]:
    """STT on the org's key, LLM on the org's key, TTS on the platform's: docs/billing.md's voice turn."""
    policy = policy_for(tier)
    return [
        charge(
            policy, BYOK, Segment.STT, cost(Price(per_minute=6_700), audio_seconds=4.2), audio_seconds=4.2
        ),
        charge(policy, BYOK, Segment.LLM, cost(MINI, tokens=Usage(input_tokens=900, output_tokens=60))),
        charge(
            policy,
            PLATFORM,
            Segment.TTS,
            cost(FLASH_TTS, characters=180, audio_seconds=12.4),
            audio_seconds=12.4,
        ),
    ]


def test_a_voice_turn_with_a_byok_llm_pays_only_for_the_platform_tts_and_its_voice_fee() -> None:
    stt, llm, tts = voice_turn("pro")
    assert (stt.credits, llm.credits) == (0, 0)
    assert (tts.usage, tts.voice_fee, tts.credits) == (12_420, 1_034, 13_454)
    assert bold_numbers("`pro`, a voice turn") == [stt.credits, llm.credits, tts.credits]
    stt, llm, tts = voice_turn("agency")
    assert (stt.credits, llm.credits, tts.credits, tts.voice_fee) == (0, 0, 11_880, 0)
    assert bold_numbers("the same turn on `agency`") == [tts.credits]


def test_the_built_in_engines_pay_only_the_voice_fee() -> None:
    listed = cost(FREE, audio_seconds=4.2)
    got = charge(policy_for("pro"), PLATFORM, Segment.STT, listed, audio_seconds=4.2)
    assert (listed, got.usage, got.voice_fee) == (0, 0, 350)
    assert bold_numbers("`pro`, STT on the built-in") == [got.credits]


def test_the_voice_fee_is_for_platform_speech_only() -> None:
    free = policy_for("free")
    assert charge(free, PLATFORM, Segment.LLM, 0, audio_seconds=60).credits == 0
    assert charge(free, PLATFORM, Segment.TTS, 0, audio_seconds=60).voice_fee == free.voice_fee == 20_000
    assert charge(free.with_byok_override(), BYOK, Segment.TTS, 0, audio_seconds=60).credits == 0
    assert voice_fee(policy_for("enterprise"), 60) == 0


def test_skip_reasons_are_the_resolvers() -> None:
    assert allowed(policy_for("free"), BYOK) == "skipped:tier:byok"
    assert allowed(policy_for("starter"), PRIVATE) == "skipped:tier:private"
    assert allowed(policy_for("free"), PLATFORM) is None
    assert billing_policy("free") == frozenset({PLATFORM})
    assert billing_policy("starter") == frozenset({PLATFORM, BYOK})
    assert billing_policy("enterprise") == frozenset(BillingSource)
    assert billing_policy("platinum") == frozenset({PLATFORM})  # unknown: fails closed
    assert billing_policy("free", byok_override=True) == frozenset({PLATFORM, BYOK})


def test_max_charge_is_zero_when_no_allowed_source_charges() -> None:
    pro = policy_for("pro")
    assert max_charge(pro, Segment.LLM, ONE_USD, sources=[BYOK, PRIVATE]) == 0
    assert max_charge(policy_for("starter"), Segment.LLM, ONE_USD, sources=[BYOK]) == 100_000
    assert max_charge(pro, Segment.LLM, ONE_USD) == 1_150_000


def test_a_negative_list_cost_is_a_bug_not_a_refund() -> None:
    with pytest.raises(ValueError, match="negative"):
        charge(policy_for("pro"), PLATFORM, Segment.LLM, -1)


def test_markup_rounds_up() -> None:
    assert charge(policy_for("pro"), PLATFORM, Segment.LLM, 1).credits == 2  # 1.15 -> 2
    assert charge(policy_for("starter"), BYOK, Segment.LLM, 1).credits == 1  # 0.1 -> 1
    assert format_usd(charge(policy_for("enterprise"), PLATFORM, Segment.LLM, 123).credits) == "0.000123"


PROPERTIES = settings(deadline=None, database=None, derandomize=True, max_examples=300)


@PROPERTIES
@given(
    st.sampled_from(list(Tier)),
    st.sampled_from(list(BillingSource)),
    st.sampled_from(list(Segment)),
    st.integers(0, 10**12),
    st.integers(0, 10**7),
)
def test_charges_are_never_negative_and_a_hold_covers_them(
    tier: Tier, source: BillingSource, segment: Segment, listed: int, audio_ms: int
) -> None:
    policy = default_table()[tier]
    got = charge(policy, source, segment, listed, audio_seconds=audio_ms / 1000)
    assert got.credits == got.usage + got.voice_fee >= 0
    if source is PLATFORM:
        assert got.usage >= listed
    elif policy.byok_surcharge_bp == 0:
        assert got.credits == 0
    assert max_charge(policy, segment, listed, audio_seconds=audio_ms / 1000, sources=[source]) >= got.credits
    # A larger list cost is never charged less.
    assert charge(policy, source, segment, listed + 1, audio_seconds=audio_ms / 1000).credits >= got.credits
