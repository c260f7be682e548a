"""Redis as an optional shared store: a client that gives up quickly, and what to do while it is down.

Everything Patchbay keeps in Redis (auth-profile cooldowns, request rate limits, config-change
notices, the realtime sessions-per-key count) can also live in the process, which is what a
deployment without Redis does. So a Redis outage must fail no request and cost each one
little:

- `redis_client` builds a client with short socket and connect timeouts and one immediate
  retry, so a call to an unreachable Redis gives up after about `2 * timeout` instead of
  redis-py's default of 5 s timeouts and ten retries with back-off.
- `StoreHealth` is what a store consults before each call: while Redis answers, always try it;
  after a failure, fall back to the in-process state and let only one call every `backoff`
  seconds (the probe) try Redis again, so requests during an outage do not each pay a
  timeout. It logs one warning per outage with the error type only (a Redis URL, and so an
  error message, may carry a password) and one info line when Redis answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

STORE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
"""What an unreachable or failing Redis raises (timeouts are `redis.exceptions.TimeoutError`)."""


def redis_client(url: str, *, timeout: float = 1.0) -> Redis:
    """A client whose calls give up after about `2 * timeout` when Redis does not answer.

    The socket timeout bounds command replies only: a subscriber's blocking read of a pub/sub
    channel is not cut off by it.
    """
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )


class StoreHealth:
    """Whether to call Redis now, and the outage's log lines (see the module doc).

    Not thread-safe; it lives on one event loop, and none of its methods await.
    """

    def __init__(
        self,
        store: str,
        fallback: str,
        *,
        logger: logging.Logger,
        backoff: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`store` names it in the logs ("rate limit store"); `fallback` says what happens
        meanwhile ("limiting requests per process")."""
        if backoff < 0:
            raise ValueError("backoff must be >= 0")
        self._store = store
        self._fallback = fallback
        self._log = logger
        self._backoff = backoff
        self._clock = clock
        self._down = False
        self._retry_at = 0.0
        self._failures = 0

    @property
    def down(self) -> bool:
        """Whether the last call failed (until a call succeeds)."""
        return self._down

    @property
    def failures(self) -> int:
        """Failures recorded so far: a caller that waited (on a lock) compares it to see whether
        Redis failed meanwhile, and then gives up without a call of its own."""
        return self._failures

    def should_try(self) -> bool:
        """True while Redis answers. During an outage, True for one caller once the back-off
        has passed (the probe); the others keep to the fallback until the probe reports."""
        if not self._down:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._backoff
        return True

    def failed(self, exc: BaseException) -> None:
        """A call failed: back off, and warn if this starts an outage."""
        self._failures += 1
        self._retry_at = self._clock() + self._backoff
        if not self._down:
            self._down = True
            self._log.warning(
                f"{self._store} unreachable; {self._fallback} until it is back",
                extra={"fields": {"error": type(exc).__name__}},
            )

    def succeeded(self) -> bool:
        """A call succeeded. True when that ends an outage: the caller drops its fallback state."""
        if not self._down:
            return False
        self._down = False
        self._log.info(f"{self._store} reachable again")
        return True
