"""The billing preflight hook every routed segment passes through, a no-op until billing lands.

Before a segment runs, its surface asks `Preflight.hold` for an estimate of what it may cost;
the real implementation reserves platform credits and raises `InsufficientCreditsError` when
the balance cannot cover it (the HTTP surface answers 402). When the segment ends, the hold is
settled with the billing source that actually served it and the usage it reported, or released
when nothing was served. BYOK and private segments cost the platform nothing; the real
implementation applies the tier's BYOK commercial model there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from billing.prices import Price
from providers.contract import BillingSource
from providers.types import Usage


class InsufficientCreditsError(Exception):
    """The org's balance cannot cover the segment (a 402). The message is safe to show the caller.

    `requested` and `available` (micro-USD) are set when the ledger refused a reservation; they
    are for logs and the org's own admins, not for the message."""

    code = "insufficient_credits"

    def __init__(
        self, message: str = "", *, requested: int | None = None, available: int | None = None
    ) -> None:
        super().__init__(message)
        self.requested = requested
        self.available = available


@dataclass(frozen=True, slots=True)
class PreflightRequest:
    org_id: str
    tier: str
    segment: str
    """`llm`, `stt` or `tts`."""
    intent: str
    requested_model: str | None = None
    max_output_tokens: int | None = None
    offers: tuple[tuple[BillingSource, Price | None], ...] | None = None
    """What may serve the segment: each candidate's billing source and its model's list price
    (None: unpriced). None: not known (any source the tier allows, at the intent's ceiling)."""
    input_tokens_estimate: int = 0
    """The request's input tokens as estimated before it runs (for the hold)."""
    request_id: str | None = None
    """For the hold's idempotency key; a turn's id on the voice surfaces."""
    api_key_id: str | None = None
    """The server API key the request came with: its monthly spend limit applies too."""
    audio_seconds: float | None = 0.0
    """The audio known before the segment runs (an STT segment's input); None: unbounded (TTS)."""
    characters: int = 0
    """The text known before the segment runs (a TTS segment's input)."""
    enforce: bool = True
    """False (the org's `billing_enforcement` flag is off): the segment is never refused for
    credits; no hold is taken and what it costs is still charged when it settles."""


class Hold(Protocol):
    async def settle(
        self,
        billing_source: BillingSource,
        usage: Usage,
        *,
        price: Price | None = None,
        audio_seconds: float = 0.0,
        characters: int = 0,
    ) -> int:
        """The segment was served by a connection billed to `billing_source` at list `price` (None:
        unpriced) and used `usage` (tokens), `audio_seconds` and `characters`. Returns what the
        org was charged, in micro-USD."""
        ...

    async def release(self) -> None:
        """Nothing was served: give the reservation back."""
        ...


class Preflight(Protocol):
    async def hold(self, request: PreflightRequest) -> Hold:
        """Reserve for the segment, or raise `InsufficientCreditsError`."""
        ...


class _NoHold:
    async def settle(
        self,
        billing_source: BillingSource,
        usage: Usage,
        *,
        price: Price | None = None,
        audio_seconds: float = 0.0,
        characters: int = 0,
    ) -> int:
        return 0

    async def release(self) -> None:
        return None


NO_HOLD: Hold = _NoHold()


class NoopPreflight:
    """Until billing lands: every segment may run and nothing is reserved."""

    async def hold(self, request: PreflightRequest) -> Hold:
        return NO_HOLD
