"""Pure checks of one case's observed answer: a failure reason, or None when the case passed.

An `Observation` is what the harness saw of one call (reassembled tool calls, text, refusal,
usage, the typed error if the call failed). Reasons are a small fixed vocabulary so a report
can count them: `error:<class>`, `refused`, `refusal_as_text`, `over_budget`, `no_tool_call`,
`missing_calls`, `unknown_tool`, `wrong_tool`, `broken_json`, `schema`, `no_answer`. Nothing
here does I/O, and no reason quotes the model's output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from providers.contract import ErrorClass
from providers.structured import schema_error
from providers.types import ChatRequest, FinishReason, JsonSchemaFormat, NamedToolChoice, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class Observation:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    finish: FinishReason | None = None
    usage: Usage = Usage()
    error: ErrorClass | None = None
    invalid_output: bool = False
    """The adapter refused the output as invalid against the requested schema."""
    ttft_ms: float | None = None
    total_ms: float = 0.0

    @property
    def refused(self) -> bool:
        """A refusal the adapter classified as one (refusal field, content filter)."""
        return (
            bool(self.refusal)
            or self.finish is FinishReason.CONTENT_FILTER
            or self.error is ErrorClass.CONTENT_FILTER
        )


Check = Callable[[ChatRequest, Observation], str | None]

_REFUSAL_TEXT = re.compile(
    r"\b(i'?m sorry|i can(?:no|')t (?:help|assist|comply)|i am unable|i won'?t)\b", re.IGNORECASE
)


def looks_like_refusal(text: str) -> bool:
    return bool(_REFUSAL_TEXT.search(text))


def common(request: ChatRequest, obs: Observation, budget: int) -> str | None:
    """What fails every case that is not about refusals: an error, a refusal, going over budget."""
    if obs.invalid_output:
        return "schema"
    if obs.error is not None and obs.error is not ErrorClass.CONTENT_FILTER:
        return f"error:{obs.error.value}"
    if obs.refused:
        return "refused"
    if obs.usage.output_tokens > budget:
        return "over_budget"
    return None


def _arguments_ok(call: ToolCall, schemas: Mapping[str, Mapping[str, Any]]) -> str | None:
    schema = schemas.get(call.name)
    if schema is None:
        return "unknown_tool"
    try:
        args = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return "broken_json"
    if not isinstance(args, dict):
        return "broken_json"
    if schema and schema_error(schema, args) is not None:
        return "schema"
    return None


def tool_calls(min_calls: int = 1, *, distinct: bool = False) -> Check:
    """At least `min_calls` calls (of distinct tools when `distinct`), each naming a tool the
    request offered (the named one under a named `tool_choice`) with arguments valid against
    its schema."""

    def check(request: ChatRequest, obs: Observation) -> str | None:
        if not obs.tool_calls:
            return "refusal_as_text" if looks_like_refusal(obs.text) else "no_tool_call"
        schemas = {t.name: t.parameters for t in request.tools}
        for call in obs.tool_calls:
            problem = _arguments_ok(call, schemas)
            if problem is not None:
                return problem
        choice = request.tool_choice
        if isinstance(choice, NamedToolChoice) and any(c.name != choice.name for c in obs.tool_calls):
            return "wrong_tool"
        found = {c.name for c in obs.tool_calls} if distinct else obs.tool_calls
        return "missing_calls" if len(found) < min_calls else None

    return check


def schema_output(request: ChatRequest, obs: Observation) -> str | None:
    """The text is JSON valid against the request's schema (the adapter checks it too; its
    refusal arrives as `Observation.invalid_output`)."""
    fmt = request.response_format
    try:
        value = orjson.loads(obs.text)
    except orjson.JSONDecodeError:
        return "refusal_as_text" if looks_like_refusal(obs.text) else "broken_json"
    invalid = isinstance(fmt, JsonSchemaFormat) and schema_error(fmt.schema, value) is not None
    return "schema" if invalid else None


def answers(request: ChatRequest, obs: Observation) -> str | None:
    """Some text that is not a refusal dressed as an answer."""
    if not obs.text.strip():
        return "no_answer"
    return "refusal_as_text" if looks_like_refusal(obs.text) else None


def refusal_classified(request: ChatRequest, obs: Observation) -> str | None:
    """A request a model should decline: a refusal must arrive classified (the refusal field or
    a content filter), not passed off as ordinary text. Answering is not this case's business."""
    if obs.refused:
        return None
    if obs.error is not None:
        return f"error:{obs.error.value}"
    return "refusal_as_text" if looks_like_refusal(obs.text) else None
