"""The redacted `Secret` type and key fingerprints.

A `Secret` carries a plaintext key from the edge (an admin request body, stdin) to the vault's
encrypt function. Every way an object is usually turned into text — repr, str, f-strings,
logging, JSON via pydantic, pickling — shows a fixed mask or refuses. Only `expose()` returns
the value, and only the vault's encrypt path calls it.
"""

from __future__ import annotations

from typing import Any, NoReturn

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

REDACTED = "**********"


class Secret:
    """A plaintext secret that will not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret takes a str")
        if not value.strip():
            raise ValueError("a secret cannot be empty")
        self._value = value

    def expose(self) -> str:
        """The plaintext. Called only where it is encrypted; never log or return the result."""
        return self._value

    @property
    def fingerprint(self) -> str:
        return fingerprint(self._value)

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return format(REDACTED, spec)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Accept a string (or a Secret) on input; always serialise as the mask, in Python and JSON mode.
        from_str = core_schema.no_info_after_validator_function(cls, core_schema.str_schema(min_length=1))
        return core_schema.json_or_python_schema(
            json_schema=from_str,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_str]),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _v: REDACTED),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "password", "writeOnly": True}


def fingerprint(plaintext: str) -> str:
    """A short prefix and the last four characters, e.g. `sk-ant-…x7Qa`.

    The prefix names the key family (`sk-or-v1`, `sk-ant-`, `AIza`) and never exceeds a fifth
    of the key, so a fingerprint reveals at most 4 characters plus a family marker. Keys too
    short for that show only their length class.
    """
    value = plaintext.strip()
    n = len(value)
    if n < 12:
        return "…" + "*" * 4
    prefix_len = min(8, n // 5)
    return f"{value[:prefix_len]}…{value[-4:]}"
