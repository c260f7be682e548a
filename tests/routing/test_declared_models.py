"""`routing.declared_models`: declared models with optional prices, validated as they are stored."""

from __future__ import annotations

import pytest

from billing.money import AmountError
from billing.prices import Price, PriceError
from foundation.errors import RequestError
from routing.declared_models import MAX_MODELS, declared_models, with_prices


def test_prices_are_stored_as_exact_usd_strings() -> None:
    stored = declared_models(
        [
            "plain",
            {"id": "llama", "capabilities": ["tools", "text"], "price": {"input": "0.59", "output": 1}},
            {"id": "tts", "capabilities": ["tts"], "price": Price(per_1m_chars=15_000_000)},
        ]
    )
    assert stored == [
        {"id": "plain", "capabilities": ["text"]},
        {"id": "llama", "capabilities": ["text", "tools"], "price": {"input": "0.59", "output": "1.00"}},
        {"id": "tts", "capabilities": ["tts"], "price": {"per_1m_chars": "15.00"}},
    ]


@pytest.mark.parametrize(
    ("price", "error", "param"),
    [
        ({"input": "-0.1"}, AmountError, "models.1.price.input"),
        ({"output": "0.0000001"}, AmountError, "models.1.price.output"),
        ({"output": 0.5}, AmountError, "models.1.price.output"),
        ({"inptu": "1"}, PriceError, "models.1.price"),
        ({}, PriceError, "models.1.price"),
        ("0.15/0.60", PriceError, "models.1.price"),
    ],
)
def test_a_bad_price_names_its_field(price: object, error: type[RequestError], param: str) -> None:
    with pytest.raises(error) as refused:
        declared_models(["plain", {"id": "llama", "price": price}])
    assert refused.value.param == param


def test_models_are_declared_once_and_bounded() -> None:
    with pytest.raises(RequestError, match="once"):
        declared_models(["a", {"id": "a", "capabilities": ["text"]}])
    with pytest.raises(RequestError, match=str(MAX_MODELS)):
        declared_models([f"m{i}" for i in range(MAX_MODELS + 1)])


def test_with_prices_prices_declared_models_and_keeps_the_rest() -> None:
    stored = declared_models([{"id": "a", "price": {"input": "1"}}, "b", "c"])
    priced = with_prices(stored, {"b": Price(per_minute=6_000)})
    assert priced == [
        {"id": "a", "capabilities": ["text"], "price": {"input": "1.00"}},
        {"id": "b", "capabilities": ["text"], "price": {"per_minute": "0.006"}},
        {"id": "c", "capabilities": ["text"]},
    ]
    with pytest.raises(RequestError, match="does not declare") as undeclared:
        with_prices(stored, {"zz": Price(input=1)})
    assert undeclared.value.param == "price"
