"""POST /v1/messages: the Anthropic Messages API over the same routing as /v1/chat/completions.

Any routed provider can answer (the request is normalized, then re-encoded for whichever
connection serves it). Keys come as `x-api-key` (what the anthropic SDKs send) or Bearer.
Streams follow the chat endpoint's rules: headers after the first output, an `error` event
after a failure once output started, the attempt trace in a final SSE comment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

from foundation.random_ids import random_hex
from providers.errors import ProviderError
from providers.types import ChatRequest, StreamEvent
from routing.errors import AllAttemptsFailedError
from routing.router import CallContext, RoutedCall
from server.activity.recorder import note_error, note_request, note_result, note_stream
from server.v1.anthropic_translate import MessageEventEncoder, message_body, to_chat_request
from server.v1.anthropic_wire import MessagesRequest
from server.v1.asgi import (
    accept,
    routing_headers,
    send_body,
    stream_response,
)
from server.v1.chat import context, cost_comment, fail, trailer
from server.v1.errors import ApiError, after_output, from_exception
from server.v1.gateway import Gateway


def render(error: ApiError) -> bytes:
    return error.anthropic_body()


def message_id() -> str:
    return "msg_" + random_hex(12)


def _parse(body: bytes) -> tuple[MessagesRequest, ChatRequest]:
    wire = MessagesRequest.model_validate_json(body)
    return wire, to_chat_request(wire)


def _model(parsed: tuple[MessagesRequest, ChatRequest]) -> str:
    return parsed[0].model


async def messages(scope: Scope, receive: Receive, send: Send) -> None:
    accepted = await accept(scope, receive, send, _parse, render, _model)
    if accepted is None:
        return
    gateway, principal, (wire, request) = accepted
    note_request(wire.model, request)
    ctx = context(principal)
    if wire.stream:
        await _stream(gateway, ctx, request, wire.model, receive, send)
        return
    try:
        result = await gateway.router.complete(ctx, request, wire.model)
    except Exception as exc:
        await fail(send, exc, render)
        return
    note_result(result)
    out = message_body(result.response, message_id=message_id(), model=str(result.served.ref))
    await send_body(send, 200, out, routing_headers(result.served, result.trace, result.cost))


async def _stream(
    gateway: Gateway, ctx: CallContext, request: ChatRequest, model: str, receive: Receive, send: Send
) -> None:
    try:
        call = await gateway.router.stream(ctx, request, model)
    except Exception as exc:
        await fail(send, exc, render)
        return
    events = note_stream(call, aiter(call))
    try:
        first: StreamEvent | None = await anext(events)
    except StopAsyncIteration:
        first = None
    except Exception as exc:
        await call.aclose()
        await fail(send, exc, render, cost=call.cost)
        return
    served = call.served
    encoder = MessageEventEncoder(message_id=message_id(), model=str(served.ref) if served else model)
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
    call: RoutedCall,
    events: AsyncIterator[StreamEvent],
    encoder: MessageEventEncoder,
) -> AsyncIterator[bytes]:
    """The events after the opening ones."""
    try:
        async for item in events:
            frame = encoder.encode(item)
            if frame:
                yield frame
    except (ProviderError, AllAttemptsFailedError) as exc:
        error = after_output(exc) if isinstance(exc, ProviderError) else from_exception(exc)
        assert error is not None
        note_error(error.code or error.type, after_output=True)
        yield cost_comment(call.cost) + encoder.error(error.anthropic_body()) + trailer(call.trace)
        return
    yield encoder.end() + cost_comment(call.cost) + trailer(call.trace)
