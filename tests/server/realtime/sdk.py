"""The installed openai SDK's own server-event models, as a check on the JSON we send.

The SDK parses server events without validating them, so a wrong field would pass unnoticed
by a client test; validating against its models (and finding no field it does not know)
catches it.
"""

from __future__ import annotations

from typing import Any

import pydantic
from openai.types import realtime as ga
from openai.types.beta import realtime as beta

from tests.emulators.scripted import unknown_fields

_GA: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ga.RealtimeServerEvent)
_BETA: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(beta.RealtimeServerEvent)


def validated(event: dict[str, Any], *, beta: bool = False, known: frozenset[str] = frozenset()) -> Any:
    """`event` as the SDK's model of its type; fails on a missing, mistyped or unknown field
    (`known`: paths of fields the SDK's model lacks that we send on purpose)."""
    model = (_BETA if beta else _GA).validate_python(event)
    assert model.type == event["type"]
    unknown = set(unknown_fields(model)) - known
    assert not unknown, f"unknown fields: {sorted(unknown)}"
    return model
