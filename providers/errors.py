"""Typed provider errors in the contract's taxonomy.

A `ProviderError` carries what a router and an operator need (class, provider, HTTP status,
retry-after, the provider's own error code, request id) and a message that adapters build
from the provider's error text after redaction. It never carries a credential.
"""

from __future__ import annotations

from providers.contract import ERROR_POLICY, ErrorAction, ErrorClass


class ProviderError(Exception):
    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after: float | None = None,
        provider_code: str | None = None,
        request_id: str | None = None,
        model: str | None = None,
        closed_before_reply: bool = False,
        pool_exhausted: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.provider = provider
        self.status = status
        self.retry_after = retry_after
        self.provider_code = provider_code
        self.request_id = request_id
        self.model = model
        self.closed_before_reply = closed_before_reply
        """The upstream closed an open connection before any reply to the request: most often
        a kept connection its idle timeout closed as the request went out. A new connection
        may be tried at once (`routing.runner.RetryPolicy`)."""
        self.pool_exhausted = pool_exhausted
        """This worker's own connections to the origin were all busy, so the upstream was never
        asked (`providers.origin_slots`): the router moves on without a retry or a cooldown."""

    @property
    def action(self) -> ErrorAction:
        return ERROR_POLICY[self.error_class].action

    @property
    def retryable(self) -> bool:
        return ERROR_POLICY[self.error_class].retryable

    @property
    def fallback_eligible(self) -> bool:
        return ERROR_POLICY[self.error_class].fallback_eligible

    def __str__(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.provider}{status} {self.error_class.value}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"ProviderError(error_class={self.error_class.value!r}, provider={self.provider!r}, "
            f"status={self.status!r}, provider_code={self.provider_code!r})"
        )


class StructuredOutputError(ProviderError):
    """The model's output did not validate against the caller's JSON schema."""

    def __init__(self, message: str, *, provider: str, model: str | None = None) -> None:
        super().__init__(ErrorClass.INVALID_REQUEST, message, provider=provider, model=model)


class Refused(ProviderError):
    """Patchbay itself declined to run a segment, before any upstream call: the key's rate limit
    (`rate_limit_exceeded`), the org's credits (`insufficient_credits`). Unlike an upstream
    failure it reaches the client under its own `code` and `type` (and HTTP `status` on the
    HTTP surfaces), so a client can tell "slow down" or "add credits" from "the model is down";
    a voice session goes on, and a later turn may pass."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        code: str,
        error_type: str,
        status: int,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(error_class, message, provider="patchbay", status=status, retry_after=retry_after)
        self.code = code
        self.error_type = error_type


def insufficient_credits(message: str = "", *, code: str = "insufficient_credits") -> Refused:
    """The refusal for a segment the org's credits cannot cover: 402, as `/v1` answers it.
    `code`: `insufficient_credits`, or the cap that refused it (`budget_exceeded`,
    `spend_limit_exceeded`)."""
    return Refused(
        ErrorClass.QUOTA_EXHAUSTED,
        message or "the organisation's credits cannot cover this request",
        code=code,
        error_type="insufficient_quota",
        status=402,
    )
