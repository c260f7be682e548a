"""Failed-authentication throttling: what every authentication point calls (docs/security.md).

Repeated failures from one address are slowed and then refused for a while: the policy and its
steps are in `auth_throttle_policy.py`, the counts in `auth_throttle_store.py` (in process, or
Redis shared by every replica). `AuthThrottle` is the one object the surfaces use, built in the
composition root (`Services.auth_throttle`):

- `failed(address)` after a credential was refused: counts the failure, holds the caller for
  the slowdown (a non-blocking sleep) and returns None, or returns the seconds the address is
  locked for (this failure locked it, or it already was) and the caller answers 429 with
  `retry-after` instead of its usual refusal.
- `locked(address)` before checking a credential someone could guess (the admin token, a
  password): a locked address is refused without the credential being looked at, so a right
  guess during the lockout gets the same 429 as a wrong one.

Unguessable credentials (API keys, realtime tokens, Twilio signatures) are checked first and
only their failures reach the throttle, so a successful request never pays for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from starlette.types import Scope

from server.auth_throttle_policy import ThrottlePolicy, address_key
from server.auth_throttle_store import FailureStore, NoFailureStore, make_failure_store
from server.settings import Settings

log = logging.getLogger("patchbay.auth")

Sleep = Callable[[float], Awaitable[None]]


def client_address(scope: Scope) -> str | None:
    """The peer's address: the socket's, or the trusted proxy's `X-Forwarded-For` (uvicorn
    rewrites `client` when PATCHBAY_FORWARDED_ALLOW_IPS names the proxy)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def retry_after_seconds(retry_after: float) -> int:
    """The `retry-after` header's value: whole seconds, at least 1."""
    return max(1, math.ceil(retry_after))


def lockout_message(retry_after: float) -> str:
    return (
        "too many failed authentication attempts from this address; "
        f"retry after {retry_after_seconds(retry_after)} s"
    )


def lockout_headers(retry_after: float) -> dict[str, str]:
    return {"retry-after": str(retry_after_seconds(retry_after))}


def policy_from_settings(settings: Settings) -> ThrottlePolicy | None:
    """The policy of PATCHBAY_AUTH_FAILURE_*; None when PATCHBAY_AUTH_FAILURE_LIMIT is 0 (off)."""
    if settings.auth_failure_limit == 0:
        return None
    return ThrottlePolicy(
        limit=settings.auth_failure_limit,
        window=settings.auth_failure_window_seconds,
        lockout=settings.auth_lockout_seconds,
    )


class AuthThrottle:
    def __init__(
        self, policy: ThrottlePolicy | None, store: FailureStore, *, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.policy = policy
        self._store = store
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, *, prefix: str = "patchbay:") -> AuthThrottle:
        policy = policy_from_settings(settings)
        return cls(policy, make_failure_store(policy, settings.redis_url, prefix=prefix))

    @classmethod
    def off(cls) -> AuthThrottle:
        return cls(None, NoFailureStore())

    @property
    def store(self) -> FailureStore:
        return self._store

    async def locked(self, address: str | None) -> float | None:
        """Seconds `address` stays locked out; None when it may try."""
        if self.policy is None:
            return None
        return await self._store.locked(address_key(address))

    async def failed(self, address: str | None, *, surface: str = "") -> float | None:
        """Count a refused credential from `address`. Returns the seconds the address is locked
        out for (answer 429 with `retry-after`), or None after holding the caller for the
        slowdown (answer the usual 401/403). `surface` names the door in the log line."""
        if self.policy is None:
            return None
        key = address_key(address)
        outcome = await self._store.failed(key)
        if outcome.retry_after is not None:
            if outcome.count:
                # The failure that locked it: once per lockout, not once per refused attempt.
                log.warning(
                    "address locked out after repeated failed authentication",
                    extra={
                        "fields": {
                            "address": key,
                            "surface": surface,
                            "failures": outcome.count,
                            "lockout_seconds": retry_after_seconds(outcome.retry_after),
                        }
                    },
                )
            return outcome.retry_after
        delay = self.policy.delay(outcome.count)
        if delay > 0:
            await self._sleep(delay)
        return None

    async def aclose(self) -> None:
        await self._store.aclose()
