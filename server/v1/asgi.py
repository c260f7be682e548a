"""The thin ASGI layer the `/v1` endpoints share: admission, bodies, headers, streaming.

The endpoints are plain ASGI callables rather than FastAPI handlers: the hot path parses one
JSON body with pydantic and writes bytes it serialised itself, with no request object,
dependency solving or response-model validation in between.

`stream_response` sends the response head only when the first frame is ready (so headers
can name the provider that actually served), and watches the client: when it disconnects,
the frame producer is cancelled, which closes the routed call and the upstream stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from billing.money import format_usd
from routing.resolver import PlannedAttempt
from routing.trace import AttemptTrace
from server.accounts import Principal
from server.activity.recorder import note_caller, note_completed, note_error, note_response
from server.auth_throttle import client_address
from server.key_scope import model_allowed
from server.logs import request_id_var
from server.v1.auth import Expired, bearer_token
from server.v1.errors import (
    BAD_KEY,
    MISSING_KEY,
    ApiError,
    auth_locked,
    expired_key,
    from_exception,
    invalid,
    key_model_not_allowed,
    rate_limited,
)
from server.v1.openai_translate import WireRequestError

if TYPE_CHECKING:
    from server.v1.gateway import Gateway

Headers = list[tuple[bytes, bytes]]
Render = Callable[[ApiError], bytes]

MAX_BODY = 32 * 1024 * 1024
"""Images travel inline as data URLs; 32 MiB covers several large ones."""

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class Endpoint:
    """Marks a coroutine as a raw ASGI app for a Starlette `Route` (functions get a Request wrapper)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def gateway_of(scope: Scope) -> Gateway:
    gateway: Gateway | None = scope["app"].state.services.gateway
    if gateway is None:
        raise RuntimeError("the routed API is not configured in this process")
    return gateway


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def admit(gateway: Gateway, scope: Scope) -> Principal | ApiError:
    """Authenticate the server API key and take one token from its rate-limit bucket.

    A refused key counts against the caller's address (server/auth_throttle.py): past half
    the limit the 401 comes a little later, and a locked-out address gets 429 instead. A
    valid key is never looked up there, so a served request pays nothing for it.
    """
    presented = bearer_token(header(scope, b"authorization"), header(scope, b"x-api-key"))
    if presented is None:
        return MISSING_KEY
    principal = await gateway.api_keys.check(presented)
    if principal is None:
        locked = await scope["app"].state.services.auth_throttle.failed(client_address(scope), surface="v1")
        return BAD_KEY if locked is None else auth_locked(locked)
    if isinstance(principal, Expired):
        return expired_key(principal.expires_at)
    note_caller(principal)
    decision = await gateway.rate_limiter.hit(principal.key_id)
    if not decision.allowed:
        return rate_limited(decision.retry_after)
    return principal


async def read_body(receive: Receive) -> bytes | ApiError:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return invalid("client disconnected while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return ApiError(413, "invalid_request_error", "request body too large", code="request_too_large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _latin1(value: str) -> bytes:
    """Header-safe: printable ASCII only (a model name is caller-supplied text)."""
    if value.isascii() and value.isprintable():
        return value.encode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in value).encode("ascii")


def request_id() -> str:
    return request_id_var.get() or ""


def routing_headers(
    served: PlannedAttempt | None, trace: AttemptTrace | None, cost: int | None = None
) -> Headers:
    """`x-patchbay-*` headers: who served, where the cost lands and what it was (`cost`, micro-USD,
    as exact USD), what was tried, which request."""
    headers: Headers = [(b"x-patchbay-request-id", _latin1(request_id()))]
    if cost is not None:
        headers.append((b"x-patchbay-cost", format_usd(cost).encode()))
    if served is not None:
        headers += [
            (b"x-patchbay-provider", _latin1(served.connection.profile_id)),
            (b"x-patchbay-model", _latin1(str(served.ref))),
            (b"x-patchbay-billing-source", served.billing_source.value.encode()),
        ]
    if trace is not None and trace.entries:
        headers.append((b"x-patchbay-route", _latin1(trace.header())))
    return headers


async def send_body(send: Send, status: int, body: bytes, headers: Headers) -> None:
    note_response(status)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [JSON_TYPE, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    note_completed()
    await send({"type": "http.response.body", "body": body, "more_body": False})


NOTHING_CHARGED = (b"x-patchbay-cost", format_usd(0).encode())


async def send_error(send: Send, error: ApiError, render: Render, extra: Headers | None = None) -> None:
    """An error response; it says `x-patchbay-cost: 0` unless `extra` carries what was charged."""
    note_error(error.code or error.type)
    headers = [(k.encode(), v.encode()) for k, v in error.headers().items()]
    if not any(name == b"x-patchbay-cost" for name, _ in extra or ()):
        headers.append(NOTHING_CHARGED)
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send_body(send, error.status, render(error), headers + (extra or []))


async def stream_response(
    receive: Receive,
    send: Send,
    headers: Headers,
    opening: bytes,
    frames: AsyncIterator[bytes],
    on_close: Callable[[], Awaitable[None]],
) -> None:
    """Send `opening` then `frames` as a 200 event stream; stop at once if the client goes away.

    The head and the opening frame (the first token, already in hand) go out from the calling
    task, so the time to first token carries no task switch; the rest is pumped by a task
    raced against a watcher of the client's disconnect.
    """

    async def pump() -> None:
        async for frame in frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        note_completed()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    producer: asyncio.Future[None] | None = None
    watcher: asyncio.Future[None] | None = None
    try:
        note_response(200)
        await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
        await send({"type": "http.response.body", "body": opening, "more_body": True})
        producer = asyncio.ensure_future(pump())
        watcher = asyncio.ensure_future(disconnected())
        await asyncio.wait((producer, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        tasks = [t for t in (producer, watcher) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await frames.aclose()  # type: ignore[attr-defined]
        await on_close()
    error = None if producer.cancelled() else producer.exception()
    if error is not None:
        raise error


Parsed = TypeVar("Parsed")


async def accept(
    scope: Scope,
    receive: Receive,
    send: Send,
    parse: Callable[[bytes], Parsed],
    render: Render,
    model: Callable[[Parsed], str],
) -> tuple[Gateway, Principal, Parsed] | None:
    """The common start of a routed endpoint: authenticate and rate-limit, read the body, parse
    it, and check the key may ask for the `model` it names.

    When a step refuses, the error is sent in the endpoint's format and None is returned.
    """
    gateway = gateway_of(scope)
    admitted = await admit(gateway, scope)
    if isinstance(admitted, ApiError):
        await send_error(send, admitted, render, routing_headers(None, None))
        return None
    body = await read_body(receive)
    if isinstance(body, ApiError):
        await send_error(send, body, render, routing_headers(None, None))
        return None
    try:
        parsed = parse(body)
    except (ValidationError, WireRequestError) as exc:
        error = from_exception(exc)
        assert error is not None
        await send_error(send, error, render, routing_headers(None, None))
        return None
    requested = model(parsed)
    if not model_allowed(admitted.allowed_models, requested, gateway.catalog):
        assert admitted.allowed_models is not None
        refused = key_model_not_allowed(requested, admitted.allowed_models)
        await send_error(send, refused, render, routing_headers(None, None))
        return None
    return gateway, admitted, parsed
