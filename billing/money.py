"""Money as integers: every amount in billing is a whole number of micro-USD (1 USD = 1,000,000).

Floats never carry money. USD typed by a person or sent over the wire is parsed with
`decimal.Decimal` and refused when it has more precision than a micro-dollar (`0.0000001`)
rather than rounded; amounts leave as exact decimal strings (`format_usd`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from foundation.errors import RequestError

MICRO_PER_USD = 1_000_000
"""micro-USD in one US dollar: the ledger's minor unit."""

MAX_MICRO_USD = 10**15
"""The largest amount or balance the ledger accepts (one billion USD): far from 64-bit overflow
even when summed over many entries."""


_MAX_USD = Decimal(MAX_MICRO_USD).scaleb(-6)


class AmountError(RequestError):
    """An amount that is not a whole number of micro-USD, or out of range. Says how to fix it."""

    code = "invalid_amount"


def parse_usd(value: str | Decimal | int, *, param: str = "amount", allow_negative: bool = False) -> int:
    """`"12.5"` -> 12_500_000 micro-USD, exactly. Refuses floats, non-numbers, more than six
    decimal places, negatives (unless `allow_negative`) and amounts beyond `MAX_MICRO_USD`."""
    if isinstance(value, float | bool):
        raise AmountError("amounts are exact decimals, not floats", param=param)
    try:
        usd = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise AmountError(f"{param} must be a decimal number of USD, such as 12.50", param=param) from None
    if not usd.is_finite():
        raise AmountError(f"{param} must be a finite decimal number of USD", param=param)
    if _decimal_places(usd) > 6:
        raise AmountError(
            f"{param} has more precision than a micro-dollar (at most 6 decimal places, 0.000001 USD)",
            param=param,
        )
    if usd < 0 and not allow_negative:
        raise AmountError(f"{param} must not be negative", param=param)
    if abs(usd) > _MAX_USD:
        raise AmountError(
            f"{param} is larger than the ledger allows ({format_usd(MAX_MICRO_USD)} USD)", param=param
        )
    # At most 6 places and at most 10**15 micro-USD: 22 significant digits, exact in the default context.
    return int(usd.scaleb(6))


def _decimal_places(usd: Decimal) -> int:
    """Places after the point that carry a non-zero digit (`1.0000000` has none), counted exactly."""
    _sign, digits, exponent = usd.as_tuple()
    assert isinstance(exponent, int)
    while digits and digits[-1] == 0 and exponent < 0:
        digits, exponent = digits[:-1], exponent + 1
    return max(0, -exponent)


def format_usd(micro: int) -> str:
    """12_500_000 -> `"12.50"`; 1 -> `"0.000001"`: exact, at least two and at most six decimals."""
    sign = "-" if micro < 0 else ""
    whole, fraction = divmod(abs(micro), MICRO_PER_USD)
    digits = f"{fraction:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{digits}"
