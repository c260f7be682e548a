"""The real billing preflight: holds on the credits ledger for segments that may be charged.

`LedgerPreflight.hold` works out the most a segment may be charged from what the request path
passes in `PreflightRequest.offers`: for each candidate that may serve it, its connection's
billing source and its model's list price (`billing.prices.hold_amount`), through the org's tier
(`billing.policy.max_charge`; an unknown tier is `free`, money fails closed); the largest wins.
A TTS segment's voice fee is held for its text at `SPOKEN_CHARS_PER_SECOND` (its audio is not
known yet). 0 (a BYOK or private plan on a tier without a per-request charge) takes no hold and
touches no database; anything more is one `Ledger.hold` (one transaction), refused with
`InsufficientCreditsError` (the 402) when the balance cannot cover it.

The hold it returns settles with the source and model that actually served the segment:
`billing.prices.cost` at that model's list price, then `billing.policy.charge` for that source,
written as one `Ledger.settle` (a `Ledger.charge` when no hold was taken and something is owed;
nothing at all when the charge is 0 and there is no hold). `release` gives the hold back. Each
hold, settle and charge carries an idempotency key made of the request id, the segment and a
random attempt id, so a replay never writes twice. See docs/billing.md#how-a-request-is-charged.
"""

from __future__ import annotations

import logging

from billing.ledger import Ledger
from billing.ledger_types import HoldClosedError
from billing.policy import allowed_sources, charge, max_charge
from billing.preflight import NO_HOLD, Hold, PreflightRequest
from billing.prices import Price, cost, hold_amount
from billing.tiers import TierPolicy, policy_for
from billing.usage import Segment
from foundation.db import new_id
from providers.contract import BillingSource
from providers.types import Usage

log = logging.getLogger("patchbay.billing")


class LedgerPreflight:
    """Holds on `ledger` for segments that may be charged; nothing for those that cannot be."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def hold(self, request: PreflightRequest) -> Hold:
        amount = hold_for(request)
        if amount is None:
            return NO_HOLD
        policy, segment = policy_for(request.tier), Segment(request.segment)
        key = f"pf:{(request.request_id or '-')[:64]}:{request.segment}:{new_id('at')}"
        hold_id = None
        if amount > 0:
            details = {"segment": request.segment, "intent": request.intent}
            hold_id = (await self._ledger.hold(request.org_id, amount, key, details=details)).id
        return LedgerHold(self._ledger, request.org_id, policy, segment, key, hold_id)


def hold_for(request: PreflightRequest) -> int | None:
    """micro-USD to reserve for `request`: the largest charge any candidate may cost, each at its
    own source and price; None when no candidate's source can be charged anything (no hold, no
    ledger). Pure: no database."""
    policy = policy_for(request.tier)
    segment = Segment(request.segment)
    offers = request.offers
    if offers is None:
        offers = tuple((source, None) for source in allowed_sources(policy))
    chargeable = [
        (source, price)
        for source, price in offers
        if max_charge(policy, segment, _PROBE, audio_seconds=60.0, sources=(source,)) > 0
    ]
    if not chargeable:
        return None
    seconds = request.audio_seconds
    if seconds is None:  # a TTS segment: its voice fee is held for the time its text takes to say
        seconds = request.characters / SPOKEN_CHARS_PER_SECOND
    return max(
        max_charge(policy, segment, _list_max(request, price), audio_seconds=seconds, sources=(source,))
        for source, price in chargeable
    )


def _list_max(request: PreflightRequest, price: Price | None) -> int:
    return hold_amount(
        price,
        request.intent,
        max_output_tokens=request.max_output_tokens,
        input_tokens_estimate=request.input_tokens_estimate,
        audio_seconds=request.audio_seconds,
        characters=request.characters,
    )


SPOKEN_CHARS_PER_SECOND = 10
"""A slow speaking rate (speech engines say 12 to 16 characters a second): a TTS segment's
audio, not known before it runs, is estimated from its text for the voice fee's hold. The
settle charges the audio it actually produced."""

_PROBE = 1_000_000
"""A list cost of 1 USD: a source charged nothing for it is charged nothing for any cost."""


class LedgerHold:
    """One segment's reservation (`hold_id`; None when nothing was reserved), closed once."""

    def __init__(
        self,
        ledger: Ledger,
        org_id: str,
        policy: TierPolicy,
        segment: Segment,
        key: str,
        hold_id: str | None,
    ) -> None:
        self._ledger = ledger
        self._org_id = org_id
        self._policy = policy
        self._segment = segment
        self._key = key
        self.hold_id = hold_id

    async def settle(
        self,
        billing_source: BillingSource,
        usage: Usage,
        *,
        price: Price | None = None,
        audio_seconds: float = 0.0,
        characters: int = 0,
    ) -> int:
        list_cost = cost(price, tokens=usage, audio_seconds=audio_seconds, characters=characters) if price else 0
        owed = charge(self._policy, billing_source, self._segment, list_cost, audio_seconds=audio_seconds)
        details = {"source": billing_source.value, "reason": owed.reason, "list_cost": list_cost}
        if self.hold_id is None:
            if owed.credits == 0:
                return 0
            entry = await self._ledger.charge(self._org_id, owed.credits, f"{self._key}:charge", details=details)
        else:
            try:
                entry = await self._ledger.settle(
                    self.hold_id, owed.credits, f"{self._key}:settle", org_id=self._org_id, details=details
                )
            except HoldClosedError:
                # The sweeper released it (the segment outlived the hold's TTL): pay without a hold.
                entry = await self._ledger.charge(
                    self._org_id, owed.credits, f"{self._key}:charge", details=details
                )
        return entry.amount

    async def release(self) -> None:
        if self.hold_id is None:
            return
        try:
            await self._ledger.release(self.hold_id, f"{self._key}:release", org_id=self._org_id)
        except HoldClosedError:
            log.info("hold %s was already closed", self.hold_id)
