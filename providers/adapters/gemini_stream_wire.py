"""Gemini `streamGenerateContent?alt=sse` chunks → normalized stream events. Pure; no I/O.

Each SSE `data:` is a whole `GenerateContentResponse`. Feed each parsed chunk with `feed`;
call `end()` when the connection closes (Gemini sends no terminator). Contracts:
- Text parts become `TextDelta`s; thought parts become `ReasoningDelta`s. A part's
  `thoughtSignature` (often on an empty text part) is a `ReasoningArtifactDone`, emitted before
  the call it is bound to.
- A `functionCall` arrives whole, so it yields `ToolCallStart`, one `ToolCallDelta` with the
  full arguments and `ToolCallDone` at once; ids are synthesized exactly as in a
  non-streaming response, so both modes agree.
- `usageMetadata` is cumulative: the last one seen is emitted as one `UsageUpdate` at `end()`.
- `end()` emits `Finish` if a `finishReason` (or a prompt block) was seen, else raises `NETWORK`:
  the connection closed before the answer was complete.
- A chunk of the form `{"error": {...}}` raises the `ProviderError` it classifies as.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from providers.contract import ErrorClass, ProviderId
from providers.errors import ProviderError
from providers.types import (
    Finish,
    FinishReason,
    ReasoningArtifactDone,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    UsageUpdate,
)

from .gemini_errors_wire import error_from_payload
from .gemini_response_wire import (
    block_reason,
    candidate_parts,
    finish_reason,
    function_call,
    thought_signature,
    thought_text,
    usage_from_wire,
)
from .gemini_wire import ORIGIN


class GeminiStreamTranslator:
    def __init__(
        self, *, secrets: Iterable[str] = (), model: str | None = None, origin: str = ORIGIN
    ) -> None:
        self._secrets = tuple(secrets)
        self._origin = origin
        self._model = model
        self._calls = 0
        self._usage: Mapping[str, Any] = {}
        self._finish_raw: str | None = None
        self._blocked = False
        self.response_id = ""
        self.model_version: str | None = None

    @property
    def finished(self) -> bool:
        return self._blocked or self._finish_raw is not None

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        error = chunk.get("error")
        if isinstance(error, Mapping):
            raise error_from_payload(error, status=None, secrets=self._secrets, model=self._model)
        self.response_id = str(chunk.get("responseId") or self.response_id)
        self.model_version = chunk.get("modelVersion") or self.model_version
        usage = chunk.get("usageMetadata")
        if isinstance(usage, Mapping):
            self._usage = usage
        candidates = chunk.get("candidates")
        if not candidates:
            if block_reason(chunk) is not None:
                self._blocked = True
            return []
        candidate = candidates[0]
        events: list[StreamEvent] = []
        for part in candidate_parts(candidate):
            call = None
            if "functionCall" in part:
                call = function_call(part, response_id=self.response_id, position=self._calls)
            signature = thought_signature(part, call, self._origin)
            if signature is not None:
                events.append(ReasoningArtifactDone(signature))
            if call is not None:
                index = self._calls
                self._calls += 1
                events += [
                    ToolCallStart(index=index, id=call.id, name=call.name),
                    ToolCallDelta(index=index, arguments=call.arguments),
                    ToolCallDone(index=index, call=call),
                ]
            elif part.get("thought"):
                if thought_text(part):
                    events.append(ReasoningDelta(thought_text(part)))
            elif isinstance(part.get("text"), str) and part["text"]:
                events.append(TextDelta(part["text"]))
        if candidate.get("finishReason"):
            self._finish_raw = str(candidate["finishReason"])
        return events

    def end(self) -> list[StreamEvent]:
        if not self.finished:
            raise ProviderError(
                ErrorClass.NETWORK,
                "stream closed before a finish reason",
                provider=ProviderId.GEMINI.value,
                model=self._model,
            )
        reason = (
            FinishReason.CONTENT_FILTER
            if self._blocked
            else finish_reason(self._finish_raw, has_calls=self._calls > 0)
        )
        return [UsageUpdate(usage_from_wire(self._usage)), Finish(reason)]
