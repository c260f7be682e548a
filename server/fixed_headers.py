"""A pure ASGI wrapper that sets a fixed list of response headers on an app's responses (the UI's
security headers, the browser SDK's script headers), replacing any the app set itself."""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class FixedHeaders:
    """`headers` on every HTTP response of `app`, or only on those whose status is in `statuses`."""

    def __init__(
        self,
        app: ASGIApp,
        headers: tuple[tuple[bytes, bytes], ...],
        *,
        statuses: Collection[int] | None = None,
    ) -> None:
        self.app = app
        self.headers = headers
        self.statuses = statuses
        self._names = {name for name, _ in headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                self.statuses is None or message["status"] in self.statuses
            ):
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self._names]
                message["headers"] = [*kept, *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
