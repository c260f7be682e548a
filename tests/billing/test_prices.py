"""`billing.prices`: prices as exact integers, one rounding rule per segment, holds that cover the cost."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path

import pytest

from billing.money import MAX_MICRO_USD, AmountError, parse_usd
from billing.prices import (
    DEFAULT_CEILING,
    INTENT_CEILINGS,
    Price,
    PriceError,
    ceiling,
    cost,
    hold_amount,
    max_cost,
    parse_price_spec,
)
from providers.types import Usage
from routing.intents import Intent

MINI = Price(input=150_000, output=600_000, cached_input=75_000)
"""openai/gpt-4o-mini: 0.15 / 0.60 / cached 0.075 USD per 1M tokens."""
SONNET = Price(input=3_000_000, output=15_000_000, cached_input=300_000, cache_write=3_750_000)
FLASH_TTS = Price(per_1m_chars=60_000_000)
SCRIBE = Price(per_minute=6_700)


def test_a_price_is_non_negative_integers_of_micro_usd() -> None:
    for bad in (-1, MAX_MICRO_USD + 1, True, 1.5):
        with pytest.raises(ValueError, match="micro-USD"):
            Price(input=bad)  # type: ignore[arg-type]
    assert Price(input=0).items() == {"input": 0}


def test_from_usd_is_exact_and_refuses_rather_than_rounds() -> None:
    price = Price.from_usd({"input": "0.15", "output": Decimal("0.6"), "cached_input": None, "per_minute": 1})
    assert price == Price(input=150_000, output=600_000, per_minute=1_000_000)
    assert price.usd() == {"input": "0.15", "output": "0.60", "per_minute": "1.00"}
    with pytest.raises(AmountError, match="micro-dollar") as finer:
        Price.from_usd({"input": "0.0000001"}, param="models.0.price")
    assert finer.value.param == "models.0.price.input"
    with pytest.raises(AmountError, match="negative"):
        Price.from_usd({"output": "-1"})
    with pytest.raises(AmountError, match="not floats"):
        Price.from_usd({"output": 0.5})  # type: ignore[dict-item]
    with pytest.raises(PriceError, match="unknown fields inptu") as unknown:
        Price.from_usd({"inptu": "1"}, param="p")
    assert unknown.value.param == "p"
    with pytest.raises(PriceError, match="empty"):
        Price.from_usd({"input": None})


@pytest.mark.parametrize(
    ("spec", "price"),
    [
        ("0.15/0.60", Price(input=150_000, output=600_000)),
        (" 3 / 15 / 0.3 ", Price(input=3_000_000, output=15_000_000, cached_input=300_000)),
        ("0/0", Price(input=0, output=0)),
        ("audio:0.006/min", Price(per_minute=6_000)),
        ("AUDIO:0.0067/MIN", Price(per_minute=6_700)),
        ("chars:15/1M", Price(per_1m_chars=15_000_000)),
    ],
)
def test_price_specs(spec: str, price: Price) -> None:
    assert parse_price_spec(spec) == price


@pytest.mark.parametrize("spec", ["", "0.15", "1/2/3/4", "audio:0.006/sec", "chars:15", "tokens:1/2", "/1"])
def test_a_spec_of_no_known_form_is_a_price_error(spec: str) -> None:
    with pytest.raises(PriceError, match="IN/OUT"):
        parse_price_spec(spec)


@pytest.mark.parametrize(
    ("spec", "says"), [("-1/2", "negative"), ("0.0000001/1", "micro-dollar"), ("abc/1", "decimal")]
)
def test_a_spec_with_a_bad_amount_is_an_amount_error(spec: str, says: str) -> None:
    with pytest.raises(AmountError, match=says):
        parse_price_spec(spec)


def test_token_cost_prices_cached_reads_and_cache_writes_apart() -> None:
    # docs/billing.md's worked examples.
    assert cost(MINI, tokens=Usage(input_tokens=1_200, cached_input_tokens=200, output_tokens=350)) == 375
    sonnet = Usage(
        input_tokens=10_000, cached_input_tokens=8_000, cache_write_tokens=1_000, output_tokens=500
    )
    assert cost(SONNET, tokens=sonnet) == 16_650
    # Without their own prices, cached reads and writes cost the input price.
    plain = Price(input=1_000_000, output=0)
    assert cost(plain, tokens=Usage(input_tokens=10, cached_input_tokens=4, cache_write_tokens=3)) == 10


def test_speech_cost() -> None:
    assert cost(FLASH_TTS, characters=180, audio_seconds=12.4) == 10_800  # priced by characters only
    assert cost(SCRIBE, audio_seconds=4.2) == 469  # 6,700 x 4.2 / 60 = 469 exactly
    assert (
        cost(Price(per_minute=6_000), audio_seconds=0.007) == 1
    )  # 0.7 -> 1: the decimal 0.007, not its float
    assert (
        cost(Price(per_minute=60_000), audio_seconds=0.007) == 7
    )  # exactly 7: no float error rounds it up to 8


def test_rounding_is_up_once_per_segment() -> None:
    assert cost(MINI, tokens=Usage(input_tokens=1)) == 1  # 0.15 micro-USD
    assert cost(MINI, tokens=Usage(input_tokens=6, output_tokens=1)) == 2  # 0.9 + 0.6 = 1.5, once
    assert cost(MINI, tokens=Usage()) == 0
    assert cost(Price(input=0, output=0), tokens=Usage(input_tokens=10**6)) == 0


def test_nonsense_counts_cost_nothing_rather_than_something_negative() -> None:
    weird = Usage(input_tokens=-5, output_tokens=-1, cached_input_tokens=50, cache_write_tokens=-2)
    assert cost(SONNET, tokens=weird, audio_seconds=-3.0, characters=-9) == 0
    assert cost(SCRIBE, audio_seconds=math.nan) == 0 and cost(SCRIBE, audio_seconds=math.inf) == 0
    # More cached tokens than the prompt: the prompt is all there is to price.
    assert cost(SONNET, tokens=Usage(input_tokens=10, cached_input_tokens=50)) == 3


def test_max_cost_takes_the_dearest_input_rate_and_the_output_maximum() -> None:
    assert max_cost(MINI, 1_000, 1_200) == 780  # the docs' hold example
    assert max_cost(SONNET, 0, 1_000_000) == 3_750_000  # all input as cache writes, the dearest
    assert max_cost(FLASH_TTS, None, 0, characters=180) == 10_800
    assert max_cost(SCRIBE, None, 0, audio_seconds=4.2) == 469


def test_max_cost_is_none_when_nothing_bounds_it() -> None:
    assert max_cost(MINI, None, 100) is None
    assert max_cost(Price(per_minute=15_000), None, 0, audio_seconds=None, characters=180) is None
    assert max_cost(Price(input=150_000, output=0), None, 100) == 15  # unpriced output needs no bound


def test_hold_amount_falls_back_to_the_intent_ceiling() -> None:
    assert hold_amount(MINI, "chat", max_output_tokens=1_000, input_tokens_estimate=1_200) == 780
    assert hold_amount(MINI, "chat", max_output_tokens=None, input_tokens_estimate=1_200) == 2_000_000
    assert hold_amount(None, "tts", max_output_tokens=None, input_tokens_estimate=0, characters=9) == 500_000
    assert ceiling("no-such-intent") == DEFAULT_CEILING


def test_every_intent_has_a_ceiling_and_no_ceiling_names_an_unknown_intent() -> None:
    assert set(INTENT_CEILINGS) == {i.value for i in Intent}
    assert all(0 < c <= MAX_MICRO_USD for c in INTENT_CEILINGS.values())


def test_docs_billing_md_states_the_ceilings_of_the_data() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "billing.md").read_text()
    sentence = " ".join(doc.split("the hold is the intent's **ceiling**:", 1)[1].split(".\n", 1)[0].split())
    stated: dict[str, int] = {}
    for amount, intents in re.findall(r"(\d+\.\d+) USD for ((?:`\w+`(?:, | and )?)+)", sentence):
        stated.update(dict.fromkeys(re.findall(r"`(\w+)`", intents), parse_usd(amount)))
    assert stated == dict(INTENT_CEILINGS)
