"""Structured output: the caller gets JSON valid against its schema, or a typed error.

Every adapter funnels the model's final text through `validate_output`, whatever the
provider promised about strict mode: providers differ in how strictly they enforce a
schema (compatible servers often ignore it), so the check is ours. Validators are compiled
once per distinct schema.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from providers.errors import StructuredOutputError
from providers.types import JsonObjectFormat, JsonSchemaFormat, ResponseFormat

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

_MAX_DETAIL = 200


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Validator:
    # jsonschema loads with the first schema, not at start-up (80 ms of every process's).
    import jsonschema

    schema = orjson.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    validator: Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validator


def validator_for(schema: Mapping[str, Any]) -> Validator:
    """A compiled validator; raises `jsonschema.SchemaError` for an invalid schema."""
    return _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode())


def schema_error(schema: Mapping[str, Any], value: Any) -> ValidationError | None:
    """The most relevant way `value` breaks `schema`, or None when it is valid; raises
    `jsonschema.SchemaError` for an invalid schema."""
    import jsonschema

    error: ValidationError | None = jsonschema.exceptions.best_match(validator_for(schema).iter_errors(value))
    return error


def validate_output(text: str, fmt: ResponseFormat, *, provider: str, model: str | None = None) -> Any:
    """Parse `text` as JSON and check it against `fmt`; return the parsed value.

    Raises `StructuredOutputError` when the text is not JSON, is not an object (for
    `json_object`), does not match the schema, or the schema itself is invalid. The message
    names the failing location and rule, never the model's output.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise StructuredOutputError(
            f"model output is not valid JSON (at char {exc.pos})", provider=provider, model=model
        ) from None
    if isinstance(fmt, JsonObjectFormat):
        if not isinstance(value, dict):
            raise StructuredOutputError(
                f"model output is JSON {type(value).__name__}, not an object", provider=provider, model=model
            )
        return value
    if isinstance(fmt, JsonSchemaFormat):
        _check(value, fmt, provider=provider, model=model)
    return value


def _check(value: Any, fmt: JsonSchemaFormat, *, provider: str, model: str | None) -> None:
    import jsonschema

    try:
        error = schema_error(fmt.schema, value)
    except jsonschema.SchemaError as exc:
        raise StructuredOutputError(
            f"response schema {fmt.name!r} is invalid: {exc.message[:_MAX_DETAIL]}",
            provider=provider,
            model=model,
        ) from None
    if error is not None:
        where = "/" + "/".join(str(p) for p in error.absolute_path)
        raise StructuredOutputError(
            f"model output does not match schema {fmt.name!r} at {where}: failed {error.validator!r}",
            provider=provider,
            model=model,
        )
