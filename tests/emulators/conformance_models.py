"""Model behaviours for the OpenAI emulator's `responder`: a good model, a sloppy one and a
refusing one, for the conformance harness (docs/conformance.md).

Each reads the chat request's JSON and scripts the answer a model of that kind gives. The
sloppy one is wrong on every fifth tools request and every fifth structured request (20 %,
counted, never random): broken tool-call JSON, a wrong tool name or arguments that violate the
schema, in turn; a schema violation for structured output. So a test knows its score in advance.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from tests.emulators.openai_wire import Scenario, json_reply, refusal, text, tool_calls

HARMFUL = ("nerve agent",)


def fill(schema: Mapping[str, Any]) -> Any:
    """A value valid against a simple JSON schema: every property, the first enum value."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: fill(sub) for name, sub in (schema.get("properties") or {}).items()}
    return {"string": "x", "integer": 1, "number": 1.5, "boolean": True, "array": []}.get(str(kind), "x")


def _last_user_text(request: Mapping[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def _tools(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t["function"] for t in request.get("tools") or [] if t.get("type") == "function"]


def _chosen(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = _tools(request)
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return [t for t in tools if t["name"] == choice["function"]["name"]]
    return tools if request.get("parallel_tool_calls") and len(tools) > 1 else tools[:1]


def _schema(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    fmt = request.get("response_format") or {}
    return fmt.get("json_schema", {}).get("schema") if fmt.get("type") == "json_schema" else None


def good(request: Mapping[str, Any]) -> Scenario:
    if any(word in _last_user_text(request).lower() for word in HARMFUL):
        return refusal("I can't help with that.")
    if _tools(request):
        return tool_calls(*((t["name"], fill(t.get("parameters") or {})) for t in _chosen(request)))
    schema = _schema(request)
    if schema is not None:
        return json_reply(fill(schema))
    return text("A small, honest answer.")


class Sloppy:
    """Right four times in five, per kind of request; the fifth goes wrong in a rotating way."""

    def __init__(self) -> None:
        self._tools = itertools.count(1)
        self._json = itertools.count(1)
        self._faults = itertools.cycle(("broken_json", "wrong_name", "schema"))

    def __call__(self, request: Mapping[str, Any]) -> Scenario:
        if _tools(request):
            if next(self._tools) % 5:
                return good(request)
            tool = _chosen(request)[0]
            fault = next(self._faults)
            if fault == "broken_json":
                return tool_calls((tool["name"], '{"city": "Par'))
            if fault == "wrong_name":
                return tool_calls((tool["name"] + "_v2", fill(tool.get("parameters") or {})))
            return tool_calls((tool["name"], {}))
        schema = _schema(request)
        if schema is not None and not next(self._json) % 5:
            return json_reply({"unexpected": True})
        return good(request)


def refusing(request: Mapping[str, Any]) -> Scenario:
    return refusal("I'm sorry, I can't help with that.")
