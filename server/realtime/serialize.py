"""Voice session events to OpenAI Realtime server events (GA names, or beta aliases).

One session event may become several wire events (a finished output item closes its audio,
transcript, content part and item; a finished function call item sends its arguments too).
Every wire event gets a fresh `event_id`. The hot path is `AudioDelta`: one dict, one base64
encoding, one `orjson.dumps`. Function call events have the same names in GA and beta.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from foundation import b64
from voice import events as ev
from voice.history import Item

Wire = dict[str, Any]

_GA = {
    "audio.delta": "response.output_audio.delta",
    "audio.done": "response.output_audio.done",
    "transcript.delta": "response.output_audio_transcript.delta",
    "transcript.done": "response.output_audio_transcript.done",
    "text.delta": "response.output_text.delta",
    "text.done": "response.output_text.done",
}
_BETA = {
    "audio.delta": "response.audio.delta",
    "audio.done": "response.audio.done",
    "transcript.delta": "response.audio_transcript.delta",
    "transcript.done": "response.audio_transcript.done",
    "text.delta": "response.text.delta",
    "text.done": "response.text.done",
}


@dataclass(frozen=True, slots=True)
class WireEvent(ev.SessionEvent):
    """A transport-made event (session.created, session.updated) queued in order with the rest."""

    payload: Wire


def _content_part(part: Wire) -> Wire:
    """An item's content part as `response.content_part.*` carries it: typed `audio` / `text`
    in both GA and beta (the GA item itself says `output_audio` / `output_text`)."""
    kind = part["type"]
    return {**part, "type": kind.removeprefix("output_")} if kind.startswith("output_") else part


def item_json(item: Item, *, beta: bool) -> Wire:
    if item.kind == "function_call":
        return {
            "id": item.id,
            "object": "realtime.item",
            "type": "function_call",
            "status": item.status,
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.text,
        }
    if item.kind == "function_call_output":
        return {
            "id": item.id,
            "object": "realtime.item",
            "type": "function_call_output",
            "status": item.status,
            "call_id": item.call_id,
            "output": item.text,
        }
    if item.role == "assistant":
        if item.kind == "audio":
            part: Wire = {"type": "audio" if beta else "output_audio", "transcript": item.text}
        else:
            part = {"type": "text" if beta else "output_text", "text": item.text}
    elif item.kind == "audio":
        part = {"type": "input_audio", "transcript": item.text if item.status == "completed" else None}
    else:
        part = {"type": "input_text", "text": item.text}
    return {
        "id": item.id,
        "object": "realtime.item",
        "type": "message",
        "status": item.status,
        "role": item.role,
        "content": [part],
    }


class Serializer:
    def __init__(self, *, beta: bool) -> None:
        self.beta = beta
        self._names = _BETA if beta else _GA
        self._ids = itertools.count(1)
        self._output_index: dict[str, int] = {}
        """Open output items' places in their response, for the deltas that do not carry it."""

    def frames(self, event: ev.SessionEvent) -> list[bytes]:
        """The wire frames (JSON text) for one session event."""
        wires = [dict(event.payload)] if isinstance(event, WireEvent) else _HANDLERS[type(event)](self, event)
        out = []
        for wire in wires:
            wire["event_id"] = f"event_{next(self._ids)}"
            out.append(orjson.dumps(wire))
        return out

    def _audio_delta(self, e: ev.AudioDelta) -> list[Wire]:
        return [
            {
                "type": self._names["audio.delta"],
                "response_id": e.response_id,
                "item_id": e.item_id,
                "output_index": self._output_index.get(e.item_id, 0),
                "content_index": 0,
                "delta": b64.encode(e.audio),
            }
        ]

    def _transcript_delta(self, e: ev.TranscriptDelta) -> list[Wire]:
        return [self._part_event("transcript.delta", e.response_id, e.item_id, delta=e.text)]

    def _text_delta(self, e: ev.TextDelta) -> list[Wire]:
        return [self._part_event("text.delta", e.response_id, e.item_id, delta=e.text)]

    def _part_event(self, name: str, response_id: str, item_id: str, **extra: Any) -> Wire:
        return {
            "type": self._names[name],
            "response_id": response_id,
            "item_id": item_id,
            "output_index": self._output_index.get(item_id, 0),
            "content_index": 0,
            **extra,
        }

    def _item_created(self, e: ev.ItemCreated) -> list[Wire]:
        item = item_json(e.item, beta=self.beta)
        wires: list[Wire] = [
            {"type": "conversation.item.created", "previous_item_id": e.previous_item_id, "item": item}
        ]
        if not self.beta:
            wires.append(
                {"type": "conversation.item.added", "previous_item_id": e.previous_item_id, "item": item}
            )
            if e.item.status == "completed":
                wires.append(
                    {"type": "conversation.item.done", "previous_item_id": e.previous_item_id, "item": item}
                )
        return wires

    def _output_item_added(self, e: ev.OutputItemAdded) -> list[Wire]:
        self._output_index[e.item.id] = e.output_index
        item = item_json(e.item, beta=self.beta)
        wires: list[Wire] = [
            {
                "type": "response.output_item.added",
                "response_id": e.response_id,
                "output_index": e.output_index,
                "item": item,
            }
        ]
        if e.item.kind != "function_call":
            wires.append(
                {
                    "type": "response.content_part.added",
                    "response_id": e.response_id,
                    "item_id": e.item.id,
                    "output_index": e.output_index,
                    "content_index": 0,
                    "part": _content_part(item["content"][0]),
                }
            )
        return wires

    def _output_item_done(self, e: ev.OutputItemDone) -> list[Wire]:
        item = item_json(e.item, beta=self.beta)
        rid, iid, index = e.response_id, e.item.id, e.output_index
        if e.item.kind == "function_call":
            arguments: Wire = {
                "type": "response.function_call_arguments.done",
                "response_id": rid,
                "item_id": iid,
                "output_index": index,
                "call_id": e.item.call_id,
                "arguments": e.item.text,
            }
            if not self.beta:  # the beta event has no `name`; the item carries it
                arguments["name"] = e.item.name
            wires = [arguments]
        else:
            if e.audio:
                wires = [
                    self._part_event("audio.done", rid, iid),
                    self._part_event("transcript.done", rid, iid, transcript=e.text),
                ]
            else:
                wires = [self._part_event("text.done", rid, iid, text=e.text)]
            wires.append(
                {
                    "type": "response.content_part.done",
                    "response_id": rid,
                    "item_id": iid,
                    "output_index": index,
                    "content_index": 0,
                    "part": _content_part(item["content"][0]),
                }
            )
        wires.append(
            {"type": "response.output_item.done", "response_id": rid, "output_index": index, "item": item}
        )
        if not self.beta:
            wires.append({"type": "conversation.item.done", "previous_item_id": None, "item": item})
        self._output_index.pop(iid, None)
        return wires

    def _response(self, response_id: str, status: str, details: Wire | None, output: list[Wire]) -> Wire:
        return {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output,
            "usage": None,
        }

    def _response_done(self, e: ev.ResponseDone) -> list[Wire]:
        for item in e.output:  # items a cancellation left open
            self._output_index.pop(item.id, None)
        details: Wire | None = None
        if e.status == "cancelled":
            details = {"type": "cancelled", "reason": e.reason}
        elif e.status == "failed":
            details = {
                "type": "failed",
                "error": {"type": e.error_type or "server_error", "code": e.error_code},
            }
        response = self._response(
            e.response_id, e.status, details, [item_json(i, beta=self.beta) for i in e.output]
        )
        response["usage"] = {
            "total_tokens": e.input_tokens + e.output_tokens,
            "input_tokens": e.input_tokens,
            "output_tokens": e.output_tokens,
            "input_token_details": {"text_tokens": e.input_tokens, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": e.output_tokens, "audio_tokens": 0},
        }
        response["metadata"] = dict(e.metadata)
        return [{"type": "response.done", "response": response}]


_HANDLERS: dict[type[ev.SessionEvent], Callable[[Serializer, Any], list[Wire]]] = {
    ev.AudioDelta: Serializer._audio_delta,
    ev.TranscriptDelta: Serializer._transcript_delta,
    ev.TextDelta: Serializer._text_delta,
    ev.FunctionCallArgumentsDelta: lambda _, e: [
        {
            "type": "response.function_call_arguments.delta",
            "response_id": e.response_id,
            "item_id": e.item_id,
            "output_index": e.output_index,
            "call_id": e.call_id,
            "delta": e.delta,
        }
    ],
    ev.SpeechStarted: lambda _, e: [
        {
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": e.audio_start_ms,
            "item_id": e.item_id,
        }
    ],
    ev.SpeechStopped: lambda _, e: [
        {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": e.audio_end_ms,
            "item_id": e.item_id,
        }
    ],
    ev.InputCommitted: lambda _, e: [
        {
            "type": "input_audio_buffer.committed",
            "item_id": e.item_id,
            "previous_item_id": e.previous_item_id,
        }
    ],
    ev.InputCleared: lambda _, e: [{"type": "input_audio_buffer.cleared"}],
    ev.ItemCreated: Serializer._item_created,
    ev.ItemTruncated: lambda _, e: [
        {
            "type": "conversation.item.truncated",
            "item_id": e.item_id,
            "content_index": e.content_index,
            "audio_end_ms": e.audio_end_ms,
        }
    ],
    ev.ItemDeleted: lambda _, e: [{"type": "conversation.item.deleted", "item_id": e.item_id}],
    ev.InputTranscriptCompleted: lambda _, e: [
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": e.item_id,
            "content_index": 0,
            "transcript": e.transcript,
            "usage": {"type": "duration", "seconds": round(e.audio_seconds, 3)},
        }
    ],
    ev.InputTranscriptFailed: lambda _, e: [
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": e.item_id,
            "content_index": 0,
            "error": {"type": "server_error", "code": e.code, "message": e.message, "param": None},
        }
    ],
    ev.ResponseCreated: lambda s, e: [
        {
            "type": "response.created",
            "response": s._response(e.response_id, "in_progress", None, []),
        }
    ],
    ev.OutputItemAdded: Serializer._output_item_added,
    ev.OutputItemDone: Serializer._output_item_done,
    ev.ResponseDone: Serializer._response_done,
    ev.ErrorEvent: lambda _, e: [
        {
            "type": "error",
            "error": {
                "type": e.type,
                "code": e.code,
                "message": e.message,
                "param": e.param,
                "event_id": e.event_id,
            },
        }
    ],
}
"""Each session event's wire events, by its type: functions of the serializer, so that no
serializer holds its own bound methods (a cycle that left every ended session's serializer for
the collector)."""
