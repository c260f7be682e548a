"""Failed-authentication throttling, the pure part: the policy, one address's state, and its steps.

An address's failures are counted in a window that opens at its first failure and lasts
`window` seconds; the failure that brings the count to `limit` within one window locks the
address for `lockout` seconds. While locked, attempts are refused without being counted (so the
`retry-after` an address is given is the truth, however hard it keeps trying), and when the
lockout ends the address starts again from nothing. Before the limit, every failure past half
of it is answered a little later than the one before (`delay`), which costs a guesser time
and an honest client with a stale credential nothing it would notice.

No I/O and no clock of its own: the stores (`auth_throttle_store.py`) keep the states and pass
the time in, and the Redis store's Lua script is these same steps.

Addresses are grouped before they are counted (`address_key`): an IPv6 host usually holds a
whole /64, so its /64 is one address; an IPv4-mapped IPv6 address is its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

UNKNOWN_ADDRESS = "unknown"
"""The key of requests whose peer address the server does not know (a Unix socket)."""


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    limit: int = 10
    """Failures within one window that lock the address."""
    window: float = 60.0
    """Seconds a window lasts from its first failure."""
    lockout: float = 300.0
    """Seconds a locked address is refused."""
    slow_step: float = 0.1
    """Added delay per failure past half the limit."""
    slow_cap: float = 2.0
    """Longest delay of one failure's answer."""

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0 or self.lockout <= 0:
            raise ValueError("a throttle policy needs limit >= 1, window > 0 and lockout > 0")
        if self.slow_step < 0 or self.slow_cap < 0:
            raise ValueError("a throttle policy's slow_step and slow_cap must be >= 0")

    def delay(self, count: int) -> float:
        """How long to hold the answer to the `count`-th failure of a window (0 up to half the limit)."""
        excess = count - self.limit // 2
        return min(self.slow_cap, self.slow_step * excess) if excess > 0 else 0.0


@dataclass(frozen=True, slots=True)
class FailureState:
    """One address's record: failures in the current window, when it opened, when a lockout ends."""

    count: int = 0
    window_start: float = 0.0
    locked_until: float = 0.0


EMPTY = FailureState()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one failure did: the window's count after it, and the lockout's remaining seconds, if locked."""

    count: int
    retry_after: float | None = None


def lock_remaining(state: FailureState, now: float) -> float | None:
    """Seconds until the address may try again; None when it is not locked."""
    left = state.locked_until - now
    return left if left > 0 else None


def record_failure(policy: ThrottlePolicy, state: FailureState, now: float) -> tuple[FailureState, Outcome]:
    """Count one failure at `now`. Locked already: nothing changes and the remaining time is
    returned. Otherwise the failure is counted (in a fresh window when the last one has
    passed), and the one that reaches the limit locks the address from now."""
    left = lock_remaining(state, now)
    if left is not None:
        return state, Outcome(0, left)
    fresh = state.count == 0 or now - state.window_start >= policy.window
    count, start = (1, now) if fresh else (state.count + 1, state.window_start)
    if count >= policy.limit:
        return FailureState(0, now, now + policy.lockout), Outcome(count, policy.lockout)
    return FailureState(count, start, 0.0), Outcome(count)


def expired(policy: ThrottlePolicy, state: FailureState, now: float) -> bool:
    """Whether the state says nothing any more (no lockout, window over): it can be forgotten."""
    return lock_remaining(state, now) is None and (
        state.count == 0 or now - state.window_start >= policy.window
    )


def address_key(address: str | None) -> str:
    """The unit failures are counted per: an IPv4 address, an IPv6 /64, or the host name as given."""
    if not address:
        return UNKNOWN_ADDRESS
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return "host:" + address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
