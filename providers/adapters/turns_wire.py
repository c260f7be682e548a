"""Chat-history pieces shared by the wires that fold our messages into alternating turns.

Anthropic Messages and Gemini generateContent both want strictly alternating user/model turns
built from our flat message list, and both need a history tool call's arguments as a JSON
object. These helpers are pure; each wire names its own roles and item key.
"""

from __future__ import annotations

from typing import Any

from providers.contract import ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.types import JSONObject, ToolCall


def invalid_request(provider: ProviderId, message: str, model: str) -> ProviderError:
    """An INVALID_REQUEST raised before any request is sent."""
    return ProviderError(ErrorClass.INVALID_REQUEST, message, provider=provider.value, model=model)


def history_arguments(call: ToolCall, provider: ProviderId, model: str) -> JSONObject:
    """A history tool call's arguments as an object; INVALID_REQUEST when they are not one.

    The arguments are the model's own text, so the error names only the call id.
    """
    try:
        return call.parsed_arguments()
    except ValueError:
        raise invalid_request(
            provider, f"tool call {call.id} in history has arguments that are not a JSON object", model
        ) from None


def append_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[dict[str, Any]]) -> None:
    """Add `items` as a `role` turn, merged into the last turn when that has the same role.

    Empty `items` add nothing: neither API accepts an empty turn.
    """
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})
