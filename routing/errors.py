"""Errors raised by routing. Each carries what a surface needs to answer the caller, never a key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.errors import ProviderError

if TYPE_CHECKING:
    from routing.trace import AttemptTrace


class RoutingError(Exception):
    """Base of routing's own errors. `code` is a stable machine-readable name."""

    code = "routing_error"


class NoRouteError(RoutingError):
    """Nothing is configured for the request: unknown model, unknown agent, empty chain (a 404)."""

    code = "model_not_found"


class ModelNotAllowedError(RoutingError):
    """The caller asked for a model outside the org's allowlist (a 403)."""

    code = "model_not_allowed"

    def __init__(self, ref: str) -> None:
        super().__init__(f"model {ref!r} is not allowed for this organisation")
        self.ref = ref


class BaseUrlRefusedError(RoutingError):
    """A connection's base URL failed the guard (private address, plain http, bad syntax)."""

    code = "base_url_refused"
    param = "base_url"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        """A short token for traces: `private_address`, `plain_http`, `invalid_url`, `unresolvable`."""


class AllAttemptsFailedError(RoutingError):
    """No attempt served the request. Carries the whole trace and the last provider error.

    `stopped` is true when a failure that must not fall back (context length, content filter,
    invalid request) ended the plan early, or when the model was pinned by the caller.
    """

    code = "all_attempts_failed"

    def __init__(
        self, trace: AttemptTrace, last_error: ProviderError | None, *, stopped: bool = False
    ) -> None:
        summary = trace.header()
        super().__init__(f"no attempt served the request: {summary}" if summary else "no candidate to try")
        self.trace = trace
        self.last_error = last_error
        self.stopped = stopped
