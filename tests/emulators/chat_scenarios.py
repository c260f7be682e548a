"""Provider-neutral scripts, recording and playback for the Anthropic and Gemini emulators.

A test queues `ChatScenario`s with `enqueue` (one-shot, FIFO) or `always` (sticky); each chat
request takes the next one (otherwise plain text). A scenario says *what* the model does (text,
tool calls, a JSON answer, a refusal, a blocked prompt, an HTTP error, an error after HTTP 200,
malformed stream data) and *how the bytes travel* (slow first byte, a stall, a dropped or cleanly
truncated stream after n SSE events). Each emulator renders the same scenario in its own wire
format, so one test table drives both. The scripting and observing surface (`enqueue`, `always`,
`reset`, `requests` with timestamps, `disconnects`, `wait_disconnect`) matches
tests/emulators/openai.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import BaseRoute

from tests.emulators.playback import FaultyStream, silence_dropped_connection_logs


@dataclass(frozen=True)
class ScriptedCall:
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class ChatScenario:
    """What one chat request gets.

    `text` is the answer (None = no text block). `tool_calls` are emitted after the text, in
    order (parallel calls). `json_value` answers a structured-output request. `refusal` makes the
    model refuse (Anthropic `stop_reason: refusal`, Gemini `finishReason: SAFETY`).
    `prompt_blocked` is Gemini's blocked-prompt answer (HTTP 200, no candidates); Anthropic treats
    it as a refusal. `error` is an emulator-specific fixture name answered as an HTTP error;
    `stream_error` the same fixture sent as an in-stream error event after `error_after` events.
    `malformed_after` replaces the n-th SSE event with bytes that are not JSON.
    `stop_reason` overrides the wire stop/finish reason; `usage` overrides usage counters.
    `pieces` is how many deltas the text is cut into when streamed.
    `thinking` makes the model a thinking one: Gemini signs its parts (`thoughtSignature`) and,
    when the request sets `includeThoughts`, sends this text as a thought summary; Anthropic,
    when the request enables `thinking`, opens with a signed thinking block of this text (and a
    `redacted_thinking` block after it with `redacted_thinking`).
    """

    text: str | None = "Hello! How can I help you today?"
    tool_calls: tuple[ScriptedCall, ...] = ()
    json_value: Any = None
    refusal: bool = False
    prompt_blocked: str | None = None
    error: str | None = None
    stream_error: str | None = None
    error_after: int = 3
    malformed_after: int | None = None
    stop_reason: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)
    pieces: int = 4
    thinking: str | None = None
    redacted_thinking: bool = False
    fragment_bytes: int | None = None
    """Re-cut the whole SSE byte stream into slices of this size (mid-line, mid-UTF-8);
    fault positions then count slices."""
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    stall_after: int | None = None
    """Send n frames, then hold the connection open until the client leaves."""
    drop_after: int | None = None
    """Send n frames, then abort the connection (an incomplete chunked body)."""
    truncate_after: int | None = None
    """Send n frames, then end the response cleanly: a stream without its terminator."""


def text(answer: str = "Hello! How can I help you today?", **kwargs: Any) -> ChatScenario:
    return ChatScenario(text=answer, **kwargs)


def tool_calls(*calls: tuple[str, Mapping[str, Any]], text: str | None = None, **kwargs: Any) -> ChatScenario:
    return ChatScenario(text=text, tool_calls=tuple(ScriptedCall(n, a) for n, a in calls), **kwargs)


def thinking(
    scenario: ChatScenario, thought: str = "The user wants the weather; call the tool."
) -> ChatScenario:
    return replace(scenario, thinking=thought)


def json_reply(value: Any, **kwargs: Any) -> ChatScenario:
    return ChatScenario(text=None, json_value=value, **kwargs)


def refusal(answer: str | None = None, **kwargs: Any) -> ChatScenario:
    return ChatScenario(text=answer, refusal=True, **kwargs)


def prompt_blocked(reason: str = "SAFETY", **kwargs: Any) -> ChatScenario:
    return ChatScenario(text=None, prompt_blocked=reason, **kwargs)


def error(name: str, **kwargs: Any) -> ChatScenario:
    return ChatScenario(error=name, **kwargs)


def stream_error(name: str, *, after: int = 3, **kwargs: Any) -> ChatScenario:
    return ChatScenario(stream_error=name, error_after=after, **kwargs)


def malformed(*, after: int = 2, **kwargs: Any) -> ChatScenario:
    return ChatScenario(malformed_after=after, **kwargs)


def slow_first_byte(seconds: float, scenario: ChatScenario | None = None) -> ChatScenario:
    return replace(scenario or ChatScenario(), first_byte_delay=seconds)


def stall_after(events: int, scenario: ChatScenario | None = None) -> ChatScenario:
    return replace(scenario or ChatScenario(), stall_after=events)


def drop_after(events: int, scenario: ChatScenario | None = None) -> ChatScenario:
    return replace(scenario or ChatScenario(), drop_after=events)


def truncate_after(events: int, scenario: ChatScenario | None = None) -> ChatScenario:
    return replace(scenario or ChatScenario(), truncate_after=events)


def split_text(answer: str, pieces: int) -> list[str]:
    """Cut text into `pieces` non-empty parts at uneven points (mid-word, as tokenizers do)."""
    pieces = max(1, min(pieces, len(answer)))
    size, rest = divmod(len(answer), pieces)
    out, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < rest else 0)
        out.append(answer[start:end])
        start = end
    return [p for p in out if p]


def split_json(raw: str, size: int = 7) -> list[str]:
    """Fixed-size slices of JSON text: cuts land inside keys, strings and numbers."""
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def cut_bytes(stream: list[bytes], size: int) -> list[bytes]:
    whole = b"".join(stream)
    return [whole[i : i + size] for i in range(0, len(whole), size)]


def emulator_signature(*parts: Any) -> str:
    """A deterministic signature over `parts`: an emulator re-derives it to check a replay."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).digest()
    return base64.b64encode(b"emu-sig:" + digest[:24]).decode()


def approx_tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four characters per token."""
    return max(1, len(str(value)) // 4)


class DisconnectListener(Protocol):
    def mark_disconnect(self) -> None: ...


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    json: Any
    at: float
    """`time.monotonic()` when the request arrived."""


class ChatScript:
    """The scenario queue plus everything the emulator saw. Thread-safe: the server has its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[ChatScenario] = deque()
        self._sticky: ChatScenario | None = None
        self.requests: list[Recorded] = []
        self.disconnects: list[float] = []
        self._disconnected = threading.Event()

    def enqueue(self, *scenarios: ChatScenario) -> None:
        with self._lock:
            self._queue.extend(scenarios)

    def always(self, scenario: ChatScenario | None) -> None:
        """The answer whenever nothing is queued; None restores plain text."""
        with self._lock:
            self._sticky = scenario

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._sticky = None
            self.requests.clear()
            self.disconnects.clear()
            self._disconnected.clear()

    def next(self) -> ChatScenario:
        with self._lock:
            return self._queue.popleft() if self._queue else (self._sticky or ChatScenario())

    def record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def mark_disconnect(self) -> None:
        with self._lock:
            self.disconnects.append(time.monotonic())
        self._disconnected.set()

    def wait_disconnect(self, timeout: float) -> float | None:
        """Block until a client disconnect is seen; its timestamp. Call via `asyncio.to_thread`."""
        if self._disconnected.wait(timeout):
            return self.disconnects[-1]
        return None


class ChatEmulator(ChatScript, ABC):
    """A chat emulator's shell: `app` serves `_routes()`; `api_key`, when set, is the only key accepted."""

    def __init__(self, *, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.app = Starlette(routes=list(self._routes()))
        silence_dropped_connection_logs()

    @abstractmethod
    def _routes(self) -> Sequence[BaseRoute]:
        """The emulator's endpoints; called once, from `__init__`."""

    async def _record(self, request: Request) -> Any:
        """Record the request; its JSON body, or None when it has none or it is not JSON."""
        body = await request.body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.record(
            Recorded(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers=dict(request.headers),
                json=parsed,
                at=time.monotonic(),
            )
        )
        return parsed


class Playback(FaultyStream):
    """Plays `frames` under a chat scenario's timing and faults, reporting disconnects to `script`."""

    def __init__(
        self,
        frames: Sequence[bytes],
        scenario: ChatScenario,
        script: DisconnectListener,
        *,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(
            frames,
            media_type=media_type,
            headers=headers,
            on_disconnect=script.mark_disconnect,
            first_byte_delay=scenario.first_byte_delay,
            chunk_delay=scenario.chunk_delay,
            stall_after=scenario.stall_after,
            drop_after=scenario.drop_after,
            truncate_after=scenario.truncate_after,
        )
