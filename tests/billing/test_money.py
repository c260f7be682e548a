"""`billing.money`: USD parsed exactly into micro-USD, refused rather than rounded, and printed back exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.money import MAX_MICRO_USD, AmountError, format_usd, parse_usd


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("0.000001", 1),
        ("1", 1_000_000),
        ("12.5", 12_500_000),
        (" 0.10 ", 100_000),
        ("1.0000000", 1_000_000),  # trailing zeros are not precision
        ("1e-6", 1),
        ("1000000000", MAX_MICRO_USD),
        ("0", 0),
    ],
)
def test_exact_amounts_parse_to_micro_usd(text: str, micro: int) -> None:
    assert parse_usd(text) == micro


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0.0000001", "more precision than a micro-dollar"),
        ("1.0000000000000000000000000000001", "more precision"),  # beyond Decimal's 28 digits: still refused
        ("-1", "must not be negative"),
        ("abc", "decimal number"),
        ("", "decimal number"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("1000000000.000001", "larger than"),
        ("1e999999", "larger than"),
    ],
)
def test_inexact_negative_or_huge_amounts_are_refused(text: str, says: str) -> None:
    with pytest.raises(AmountError, match=says) as caught:
        parse_usd(text)
    assert caught.value.param == "amount"


def test_negative_amounts_only_when_asked_and_floats_never() -> None:
    assert parse_usd("-2.25", allow_negative=True) == -2_250_000
    assert parse_usd(Decimal("3.000001")) == 3_000_001
    with pytest.raises(AmountError, match="not floats"):
        parse_usd(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0.00"),
        (1, "0.000001"),
        (10, "0.00001"),
        (12_500_000, "12.50"),
        (1_234_567, "1.234567"),
        (-5_000_000, "-5.00"),
    ],
)
def test_format_is_exact_and_round_trips(micro: int, text: str) -> None:
    assert format_usd(micro) == text
    assert parse_usd(text, allow_negative=True) == micro
