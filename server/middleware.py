"""Pure-ASGI request-id, access-log and (when tracing is on) request-span middleware (no
per-request task or body copying).

A bug that escapes the app before a response started is answered here, inside the request id's
scope: a 500 whose body and `x-request-id` carry the same id as the log line of the error and the
access line (Starlette's own handler runs outside this middleware, where the id is gone).
"""

from __future__ import annotations

import logging
import re
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foundation import tracing
from foundation.random_ids import random_hex
from server.db_unavailable import RETRY_AFTER_SECONDS, database_unavailable, unavailable_body
from server.logs import request_id_var
from server.metrics import observe_request

log = logging.getLogger("patchbay.access")
log_error = logging.getLogger("patchbay.server")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Adopt a sane incoming `x-request-id` or mint one; echo it and log one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = incoming if incoming and _VALID_ID.match(incoming) else "req_" + random_hex(8)
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 0
        raw_rid = rid.encode()
        span = _request_span(scope, rid) if tracing.on() else None
        span_token = tracing.activate(span) if span is not None else None
        tid = tracing.trace_id_of(span)  # None when tracing is off or the trace is not sampled
        trace_header = (b"x-patchbay-trace-id", tid.encode()) if tid is not None else None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", raw_rid)]
                if trace_header is not None:
                    headers.append(trace_header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if scope["type"] != "http" or status:
                raise
            head = [(b"content-type", b"application/json")]
            if database_unavailable(exc):
                log_error.warning(
                    "database unavailable", extra={"fields": {"error_type": type(exc).__name__}}
                )
                status, body = 503, unavailable_body(rid)
                head.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
            else:
                # The message is not echoed: it may quote upstream text. The request id ties it to the log.
                log_error.error("unhandled error", exc_info=(type(exc), exc, None))
                status, body = 500, internal_error_body(rid)
            await send_with_id({"type": "http.response.start", "status": status, "headers": head})
            await send_with_id({"type": "http.response.body", "body": body})
        finally:
            if scope["type"] == "http":
                observe_request(scope, status, time.perf_counter() - started)
            if scope["type"] == "http" and log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope.get("method"),
                            "path": scope.get("path"),
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                            # The caller's address (a trusted proxy's X-Forwarded-For, see serve.py).
                            "client": scope["client"][0] if scope.get("client") else None,
                        }
                    },
                )
            if span is not None:
                tracing.deactivate(span_token)
                tracing.end(
                    span,
                    error=str(status) if status >= 500 else None,
                    attributes={"http.response.status_code": status} if status else None,
                )
            request_id_var.reset(token)


def _request_span(scope: Scope, request_id: str) -> tracing.Span | None:
    """The server span of one HTTP request or WebSocket; the path only (a query string can carry
    a token)."""
    method = scope.get("method") or "WEBSOCKET"
    return tracing.start(
        f"{method} {scope.get('path', '')}",
        kind="server",
        attributes={
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "patchbay.request_id": request_id,
        },
    )


def internal_error_body(request_id: str | None) -> bytes:
    """The body of a 500: the admin API's error shape, with the request id to find it in the log."""
    error = {"type": "server_error", "message": "internal error; see the server log for this request id"}
    if request_id:
        error["request_id"] = request_id
    return orjson.dumps({"error": error})
