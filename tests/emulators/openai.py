"""An OpenAI Chat Completions emulator, with OpenRouter extras and compatible-server flavours.

A plain ASGI app (serve it with `ServedApp`). Tests script it with `Scenario` values, per
model or globally, one-shot (`enqueue`) or sticky (`always`); it records every request
and every client disconnect with `time.monotonic()` timestamps, so a test can assert
"zero requests" or await "the client hung up".

Flavours change what real servers change: ids, usage placement (Kimi inside
`choices[0].usage`, Mistral in the final chunk unasked), OpenRouter's keep-alive comments,
`usage.cost`, `provider` and `native_finish_reason`. Error bodies per vendor live in
`tests/emulators/openai_errors.py`. With `fast=True` a healthy stream is written in one
send, for benchmarks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tests.emulators.openai_errors import auth_error
from tests.emulators.openai_wire import (
    CHAT_PATHS,
    DONE,
    KEEPALIVE,
    MODEL_PATHS,
    Flavor,
    Scenario,
    ToolCallSpec,
    Wire,
    fail,
    json_reply,
    missing_reasoning,
    refusal,
    sse_frame,
    text,
    tool_calls,
)

__all__ = [
    "Flavor",
    "OpenAIEmulator",
    "Recorded",
    "Scenario",
    "ToolCallSpec",
    "Wire",
    "fail",
    "json_reply",
    "refusal",
    "text",
    "tool_calls",
]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    at: float


class OpenAIEmulator:
    """The scriptable app. Scripting and observing are thread-safe: the server runs on its own thread."""

    def __init__(
        self,
        flavor: Flavor = "openai",
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4.1"),
        fast: bool = False,
        default: Scenario | None = None,
        responder: Callable[[Mapping[str, Any]], Scenario | None] | None = None,
    ) -> None:
        """`responder`: a model's behaviour, asked first with each chat request's JSON body (None:
        fall through to the queued and sticky scenarios); tests/emulators/conformance_models.py."""
        self.flavor: Flavor = flavor
        self.api_key = api_key
        self.models = models
        self.fast = fast
        self.wire = Wire(flavor)
        self._default = default or Scenario()
        self.responder = responder
        self._lock = threading.Lock()
        self._queue: deque[Scenario] = deque()
        self._by_model: dict[str, deque[Scenario]] = {}
        self._sticky: dict[str | None, Scenario] = {}
        self.requests: list[Recorded] = []
        self.disconnects: list[float] = []
        self._disconnected = threading.Event()

    def enqueue(self, *scenarios: Scenario, model: str | None = None) -> None:
        """One-shot answers, FIFO; per model when `model` is given."""
        with self._lock:
            target = self._queue if model is None else self._by_model.setdefault(model, deque())
            target.extend(scenarios)

    def always(self, scenario: Scenario, *, model: str | None = None) -> None:
        """The answer whenever no one-shot is queued ("this model answers 429 with retry-after 2")."""
        with self._lock:
            self._sticky[model] = scenario

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._by_model.clear()
            self._sticky.clear()
            self.requests.clear()
            self.disconnects.clear()
            self._disconnected.clear()

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path in CHAT_PATHS]

    def wait_disconnect(self, timeout: float) -> float | None:
        """Block until a client disconnect is seen; returns its timestamp. Call via `asyncio.to_thread`."""
        if self._disconnected.wait(timeout):
            return self.disconnects[-1]
        return None

    def _next(self, model: str) -> Scenario:
        with self._lock:
            for queue in (self._by_model.get(model), self._queue):
                if queue:
                    return queue.popleft()
            return self._sticky.get(model) or self._sticky.get(None) or self._default

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = bytearray()
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = orjson.loads(raw) if raw else None
        path = scope["path"]
        self.requests.append(Recorded(scope["method"], path, headers, body, time.monotonic()))
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnects.append(time.monotonic())
            self._disconnected.set()
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._route(scope["method"], path, headers, body, send, gone)
        finally:
            watcher.cancel()

    async def _route(
        self, method: str, path: str, headers: Mapping[str, str], body: Any, send: Any, gone: asyncio.Event
    ) -> None:
        key = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if self.api_key is not None and key != self.api_key:
            await self._respond(auth_error(self.flavor), key, send, gone)
        elif method == "POST" and path in CHAT_PATHS:
            await self._chat(body or {}, key, send, gone)
        elif method == "GET" and path in MODEL_PATHS:
            models = [
                {"id": m, "object": "model", "created": 1764000000, "owned_by": "emulator"}
                for m in self.models
            ]
            await _send_json(send, 200, {"object": "list", "data": models}, self._headers())
        elif method == "GET" and path == "/api/v1/key":
            key_info = {"label": "sk-or-v1-emu...", "limit": None, "usage": 0.25, "is_free_tier": False}
            await _send_json(send, 200, {"data": key_info}, self._headers())
        else:
            await _send_json(
                send, 404, {"error": {"message": f"Unknown path {path}", "type": "invalid_request_error"}}, {}
            )

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"x-request-id": self.wire.request_id()}
        if self.flavor in ("openai", "xai"):
            headers |= {
                "x-ratelimit-limit-requests": "10000",
                "x-ratelimit-remaining-requests": "9999",
                "x-ratelimit-reset-requests": "6ms",
                "x-ratelimit-limit-tokens": "2000000",
                "x-ratelimit-remaining-tokens": "1999000",
                "x-ratelimit-reset-tokens": "30ms",
            }
        return headers | dict(extra or {})

    async def _respond(self, s: Scenario, key: str, send: Any, gone: asyncio.Event) -> None:
        if s.first_byte_delay and await _wait(gone, s.first_byte_delay):
            return
        if isinstance(s.error_body, bytes):
            payload = s.error_body
        else:
            payload = orjson.dumps(s.error_body).replace(b"{key}", key.encode())
        headers = self._headers(s.headers)
        ctype = "application/json" if not isinstance(s.error_body, bytes) else "text/html"
        await _send_bytes(send, s.status, payload, headers, ctype)

    async def _chat(self, request: Mapping[str, Any], key: str, send: Any, gone: asyncio.Event) -> None:
        model = str(request.get("model", ""))
        refused = missing_reasoning(self.flavor, request)
        if refused is not None:
            await self._respond(fail(400, refused), key, send, gone)
            return
        s = (self.responder(request) if self.responder else None) or self._next(model)
        if s.error_body is not None:
            await self._respond(s, key, send, gone)
            return
        if s.first_byte_delay and await _wait(gone, s.first_byte_delay):
            return
        if request.get("stream") and not s.ignore_stream:
            frames = [sse_frame(c) for c in self.wire.chunks(s, request, model)]
            if self.flavor == "openrouter":
                # Keep-alive comments before the first token and now and then between chunks.
                frames = [KEEPALIVE] + [
                    part for i, f in enumerate(frames) for part in ((f, KEEPALIVE) if i % 3 == 1 else (f,))
                ]
            frames.append(DONE)
            frames = self._inject(s, frames, model)
            ctype = "text/event-stream"
        else:
            payload = orjson.dumps(self.wire.completion(s, request, model))
            frames = [payload[: len(payload) // 2], payload[len(payload) // 2 :]]
            ctype = "application/json"
        await self._play(s, frames, self._headers(s.headers), ctype, send, gone)

    def _inject(self, s: Scenario, frames: list[bytes], model: str) -> list[bytes]:
        if s.error_after is not None:
            return [*frames[: s.error_after], sse_frame(self.wire.stream_error_chunk(s, model))]
        if s.malformed_after is not None:
            return [
                *frames[: s.malformed_after],
                b'data: {"id": "chatcmpl-broken", "choices": [\n\n',
                *frames[s.malformed_after :],
            ]
        if s.truncate_after is not None:
            return frames[: s.truncate_after]
        return frames

    async def _play(
        self,
        s: Scenario,
        frames: list[bytes],
        headers: Mapping[str, str],
        ctype: str,
        send: Any,
        gone: asyncio.Event,
    ) -> None:
        streaming = ctype == "text/event-stream"
        length = (
            None
            if streaming or s.drop_after is not None or s.stall_after is not None
            else sum(map(len, frames))
        )
        await _start(send, 200, headers, ctype, length)
        if self.fast and s.healthy:
            await send({"type": "http.response.body", "body": b"".join(frames), "more_body": False})
            return
        if s.body_delay and await _wait(gone, s.body_delay):
            return
        for i, frame in enumerate(frames):
            if i == s.stall_after:
                await _wait(gone, 30)
                return
            if i == s.drop_after:
                raise ConnectionAbortedError("emulated connection drop mid-stream")
            if gone.is_set():
                return
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            if s.chunk_delay and await _wait(gone, s.chunk_delay):
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait(gone: asyncio.Event, seconds: float) -> bool:
    """Sleep, but wake when the client leaves; True if it left."""
    try:
        await asyncio.wait_for(gone.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _start(send: Any, status: int, headers: Mapping[str, str], ctype: str, length: int | None) -> None:
    raw = [(b"content-type", ctype.encode())] + [(k.encode(), v.encode()) for k, v in headers.items()]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    if ctype == "text/event-stream":
        raw.append((b"cache-control", b"no-cache"))
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _send_bytes(send: Any, status: int, body: bytes, headers: Mapping[str, str], ctype: str) -> None:
    await _start(send, status, headers, ctype, len(body))
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_json(send: Any, status: int, body: Any, headers: Mapping[str, str]) -> None:
    await _send_bytes(send, status, orjson.dumps(body), headers, "application/json")
