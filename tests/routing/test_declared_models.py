"""`routing.declared_models`: declared models with optional prices, validated as they are stored."""

from __future__ import annotations

import pytest

from billing.money import AmountError
from billing.prices import Price, PriceError
from foundation.errors import RequestError
from routing.declared_models import MAX_MODELS, declared_models, describe_model, parse_model_spec, with_prices


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


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("llama-3-70b:text,tools,json", {"id": "llama-3-70b", "capabilities": ["text", "tools", "json"]}),
        ("llama-3-70b", {"id": "llama-3-70b"}),
        ("llama3.1:8b", {"id": "llama3.1:8b"}),
        ("ns:llama3:vision", {"id": "ns:llama3", "capabilities": ["vision"]}),
        (" whisper : stt ", {"id": "whisper", "capabilities": ["stt"]}),
    ],
)
def test_a_model_spec_reads_capabilities_after_the_last_colon(spec: str, parsed: dict[str, object]) -> None:
    assert parse_model_spec(spec) == parsed


def test_a_spec_listing_an_unknown_capability_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(RequestError) as refused:
        declared_models(["llama:text,tool"])
    assert "unknown capabilities for model 'llama': tool" in str(refused.value)
    assert "known: audio_in, audio_out, json, stt, text, tools, tts, vision" in str(refused.value)


def test_specs_are_stored_with_their_capabilities_and_read_back() -> None:
    stored = declared_models(["llama-3-70b:tools,text", "plain"])
    assert stored == [
        {"id": "llama-3-70b", "capabilities": ["text", "tools"]},
        {"id": "plain", "capabilities": ["text"]},
    ]
    assert [describe_model(m) for m in stored] == ["llama-3-70b:text,tools", "plain:text"]
