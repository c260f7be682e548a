"""What OpenAI-compatible vendors do differently, in one table.

The `openai-chat` translation reads a `OpenAIQuirks` value and never asks which provider it
is talking to; adding a vendor with a new deviation adds a row here.

Response-side deviations need no row because the translator reads every known placement
defensively: Kimi's usage inside `choices[0].usage`, Mistral's usage in the final chunk
without `stream_options`, OpenRouter's keep-alive comments, `usage.cost` and in-stream errors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

import httpx

from providers.contract import ProviderId

ToolIdMapper = Callable[[str], str]


def any_tool_id(call_id: str) -> str:
    return call_id


_ALNUM9 = re.compile(r"[A-Za-z0-9]{9}")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def alnum9_tool_id(call_id: str) -> str:
    """Mistral accepts only 9-character `[A-Za-z0-9]` tool-call ids.

    Ids that already fit pass through; others map to a stable hash, so the assistant turn
    and its tool results (replayed separately) always agree.
    """
    if _ALNUM9.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


@dataclass(frozen=True, slots=True)
class OpenAIQuirks:
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """Compatible servers know only `max_tokens`; OpenAI's reasoning models reject it."""
    system_role: Literal["system", "developer"] = "system"
    tool_call_id: ToolIdMapper = any_tool_id
    developer_hosts: frozenset[str] = frozenset()
    """`developer` is only sent to these hosts; a proxy behind the same preset gets `system`."""


_DEFAULT = OpenAIQuirks()

QUIRKS: Mapping[ProviderId, OpenAIQuirks] = MappingProxyType(
    {
        ProviderId.OPENAI: OpenAIQuirks(
            max_tokens_field="max_completion_tokens",
            system_role="developer",
            developer_hosts=frozenset({"api.openai.com"}),
        ),
        ProviderId.MISTRAL: OpenAIQuirks(tool_call_id=alnum9_tool_id),
    }
)


def quirks_for(provider: ProviderId, base_url: str) -> OpenAIQuirks:
    quirks = QUIRKS.get(provider, _DEFAULT)
    if quirks.system_role == "developer" and httpx.URL(base_url).host not in quirks.developer_hosts:
        quirks = replace(quirks, system_role="system")
    return quirks
