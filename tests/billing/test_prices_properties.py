"""Properties of `billing.prices.cost` and `max_cost` over generated prices and usage.

Derandomized (the same examples every run) and without a deadline, so a slow machine cannot
fail them; the oracle is a separate all-integer computation of the documented rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.prices import Price, cost, max_cost
from providers.types import Usage

PROPERTIES = settings(deadline=None, database=None, derandomize=True, max_examples=400)

unit_price = st.one_of(st.none(), st.integers(min_value=0, max_value=100_000_000))
prices = st.builds(
    Price,
    input=unit_price,
    output=unit_price,
    cached_input=unit_price,
    cache_write=unit_price,
    per_minute=unit_price,
    per_1m_chars=unit_price,
)


@dataclass(frozen=True)
class Used:
    """One segment's usage with audio in whole milliseconds, so sums are exact."""

    input: int
    cached: int
    written: int
    output: int
    audio_ms: int
    characters: int

    def cost(self, price: Price) -> int:
        tokens = Usage(
            input_tokens=self.input,
            cached_input_tokens=self.cached,
            cache_write_tokens=self.written,
            output_tokens=self.output,
        )
        return cost(price, tokens=tokens, audio_seconds=self.audio_ms / 1000, characters=self.characters)

    def __add__(self, other: Used) -> Used:
        return Used(
            self.input + other.input,
            self.cached + other.cached,
            self.written + other.written,
            self.output + other.output,
            self.audio_ms + other.audio_ms,
            self.characters + other.characters,
        )


@st.composite
def usages(draw: st.DrawFn) -> Used:
    prompt = draw(st.integers(0, 10_000_000))
    cached = draw(st.integers(0, prompt))
    written = draw(st.integers(0, prompt - cached))
    return Used(
        prompt,
        cached,
        written,
        draw(st.integers(0, 1_000_000)),
        draw(st.integers(0, 10_000_000)),
        draw(st.integers(0, 10_000_000)),
    )


def oracle(price: Price, used: Used) -> int:
    """The documented rule in integers only: everything over a denominator of 60 * 1000 * 1M."""
    plain_rate = price.input or 0
    cached_rate = plain_rate if price.cached_input is None else price.cached_input
    write_rate = plain_rate if price.cache_write is None else price.cache_write
    per_million = (
        (used.input - used.cached - used.written) * plain_rate
        + used.cached * cached_rate
        + used.written * write_rate
        + used.output * (price.output or 0)
        + used.characters * (price.per_1m_chars or 0)
    )
    numerator = per_million * 60 * 1000 + used.audio_ms * (price.per_minute or 0) * 1_000_000
    return -(-numerator // (60 * 1000 * 1_000_000))


@PROPERTIES
@given(prices, usages())
def test_cost_is_the_exact_sum_rounded_up_once(price: Price, used: Used) -> None:
    assert used.cost(price) == oracle(price, used) >= 0


@PROPERTIES
@given(prices, usages())
def test_something_priced_that_was_used_never_costs_zero(price: Price, used: Used) -> None:
    priced_and_used = [
        (price.input or 0) and used.input - used.cached - used.written,
        (price.input if price.cached_input is None else price.cached_input) and used.cached,
        (price.input if price.cache_write is None else price.cache_write) and used.written,
        (price.output or 0) and used.output,
        (price.per_minute or 0) and used.audio_ms,
        (price.per_1m_chars or 0) and used.characters,
    ]
    if any(priced_and_used):
        assert used.cost(price) >= 1


@PROPERTIES
@given(prices, usages(), usages())
def test_cost_is_additive_within_one_micro_usd(price: Price, a: Used, b: Used) -> None:
    together, apart = (a + b).cost(price), a.cost(price) + b.cost(price)
    assert apart - 1 <= together <= apart


@PROPERTIES
@given(prices, usages(), st.data())
def test_max_cost_covers_any_usage_within_the_maxima(price: Price, most: Used, data: st.DataObject) -> None:
    bound = max_cost(
        price, most.output, most.input, audio_seconds=most.audio_ms / 1000, characters=most.characters
    )
    assert bound is not None
    prompt = data.draw(st.integers(0, most.input))
    cached = data.draw(st.integers(0, prompt))
    used = Used(
        prompt,
        cached,
        data.draw(st.integers(0, prompt - cached)),
        data.draw(st.integers(0, most.output)),
        data.draw(st.integers(0, most.audio_ms)),
        data.draw(st.integers(0, most.characters)),
    )
    assert used.cost(price) <= bound
