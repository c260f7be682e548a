"""A finished response's last bytes, read behind the caller so its connection stays pooled.

A streamed reply ends, for the adapter, at the protocol's own end marker (OpenAI's
`data: [DONE]`, Anthropic's `message_stop`). The body's framing, the last empty chunk of a
chunked body, often arrives a moment later, in a read of its own. Closing the response before
it arrives drops a healthy keep-alive connection: the next request to that provider pays a new
TCP and TLS handshake before its first byte, two round trips and about 1.1 ms of CPU
(docs/performance.md, "Streams kept their upstream connection").

`Tails.read_out` reads what is left in a task of its own and then closes the response. At the
end of the body the client library has already put the connection back in its pool, so the
close changes nothing; past `TAIL_SECONDS` or `TAIL_BYTES` (a server that sent its end marker
and kept talking) the close drops the connection, as it always did. The caller's stream has
ended by then: nothing waits on the tail. `patchbay_upstream_tails_total` counts both
outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from foundation import metrics

TAIL_SECONDS = 1.0
"""The longest a tail may take by default (and never longer than the call's `between_chunks`);
a terminating chunk follows the end marker within milliseconds."""

TAIL_BYTES = 64 * 1024
"""More than this after the end marker is not framing: the connection is dropped."""


class Tails:
    """The tails being read; `UpstreamClients` holds one and ends them before closing its pools."""

    def __init__(self, *, seconds: float = TAIL_SECONDS) -> None:
        self.seconds = seconds
        self._reading: set[asyncio.Task[None]] = set()

    def read_out(
        self,
        read: Callable[[], Awaitable[bytes | None]],
        close: Callable[[], None],
        within: float,
    ) -> None:
        """Read chunks with `read` until it returns None (the end), then `close`; for at most
        `within` seconds (and `seconds`) and `TAIL_BYTES`."""
        task = asyncio.get_running_loop().create_task(_read_out(read, min(within, self.seconds)))
        self._reading.add(task)

        def done(_: asyncio.Task[None]) -> None:
            # Also for a task cancelled before it ran (`aclose`): every response is closed.
            self._reading.discard(task)
            close()

        task.add_done_callback(done)

    @property
    def reading(self) -> int:
        return len(self._reading)

    async def settled(self) -> None:
        """Wait until every tail has been read or given up, and its response closed."""
        while self._reading:
            await asyncio.gather(*self._reading, return_exceptions=True)

    async def aclose(self) -> None:
        """Give up every tail now (shutdown): each response is closed, its connection dropped."""
        for task in self._reading:
            task.cancel()
        await self.settled()


async def _read_out(read: Callable[[], Awaitable[bytes | None]], within: float) -> None:
    pooled = False
    try:
        # A timeout or a transport error ends it like a tail too long: the close that follows
        # drops a connection whose body did not end.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(within):
                size = 0
                while (chunk := await read()) is not None:
                    size += len(chunk)
                    if size > TAIL_BYTES:
                        return
                pooled = True
    finally:
        metrics.observe_tail(pooled)
