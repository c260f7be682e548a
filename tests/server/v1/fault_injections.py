"""The faults of the provider fault matrix: one per error class × wire protocol × mode × phase.

Each fault is the vendor's own error, taken from its emulator's fixtures (tests/emulators/):
before the first output it is the HTTP error answer; after it, in a stream, the in-stream error
event the vendor sends once text has gone out (or the stream's own content-filter ending), and
for `network` the connection dropping. A non-streamed answer is one JSON body, so after its
first byte only the connection can fail: every other class has no "after" fault there (None).
Some classes have no error on a wire (Anthropic has no content-filter error; it refuses with
`stop_reason: refusal`): the row then shows what that wire does instead, named in `label`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from providers.contract import ErrorClass
from tests.emulators import anthropic as anthropic_emu
from tests.emulators import chat_scenarios as cs
from tests.emulators import gemini as gemini_emu
from tests.emulators.openai_errors import ERRORS as OPENAI_ERRORS
from tests.emulators.openai_wire import Scenario

Protocol = Literal["openai-chat", "anthropic-messages", "gemini-generate"]
Phase = Literal["before", "after"]
PROTOCOLS: tuple[Protocol, ...] = ("openai-chat", "anthropic-messages", "gemini-generate")


@dataclass(frozen=True)
class Fault:
    label: str
    """What the upstream does, as the rendered table says it."""
    scenario: Any
    """An OpenAI emulator `Scenario` or a `ChatScenario`, played for every request."""


_OPENAI_SOURCE: dict[ErrorClass, tuple[str, str]] = {
    ErrorClass.AUTH: ("openai", "auth"),
    ErrorClass.PERMISSION: ("openai", "permission"),
    ErrorClass.NOT_FOUND: ("openai", "not_found"),
    ErrorClass.RATE_LIMIT: ("openai", "rate_limit"),
    ErrorClass.QUOTA_EXHAUSTED: ("openai", "quota_exhausted"),
    ErrorClass.CONTEXT_LENGTH: ("openai", "context_length"),
    ErrorClass.CONTENT_FILTER: ("openrouter", "content_filter"),
    ErrorClass.INVALID_REQUEST: ("openai", "invalid_request"),
    ErrorClass.TIMEOUT: ("openrouter", "timeout"),
    ErrorClass.OVERLOADED: ("openai", "overloaded"),
    ErrorClass.SERVER_ERROR: ("openai", "server_error"),
}

_ANTHROPIC_SOURCE: dict[ErrorClass, str] = {
    ErrorClass.AUTH: "auth",
    ErrorClass.PERMISSION: "permission",
    ErrorClass.NOT_FOUND: "not_found",
    ErrorClass.RATE_LIMIT: "rate_limit",
    ErrorClass.QUOTA_EXHAUSTED: "billing",
    ErrorClass.CONTEXT_LENGTH: "context_length",
    ErrorClass.INVALID_REQUEST: "invalid_request",
    ErrorClass.TIMEOUT: "timeout",
    ErrorClass.OVERLOADED: "overloaded",
    ErrorClass.SERVER_ERROR: "server_error",
}

_GEMINI_SOURCE: dict[ErrorClass, str] = {
    ErrorClass.AUTH: "auth",
    ErrorClass.PERMISSION: "permission",
    ErrorClass.NOT_FOUND: "not_found",
    ErrorClass.RATE_LIMIT: "rate_limit",
    ErrorClass.QUOTA_EXHAUSTED: "quota_zero",
    ErrorClass.CONTEXT_LENGTH: "context_length",
    ErrorClass.INVALID_REQUEST: "invalid_request",
    ErrorClass.TIMEOUT: "timeout",
    ErrorClass.OVERLOADED: "overloaded",
    ErrorClass.SERVER_ERROR: "server_error",
}

_DROP_BEFORE = "connection dropped before the first byte of body"
_CUT: dict[str, int] = {"openai-chat": 3, "anthropic-messages": 4, "gemini-generate": 2}
"""Stream frames sent before an "after output" fault: enough that text has gone out (OpenAI:
the role chunk and two deltas; Anthropic: message_start, ping, content_block_start, one delta)."""


def _drop_after(stream: bool) -> str:
    what = "text went out" if stream else "half the JSON body"
    return f"connection dropped after {what}"


def fault(protocol: Protocol, error: ErrorClass, *, stream: bool, phase: Phase) -> Fault | None:
    """The fault for one cell, or None when it cannot happen on that wire in that mode."""
    if phase == "after" and not stream and error is not ErrorClass.NETWORK:
        return None
    if protocol == "openai-chat":
        return _openai(error, stream=stream, phase=phase)
    if protocol == "anthropic-messages":
        return _chat(
            error, _ANTHROPIC_SOURCE, anthropic_emu.ERRORS, stream=stream, phase=phase, wire=protocol
        )
    return _chat(error, _GEMINI_SOURCE, gemini_emu.ERRORS, stream=stream, phase=phase, wire=protocol)


def _openai(error: ErrorClass, *, stream: bool, phase: Phase) -> Fault:
    if error is ErrorClass.NETWORK:
        if phase == "before":
            return Fault(_DROP_BEFORE, Scenario(drop_after=0))
        return Fault(_drop_after(stream), Scenario(drop_after=_CUT["openai-chat"] if stream else 1))
    if error is ErrorClass.CONTENT_FILTER and phase == "after":
        return Fault(
            "text, then `finish_reason: content_filter`",
            Scenario(text="Partial answer that gets filtered", finish_reason="content_filter"),
        )
    flavor, kind = _OPENAI_SOURCE[error]
    source = OPENAI_ERRORS[flavor][kind]  # type: ignore[index]
    body = source.error_body["error"]
    code = body.get("code")
    tag = code if isinstance(code, str) else body.get("type") or body.get("message")
    if phase == "before":
        return Fault(f"HTTP {source.status} `{tag}`", source)
    return Fault(
        f"text, then in-stream error `{tag}`", Scenario(error_after=_CUT["openai-chat"], stream_error=body)
    )


def _chat(
    error: ErrorClass,
    sources: dict[ErrorClass, str],
    fixtures: dict[str, Any],
    *,
    stream: bool,
    phase: Phase,
    wire: Protocol,
) -> Fault:
    if error is ErrorClass.NETWORK:
        if phase == "before":
            return Fault(_DROP_BEFORE, cs.drop_after(0))
        return Fault(_drop_after(stream), cs.drop_after(_CUT[wire] if stream else 1))
    if error is ErrorClass.CONTENT_FILTER:
        return _content_filter(wire, phase)
    name = sources[error]
    fixture = fixtures[name]
    tag = getattr(fixture, "error_type", None) or fixture.rpc_status
    if phase == "before":
        return Fault(f"HTTP {fixture.status} `{tag}`", cs.error(name))
    return Fault(f"text, then in-stream error `{tag}`", cs.stream_error(name, after=_CUT[wire]))


def _content_filter(wire: Protocol, phase: Phase) -> Fault:
    if wire == "anthropic-messages":
        if phase == "before":
            return Fault("no such error: `stop_reason: refusal`, no text", cs.refusal())
        return Fault("no such error: text, then `stop_reason: refusal`", cs.refusal("Partial answer"))
    if phase == "before":
        return Fault("HTTP 200, prompt blocked (`blockReason: SAFETY`)", cs.prompt_blocked())
    return Fault("text, then `finishReason: SAFETY`", cs.text("Partial answer", stop_reason="SAFETY"))
