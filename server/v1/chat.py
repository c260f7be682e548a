"""POST /v1/chat/completions: the OpenAI Chat Completions API over routed providers.

Non-streaming: route, call, answer with the completion and the `x-patchbay-*` headers.

Streaming: the routed call is started and its first event awaited before anything is sent.
Fallback happens only before the first output, so by then the serving connection is known
and the headers carry it; a request that no candidate could serve gets a plain JSON error
with the right status instead of a broken stream. After the first output, a failure ends the
stream with an OpenAI-format error chunk (`data: {"error": {...}}`, which the SDKs raise),
never a silent truncation. The final attempt trace goes in an SSE comment before the end
(`: patchbay {...}`), which SSE clients ignore.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.types import Receive, Scope, Send

from billing.money import format_usd
from foundation.random_ids import random_hex
from providers.errors import ProviderError
from providers.types import ChatRequest, StreamEvent
from routing.errors import AllAttemptsFailedError
from routing.router import CallContext, RoutedCall
from routing.trace import AttemptTrace
from server.accounts import Principal
from server.activity.recorder import note_error, note_request, note_result, note_stream, note_trace
from server.v1.asgi import (
    Render,
    accept,
    request_id,
    routing_headers,
    send_body,
    send_error,
    stream_response,
)
from server.v1.errors import ApiError, after_output, from_exception
from server.v1.gateway import Gateway
from server.v1.openai_translate import ChunkEncoder, completion_body, sse, to_chat_request
from server.v1.openai_wire import ChatCompletionRequest


def render(error: ApiError) -> bytes:
    return error.openai_body()


def cost_comment(cost: int | None) -> bytes:
    """What the stream was charged (micro-USD, settled) as an SSE comment; nothing when unknown."""
    return b"" if cost is None else b": x-patchbay-cost " + format_usd(cost).encode() + b"\n\n"


def trailer(trace: AttemptTrace) -> bytes:
    """The final routing facts as an SSE comment: invisible to SSE clients, readable by people."""
    served = trace.served
    facts = {
        "route": trace.header(),
        "served": served.target if served else None,
        "billing_source": served.billing_source.value if served and served.billing_source else None,
    }
    return b": patchbay " + orjson.dumps(facts) + b"\n\n"


def completion_id() -> str:
    return "chatcmpl-" + random_hex(12)


def _parse(body: bytes) -> tuple[ChatCompletionRequest, ChatRequest]:
    wire = ChatCompletionRequest.model_validate_json(body)
    return wire, to_chat_request(wire)


def _model(parsed: tuple[ChatCompletionRequest, ChatRequest]) -> str:
    return parsed[0].model


async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
    accepted = await accept(scope, receive, send, _parse, render, _model)
    if accepted is None:
        return
    gateway, principal, (wire, request) = accepted
    note_request(wire.model, request)
    ctx = context(principal)
    if wire.stream:
        include_usage = wire.stream_options is not None and wire.stream_options.include_usage
        await _stream(gateway, ctx, request, wire.model, include_usage, receive, send)
    else:
        await _complete(gateway, ctx, request, wire.model, send)


def context(principal: Principal) -> CallContext:
    return CallContext(
        org_id=principal.org_id,
        agent_id=principal.agent_id,
        api_key_id=principal.key_id,
        request_id=request_id() or None,
    )


async def _complete(gateway: Gateway, ctx: CallContext, request: ChatRequest, model: str, send: Send) -> None:
    try:
        result = await gateway.router.complete(ctx, request, model)
    except Exception as exc:
        await fail(send, exc)
        return
    note_result(result)
    body = completion_body(result.response, completion_id=completion_id(), model=str(result.served.ref))
    await send_body(send, 200, body, routing_headers(result.served, result.trace, result.cost))


async def fail(send: Send, exc: Exception, render: Render = render, *, cost: int | None = None) -> None:
    """Answer a failed routed call in the surface's error format, or re-raise a bug. `cost`: what
    the call was charged before it failed (micro-USD; None: nothing)."""
    error = from_exception(exc)
    if error is None:
        raise exc
    trace = exc.trace if isinstance(exc, AllAttemptsFailedError) else None
    note_trace(trace)
    await send_error(send, error, render, routing_headers(None, trace, cost or 0))


async def _stream(
    gateway: Gateway,
    ctx: CallContext,
    request: ChatRequest,
    model: str,
    include_usage: bool,
    receive: Receive,
    send: Send,
) -> None:
    try:
        call = await gateway.router.stream(ctx, request, model)
    except Exception as exc:
        await fail(send, exc)
        return
    events = note_stream(call, aiter(call))
    try:
        first: StreamEvent | None = await anext(events)
    except StopAsyncIteration:
        first = None
    except Exception as exc:
        await call.aclose()
        await fail(send, exc, cost=call.cost)
        return
    served = call.served
    encoder = ChunkEncoder(
        completion_id=completion_id(),
        model=str(served.ref) if served else model,
        include_usage=include_usage,
    )
    opening = encoder.start() + (encoder.encode(first) if first is not None else b"")
    await stream_response(
        receive,
        send,
        routing_headers(served, call.trace),
        opening,
        _frames(call, events, encoder),
        call.aclose,
    )


async def _frames(
    call: RoutedCall, events: AsyncIterator[StreamEvent], encoder: ChunkEncoder
) -> AsyncIterator[bytes]:
    """The frames after the opening one."""
    try:
        async for event in events:
            frame = encoder.encode(event)
            if frame:
                yield frame
    except (ProviderError, AllAttemptsFailedError) as exc:
        error = after_output(exc) if isinstance(exc, ProviderError) else from_exception(exc)
        assert error is not None
        note_error(error.code or error.type, after_output=True)
        yield cost_comment(call.cost) + sse(error.openai_body()) + trailer(call.trace)
        return
    yield cost_comment(call.cost) + trailer(call.trace) + encoder.end()
