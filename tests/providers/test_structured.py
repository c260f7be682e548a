"""Structured-output validation shared by every adapter."""

from __future__ import annotations

import pytest

from providers.contract import ErrorClass
from providers.errors import StructuredOutputError
from providers.structured import validate_output, validator_for
from providers.types import JsonObjectFormat, JsonSchemaFormat

WEATHER = JsonSchemaFormat(
    name="weather",
    schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
        "required": ["city", "temp_c"],
        "additionalProperties": False,
    },
)


def test_valid_output_is_parsed() -> None:
    assert validate_output('{"city":"Paris","temp_c":21.5}', WEATHER, provider="p") == {
        "city": "Paris",
        "temp_c": 21.5,
    }


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('{"city":"Paris"', "not valid JSON"),
        ('{"city":"Paris"}', "failed 'required'"),
        ('{"city":"Paris","temp_c":"warm"}', "at /temp_c: failed 'type'"),
        ('{"city":"Paris","temp_c":1,"extra":true}', "failed 'additionalProperties'"),
    ],
)
def test_invalid_output_raises_typed_error(text: str, fragment: str) -> None:
    with pytest.raises(StructuredOutputError) as info:
        validate_output(text, WEATHER, provider="openai", model="m")
    err = info.value
    assert fragment in err.message
    assert err.error_class is ErrorClass.INVALID_REQUEST
    assert (err.provider, err.model) == ("openai", "m")
    # The message names the rule, never echoes the model's output.
    assert "warm" not in err.message


def test_json_object_requires_an_object() -> None:
    assert validate_output('{"a": [1]}', JsonObjectFormat(), provider="p") == {"a": [1]}
    with pytest.raises(StructuredOutputError, match="not an object"):
        validate_output("[1, 2]", JsonObjectFormat(), provider="p")


def test_invalid_schema_is_a_typed_error() -> None:
    bad = JsonSchemaFormat(name="bad", schema={"type": "no-such-type"})
    with pytest.raises(StructuredOutputError, match="schema 'bad' is invalid"):
        validate_output("{}", bad, provider="p")


def test_validators_are_cached_per_schema() -> None:
    same = dict(reversed(list(WEATHER.schema.items())))
    assert validator_for(WEATHER.schema) is validator_for(same)
